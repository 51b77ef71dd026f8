"""Turn model files into generators without executing anything from the file.

- ``.safetensors``: tensors only by construction; the architecture and constructor
  arguments come from the file's metadata (key ``engine.config``, JSON), a sidecar
  ``<file>.json`` or ``<file>.toml``, or the registry entry.
- ``.pt`` / ``.pth`` / ``.tar`` / ``.ckpt`` torch checkpoints: read with ``torch.load(weights_only=True)``,
  PyTorch's restricted unpickler, which rebuilds tensors and plain containers only.
"""
from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path

import torch

from engine.generators.base import Generator
from engine.generators.registry import ModelEntry, Registry

log = logging.getLogger(__name__)

CONFIG_KEY = "engine.config"


class ModelLoadError(Exception):
    pass


def _builders():
    from engine.generators import dcgan
    return {"dcgan": dcgan.from_state_dict}


def _sidecar_config(path: Path) -> dict:
    for ext, parse in ((".json", json.loads), (".toml", tomllib.loads)):
        side = path.with_suffix(ext)
        if side.exists():
            return parse(side.read_text())
    return {}


def _read_safetensors(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open
    state = {}
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        for k in f.keys():
            state[k] = f.get_tensor(k)
    config = json.loads(meta[CONFIG_KEY]) if CONFIG_KEY in meta else {}
    return state, config


def _read_torch_checkpoint(path: Path) -> tuple[dict, dict]:
    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(ckpt, dict):
        for key in ("netG_state_dict", "g_ema", "state_dict", "generator"):
            if key in ckpt and isinstance(ckpt[key], dict):
                return ckpt[key], {}
        if all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            return ckpt, {}
    raise ModelLoadError(f"{path.name}: no generator state dict found in this checkpoint")


def _guess_architecture(state: dict) -> str | None:
    if "main.0.weight" in state and state["main.0.weight"].ndim == 4:
        return "dcgan"
    return None


def _dcgan_config_from_state(state: dict) -> dict:
    convs = sorted((k for k in state if k.startswith("main.") and state[k].ndim == 4),
                   key=lambda k: int(k.split(".")[1]))
    first, last = state[convs[0]], state[convs[-1]]
    return {"z_dim": int(first.shape[0]), "ngf": int(last.shape[0]), "channels": int(last.shape[1]),
            "resolution": 2 ** (len(convs) + 1)}


def read_model(entry: ModelEntry) -> tuple[dict, dict]:
    """The state dict and config of a model file, nothing instantiated."""
    path = entry.file
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            state, config = _read_safetensors(path)
        elif path.suffix in (".pt", ".pth", ".tar", ".ckpt"):
            state, config = _read_torch_checkpoint(path)
        else:
            raise ModelLoadError(f"{path.name}: unsupported model format {path.suffix!r} "
                                 "(supported: .safetensors, .pt/.pth/.tar/.ckpt torch checkpoints)")
    except ModelLoadError:
        raise
    except Exception as e:  # corrupt or truncated file, refused pickle, bad header
        raise ModelLoadError(f"{path.name}: cannot read model file ({type(e).__name__}: {e})") from e
    config = {**_sidecar_config(path), **config}
    config.update({k: v for k, v in entry.options.items() if k not in config})
    arch = entry.architecture or config.get("architecture") or _guess_architecture(state)
    if arch is None:
        raise ModelLoadError(f"{path.name}: unknown architecture; name it in models.toml or a sidecar .json")
    if arch == "dcgan" and "z_dim" not in config:
        config.update(_dcgan_config_from_state(state))
    config["architecture"] = arch
    config.setdefault("name", entry.name)
    return state, config


def load_generator(spec: str | None = None, registry: Registry | None = None) -> Generator:
    """A generator on the CPU in fp32, from a registry name, a path, or the default."""
    registry = registry or Registry()
    try:
        entry = registry.resolve(spec)
    except KeyError as e:
        raise ModelLoadError(str(e.args[0])) from e
    state, config = read_model(entry)
    build = _builders().get(config["architecture"])
    if build is None:
        raise ModelLoadError(f"{entry.file.name}: architecture {config['architecture']!r} is not supported yet")
    try:
        g = build(state, config)
    except Exception as e:
        raise ModelLoadError(f"{entry.file.name}: weights do not fit a {config['architecture']} "
                             f"generator ({e})") from e
    g.info.extra["file"] = str(entry.file)
    g.info.extra["licence"] = entry.licence
    return g
