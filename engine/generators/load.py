"""Turn model files into generators without executing anything from the file.

Formats (``read_model`` returns a state dict with official parameter names plus a config):

- ``.pkl``: official NVIDIA pickles (stylegan2-ada-pytorch, stylegan3; StyleGAN2 and
  StyleGAN3-T/R). Read by ``bounded_pickle.SafeUnpickler``, an allow-list unpickler: the class
  source embedded in the file is never run, and a pickle that asks for anything but
  tensor/array/container rebuild functions is refused with the name of what it asked for.
- ``.pt`` / ``.pth`` / ``.tar`` / ``.ckpt`` / ``.bin`` torch checkpoints (``torch.save``'s zip
  or legacy format): read by ``checkpoints.load_checkpoint``, the same allow-list and limits
  as the pickles, in the place of ``torch.load`` (``argparse.Namespace`` is allowed for
  rosinality training checkpoints). rosinality stylegan2-pytorch
  (``g_ema`` + ``latent_avg``) is renamed to the official layout; DCGAN and BigGAN
  state dicts are taken as they are.
- ``.safetensors``: tensors only by construction; the config comes from the file's
  metadata (key ``engine.config``, JSON; ``vj models convert`` writes it), a sidecar
  ``<file>.json`` or ``<file>.toml`` (``config.json`` beside a ``pytorch_model.bin``),
  or the registry entry.

The config: the file's own (pickle kwargs, safetensors metadata) over a sidecar's, with
models.toml options filling what both leave out; each source goes through
``config.normalize_config``, the one normaliser, before they are merged. DCGAN and BigGAN files may come without
any config: then it is read from the tensor shapes (``config_from_state_dict`` of the
family), and a BigGAN whose shapes are not a released layout is refused with a
``ModelLoadError`` naming the config file it looked for. A sidecar that cannot be
parsed is a ``ModelLoadError`` naming it, like every other problem with a model, so that
a session falls back to the default model. Builders get ``(state, config)``:
``from_state_dict``.
"""
from __future__ import annotations

import importlib
import json
import logging
import tomllib
from pathlib import Path

import torch

from engine.generators.base import Generator
from engine.generators.config import check_sizes, normalize_config
from engine.generators.registry import ModelEntry, Registry

log = logging.getLogger(__name__)

CONFIG_KEY = "engine.config"
SIDECAR_MAX_BYTES = 1 << 20  # a config is a few hundred bytes; this is no config
TORCH_SUFFIXES = (".pt", ".pth", ".tar", ".ckpt", ".bin")

# architecture -> "module:function"; modules import lazily, so a missing one only
# matters when a model of that kind is loaded
BUILDERS = {
    "dcgan": "engine.generators.dcgan:from_state_dict",
    "stylegan2": "engine.generators.stylegan2:from_state_dict",
    "stylegan3-t": "engine.generators.stylegan3:from_state_dict",
    "stylegan3-r": "engine.generators.stylegan3:from_state_dict",
    "biggan": "engine.generators.biggan:from_state_dict",
}
# families whose files may carry no config (the port's pytorch_model.bin, bare DCGAN
# state dicts), and the config key that says one was found
CONFIG_FROM_SHAPES = {"dcgan": "z_dim", "biggan": "layers"}


class ModelLoadError(Exception):
    pass


def builder(architecture: str):
    """The ``from_state_dict(state, config)`` for an architecture name."""
    target = BUILDERS.get(architecture)
    if target is None:
        raise ModelLoadError(f"architecture {architecture!r} is not supported yet "
                             f"(known: {', '.join(sorted(BUILDERS))})")
    module, func = target.split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            raise ModelLoadError(f"architecture {architecture!r} is not supported yet "
                                 f"({module} is not built)") from e
        raise
    return getattr(mod, func)


def _builders() -> dict:
    """Architecture name -> builder, for the builders that can be imported now."""
    out = {}
    for arch in BUILDERS:
        try:
            out[arch] = builder(arch)
        except ModelLoadError:
            pass
    return out


# ---------------------------------------------------------------- config
def _sidecars(path: Path) -> list[Path]:
    """Where a config beside ``path`` may be, in order."""
    sides = [path.with_suffix(".json"), path.with_suffix(".toml")]
    if path.suffix == ".bin":  # the port's layout: pytorch_model.bin + config.json
        sides.append(path.parent / "config.json")
    return sides


