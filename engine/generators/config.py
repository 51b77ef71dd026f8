"""The one config normaliser: every config, whatever file or table it came from, is
brought to one layout before anything reads it.

That layout is the generator's constructor arguments in the stylegan3 repository's flat
form (``z_dim, w_dim, c_dim, img_resolution, img_channels, mapping_kwargs={...},
channel_base, channel_max, num_fp16_res, conv_clamp, ...``; for BigGAN the port's
config.json keys) plus ``architecture``, the model family that picks the builder
("stylegan2", "stylegan3-t", "stylegan3-r", "biggan", "dcgan"). ``normalize_config``:

- flattens a fixture-style ``{"architecture", "init_kwargs": {...}}``;
- merges the stylegan2-ada-pytorch ``synthesis_kwargs`` into the top level, with that
  code's defaults (no fp16 blocks, no clamp) where the file leaves them out;
- renames StyleGAN2's own ``architecture`` argument (skip/resnet/orig) to
  ``synthesis_architecture``, so ``architecture`` always names the family;
- turns EasyDicts and numpy values into plain Python.

It is idempotent and adds no family defaults: the loader merges several sources (file,
sidecar, models.toml) and a default filled in early would hide a later source's value.
Each family's ``generator_kwargs`` (``generator_config`` for BigGAN) starts from it and
adds that family's defaults and checks.
"""
from __future__ import annotations

import numpy as np

# StyleGAN2's synthesis variants: the official code calls them "architecture" too
SG2_SYNTHESIS_ARCHS = ("skip", "resnet", "orig")


def plain(x):
    """EasyDicts to dicts, numpy scalars and arrays to Python values (JSON-able)."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def normalize_config(config: dict | None) -> dict:
    """Any config layout -> the flat official layout (see the module docstring)."""
    config = plain(dict(config or {}))
    family = config.get("architecture")
    init = config.pop("init_kwargs", None)
    if isinstance(init, dict):
        init = normalize_config(init)
        if init.get("architecture") and not family:
            family = init["architecture"]
        init.pop("architecture", None)
        config = {**init, **{k: v for k, v in config.items() if k != "architecture"}}
    syn = config.pop("synthesis_kwargs", None)
    if isinstance(syn, dict):  # stylegan2-ada-pytorch layout: its own defaults where absent
        syn = {"num_fp16_res": 0, "conv_clamp": None, **syn}
        if syn.get("architecture") in SG2_SYNTHESIS_ARCHS:
            config.setdefault("synthesis_architecture", syn.pop("architecture"))
        for k, v in syn.items():
            config.setdefault(k, v)
    if family in SG2_SYNTHESIS_ARCHS:
        config["synthesis_architecture"] = family
        family = None
    if config.get("architecture") in SG2_SYNTHESIS_ARCHS:
        config["synthesis_architecture"] = config.pop("architecture")
    config.pop("architecture", None)
    if family:
        config["architecture"] = family
    return config


# What a config may say before anything is allocated from it: a sidecar or models.toml that
# says ``z_dim = 1000000000`` would otherwise have a builder (or the w_avg estimate) ask for
# terabytes. Generous: the largest published models are far inside these.
SIZE_LIMITS = {
    "z_dim": 1 << 14, "w_dim": 1 << 14, "c_dim": 1 << 17, "class_embed_dim": 1 << 14, "num_classes": 1 << 17,
    "img_resolution": 8192, "resolution": 8192, "output_dim": 8192, "img_channels": 8, "channels": 8,
    "channel_base": 1 << 20, "channel_max": 8192, "channel_width": 8192, "ngf": 8192, "num_layers": 256,
    "layers": 256, "n_stats": 1 << 10, "num_fp16_res": 64,
}


def check_sizes(config: dict, where: str = "") -> None:
    """ValueError naming the first size in ``config`` (or its nested tables) beyond SIZE_LIMITS."""
    for key, value in config.items():
        if isinstance(value, dict):
            check_sizes(value, f"{where}{key}.")
            continue
        limit = SIZE_LIMITS.get(key)
        if limit is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not 0 <= value <= limit:
            raise ValueError(f"{where}{key} = {value!r} is beyond the size limit 0..{limit}")

