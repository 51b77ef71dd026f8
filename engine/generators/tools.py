"""``vj models convert | info | sample``: the logic behind the model commands.

- ``convert IN OUT.safetensors``: any supported file -> safetensors with the config in
  the metadata (``engine.config``): safe and fast to load, no pickle involved.
- ``info FILE``: architecture, resolution, z/w dims, num_ws, classes, parameter count, and
  a ``weights`` line when they are random (``vj models random``, config ``random_weights``).
- ``sample FILE --z Z.npy ...``: raw NCHW float32 images for given latents, for parity
  checks and scripting.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from engine.generators.load import (CONFIG_KEY, ModelLoadError, build_generator, builder, load_generator,
                                    read_model, resolve_entry)
from engine.generators.random_models import RANDOM_KEY
from engine.generators.registry import Registry


def convert(src: str, out: str, registry: Registry | None = None, overwrite: bool = False) -> dict:
    """Write ``src`` as safetensors (tensors + config metadata), atomically; an existing
    ``out`` (the source itself too) is replaced only with ``overwrite``. Returns the config."""
    from engine.generators.output_file import FileTaken, write_safetensors
    if not str(out).endswith(".safetensors") or Path(out).name == ".safetensors":
        raise ModelLoadError(f"{out}: the output must be a .safetensors file")
    taken = ModelLoadError(f"{out} exists; pass --overwrite to replace it")
    if Path(out).exists() and not overwrite:
        raise taken                      # before reading a model that may be large
    if Path(out).is_dir():
        raise ModelLoadError(f"{out} is a directory")
    entry = resolve_entry(src, registry)
    state, config = read_model(entry)
    config = {k: v for k, v in config.items() if k != "name"}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items() if torch.is_tensor(v)}
    try:
        write_safetensors(tensors, out, {CONFIG_KEY: json.dumps(config)}, overwrite)
    except FileTaken:
        raise taken from None
    except OSError as e:
        raise ModelLoadError(f"cannot write {out}: {e.strerror or e}") from None
    return config


def describe(spec: str, registry: Registry | None = None) -> dict:
    """What ``vj models info`` prints, as a dict."""
    entry = resolve_entry(spec, registry)
    state, config = read_model(entry)
    arch = config["architecture"]
    try:
        build = builder(arch)
    except ModelLoadError:
        build = None
    info = {"name": entry.name, "architecture": arch, "file": str(entry.file)}
    if build is not None:
        g = build_generator(entry, state, config)
        i = g.info
        info.update(resolution=i.resolution, z_dim=i.z_dim, w_dim=i.w_dim, num_ws=i.num_ws, classes=i.c_dim,
                    parameters=g.parameter_count())
        for key in ("synthesis_architecture", "conv_clamp", "num_fp16_res", "mapping_layers"):
            if key in i.extra:
                info[key] = i.extra[key]
    else:  # no generator for it yet: what the config says
        info.update(resolution=config.get("img_resolution", config.get("resolution")), z_dim=config.get("z_dim"),
                    w_dim=config.get("w_dim"), num_ws=None, classes=config.get("c_dim", config.get("num_classes")),
                    parameters=None, note=f"no {arch} generator in this build; figures from the config")
    info["tensors"] = sum(int(v.numel()) for v in state.values() if torch.is_tensor(v))
    if config.get("w_avg_estimated"):
        info["note"] = "the file has no average w; it is estimated at load time"
    if config.get(RANDOM_KEY):
        made = config.get("random") if isinstance(config.get("random"), dict) else {}
        info["random_weights"] = True
        info["channel_divisor"] = made.get("channel_divisor", 1)
    return info


def format_info(info: dict) -> str:
    res = info.get("resolution")
    lines = [("name", info["name"]), ("architecture", info["architecture"])]
    if info.get("synthesis_architecture"):
        lines[-1] = ("architecture", f"{info['architecture']} ({info['synthesis_architecture']})")
    if info.get("random_weights"):
        narrow = info.get("channel_divisor", 1)
        narrow = f"; channels / {narrow}, not the real size" if isinstance(narrow, int) and narrow > 1 else ""
        lines.append(("weights", f"RANDOM, not a trained model (vj models random): for benchmarks only{narrow}"))
    lines += [("resolution", f"{res}x{res}" if res else "?"), ("z_dim", info.get("z_dim")),
              ("w_dim", info.get("w_dim")), ("num_ws", info.get("num_ws")), ("classes", info.get("classes"))]
    if "conv_clamp" in info:
        lines += [("conv_clamp", info["conv_clamp"]), ("fp16 blocks", info.get("num_fp16_res"))]
    p = info.get("parameters")
    lines += [("parameters", f"{p:,}" if p is not None else "?"), ("file", info["file"])]
    if info.get("note"):
        lines.append(("note", info["note"]))
    return "\n".join(f"{k:14s} {'?' if v is None else v}" for k, v in lines)


def _load_array(path: str | None, what: str) -> np.ndarray | None:
    if path is None:
        return None
    try:
        a = np.load(path)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"cannot read {what} from {path}: {e}") from e
    return np.asarray(a, dtype=np.float32)


@torch.no_grad()
def sample(spec: str, out: str, z: str | None = None, ws: str | None = None, c: str | None = None,
           psi: float = 1.0, cutoff: int | None = None, noise: str = "const", precision: str = "fp32",
           device: str = "cpu", batch: int = 8, seed: int | None = None,
           registry: Registry | None = None) -> np.ndarray:
    """Images [N, C, H, W] float32 (not clamped) for the latents in ``z`` (or styles in
    ``ws``), written to ``out`` (.npy)."""
    if (z is None) == (ws is None):
        raise ValueError("give exactly one of --z and --ws")
    g = load_generator(spec, registry)
    dev = torch.device(device)
    g = g.to(dev).eval()
    if precision == "fp16":
        g.set_precision(torch.float16)
    elif precision != "fp32":
        raise ValueError("precision must be fp32 or fp16")
    zs, wss, cs = _load_array(z, "z"), _load_array(ws, "ws"), _load_array(c, "c")
    n = len(zs if zs is not None else wss)
    if zs is not None and (zs.ndim != 2 or zs.shape[1] != g.info.z_dim):
        raise ValueError(f"z must be [N, {g.info.z_dim}], got {list(zs.shape)}")
    if wss is not None and (wss.ndim != 3 or wss.shape[1:] != (g.info.num_ws, g.info.w_dim)):
        raise ValueError(f"ws must be [N, {g.info.num_ws}, {g.info.w_dim}], got {list(wss.shape)}")
    if g.info.c_dim and zs is not None:
        if cs is None or cs.shape != (n, g.info.c_dim):
            raise ValueError(f"this model is conditional: --c must be [N, {g.info.c_dim}] "
                             f"(got {None if cs is None else list(cs.shape)})")
    if seed is not None:
        torch.manual_seed(seed)
    images = []
    for i in range(0, n, batch):
        if zs is not None:
            zt = torch.from_numpy(zs[i:i + batch]).to(dev)
            ct = torch.from_numpy(cs[i:i + batch]).to(dev) if (cs is not None and g.info.c_dim) else None
            w = g.mapping(zt, ct, psi=psi, cutoff=cutoff)
        else:
            w = torch.from_numpy(wss[i:i + batch]).to(dev)
        images.append(g.synthesis(w, noise=noise).float().cpu().numpy())
    result = np.concatenate(images).astype(np.float32)
    np.save(out, result)
    return result


def main_info(spec: str) -> int:
    try:
        print(format_info(describe(spec)))
    except ModelLoadError as e:
        print(f"vj: {e}", file=sys.stderr)
        return 1
    return 0