def _sidecar_config(path: Path) -> dict:
    """The first sidecar's settings; one that cannot be read is the model's failure
    (a ModelLoadError naming it), so a session falls back to the default model."""
    for side in _sidecars(path):
        if side.exists():
            parse = tomllib.loads if side.suffix == ".toml" else json.loads
            try:
                if side.stat().st_size > SIDECAR_MAX_BYTES:
                    raise ValueError(f"{side.stat().st_size:,} bytes, over the sidecar limit of {SIDECAR_MAX_BYTES:,}")
                config = parse(side.read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError) as e:  # decode and parse errors are ValueErrors
                raise ModelLoadError(f"{path.name}: its config sidecar {side.name} cannot be read "
                                     f"({type(e).__name__}: {e})") from e
            if not isinstance(config, dict):
                raise ModelLoadError(f"{path.name}: its config sidecar {side.name} holds a {type(config).__name__}, "
                                     "not a table of settings")
            return config
    return {}


def _config_from_shapes(path: Path, arch: str, state: dict, config: dict) -> dict:
    """``config`` with what it lacks read from the tensor shapes (a file without a config)."""
    module = importlib.import_module(BUILDERS[arch].split(":")[0])
    try:
        shapes = module.config_from_state_dict(state)
    except ValueError as e:
        sides = _sidecars(path)
        wanted = sides[-1] if path.suffix == ".bin" else sides[0]
        raise ModelLoadError(f"{path.name}: {wanted.name} is missing (no {arch} config beside the file, none "
                             f"in it) and the tensor shapes alone do not give one: {e}") from e
    return {**shapes, **config}


# ---------------------------------------------------------------- formats
def _read_safetensors(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open
    state = {}
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        for k in f.keys():
            state[k] = f.get_tensor(k)
    config = json.loads(meta[CONFIG_KEY]) if CONFIG_KEY in meta else {}
    return state, config


def _read_pickle(path: Path) -> tuple[dict, dict]:
    from engine.generators import bounded_pickle, pickles
    with open(path, "rb") as f:
        obj = bounded_pickle.safe_load(f)
    try:
        return pickles.official_generator(obj)
    except ValueError as e:
        raise ModelLoadError(f"{path.name}: {e}") from e


def _read_torch_checkpoint(path: Path) -> tuple[dict, dict]:
    from engine.generators import checkpoints, rosinality
    ckpt = checkpoints.load_checkpoint(path)
    if isinstance(ckpt, dict):
        for key in ("g_ema", "netG_state_dict", "state_dict", "generator"):
            if key in ckpt and isinstance(ckpt[key], dict):
                state = ckpt[key]
                if rosinality.is_rosinality(state):
                    avg = ckpt.get("latent_avg")
                    return rosinality.to_official(state, avg if torch.is_tensor(avg) else None)
                return state, {}
        if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            if rosinality.is_rosinality(ckpt):
                return rosinality.to_official(ckpt)
            return ckpt, {}
    raise ModelLoadError(f"{path.name}: no generator state dict found in this checkpoint")


def _guess_architecture(state: dict) -> str | None:
    if "main.0.weight" in state and state["main.0.weight"].ndim == 4:
        return "dcgan"
    if "synthesis.b4.const" in state:
        return "stylegan2"
    if "synthesis.input.freqs" in state:
        radial = any((k.endswith(".down_filter") and v.ndim == 2) for k, v in state.items()) or any(
            k.startswith("synthesis.L0_") and k.endswith(".weight") and v.ndim == 4 and v.shape[-1] == 1
            for k, v in state.items())
        return "stylegan3-r" if radial else "stylegan3-t"
    if any(k.startswith("generator.gen_z.") for k in state):
        return "biggan"
    return None


@torch.no_grad()
def _estimate_w_avg(state: dict, config: dict, n: int = 10000) -> torch.Tensor:
    """Mean w over ``n`` seeded z for files that do not store it (rosinality training
    checkpoints): the mapping network alone, run once at load time."""
    from engine.generators.layers import MappingNetwork
    layers = len([k for k in state if k.startswith("mapping.fc") and k.endswith(".weight")])
    m = MappingNetwork(int(config["z_dim"]), 0, int(config["w_dim"]), 1, num_layers=layers,
                       layer_features=int(state["mapping.fc0.weight"].shape[0]))
    m.load_state_dict({k[len("mapping."):]: v.float() for k, v in state.items() if k.startswith("mapping.fc")},
                      strict=False)
    z = torch.randn(n, int(config["z_dim"]), generator=torch.Generator().manual_seed(0))
    return m(z)[:, 0].mean(0)


def _read_file(path: Path) -> tuple[dict, dict]:
    """The state dict and the file's own config; any failure a ModelLoadError."""
    try:
        if path.suffix == ".safetensors":
            return _read_safetensors(path)
        if path.suffix == ".pkl":
            return _read_pickle(path)
        if path.suffix in TORCH_SUFFIXES:
            return _read_torch_checkpoint(path)
        raise ModelLoadError(f"{path.name}: unsupported model format {path.suffix!r} (supported: .pkl official "
                             "StyleGAN pickles, .safetensors, .pt/.pth/.tar/.ckpt/.bin torch checkpoints)")
    except ModelLoadError:
        raise
    except Exception as e:  # corrupt or truncated file, refused pickle, bad header
        from engine.generators.bounded_pickle import LimitExceeded
        if isinstance(e, LimitExceeded):
            raise ModelLoadError(f"{path.name}: refused: {e}") from e
        raise ModelLoadError(f"{path.name}: cannot read model file ({type(e).__name__}: {e})") from e


def _complete(entry: ModelEntry, state: dict, config: dict) -> tuple[dict, dict]:
    """The file's config merged with its sidecar's and the registry's, and what the
    file leaves out filled in."""
    path = entry.file
    sources = [normalize_config(_sidecar_config(path)), normalize_config(config), normalize_config(entry.options)]
    for source in sources:  # each on its own: a value the merge hides still says what the file is
        check_sizes(source)
    config = {**sources[0], **sources[1]}
    config.update({k: v for k, v in sources[2].items() if k not in config})
    arch = entry.architecture or config.get("architecture") or _guess_architecture(state)
    if arch is None:
        raise ModelLoadError(f"{path.name}: unknown architecture; name it in models.toml or a sidecar .json")
    shape_key = CONFIG_FROM_SHAPES.get(arch)
    if shape_key and shape_key not in config:
        config = _config_from_shapes(path, arch, state, config)
    if arch == "stylegan2" and "mapping.w_avg" not in state and "mapping.fc0.weight" in state \
            and "mapping.embed.weight" not in state and "z_dim" in config:
        log.info("%s: no average w in the file; estimating it from 10000 samples", path.name)
        state = {**state, "mapping.w_avg": _estimate_w_avg(state, config)}
        config["w_avg_estimated"] = True
    config["architecture"] = arch
    config.setdefault("name", entry.name)
    return state, config


def read_model(entry: ModelEntry) -> tuple[dict, dict]:
    """The state dict and config of a model file, nothing instantiated; any failure,
    the file's, its sidecar's or the config's, is a ModelLoadError naming the file."""
    path = entry.file
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    state, config = _read_file(path)
    try:
        return _complete(entry, state, config)
    except ModelLoadError:
        raise
    except Exception as e:  # a config value of the wrong kind, from the file, a sidecar or models.toml
        raise ModelLoadError(f"{path.name}: its config does not fit it ({type(e).__name__}: {e})") from e


def resolve_entry(spec: str | None = None, registry: Registry | None = None) -> ModelEntry:
    """The registry entry for a registry name, a path, or the default."""
    registry = registry or Registry()
    try:
        return registry.resolve(spec)
    except KeyError as e:
        raise ModelLoadError(str(e.args[0])) from e


def build_generator(entry: ModelEntry, state: dict, config: dict) -> Generator:
    """``read_model``'s result as a generator; any failure is a ModelLoadError naming the file."""
    try:
        build = builder(config["architecture"])
    except ModelLoadError as e:
        raise ModelLoadError(f"{entry.file.name}: {e}") from e
    try:
        return build(state, config)
    except Exception as e:
        raise ModelLoadError(f"{entry.file.name}: weights do not fit a {config['architecture']} "
                             f"generator ({e})") from e


def load_generator(spec: str | None = None, registry: Registry | None = None) -> Generator:
    """A generator on the CPU in fp32, from a registry name, a path, or the default."""
    entry = resolve_entry(spec, registry)
    state, config = read_model(entry)
    g = build_generator(entry, state, config)
    g.info.extra["file"] = str(entry.file)
    g.info.extra["licence"] = entry.licence
    if config.get("random_weights"):  # vj models random: say so wherever the model is named
        g.info.extra["random_weights"] = True
        g.info.name = f"{g.info.name} (random weights)"
    return g
