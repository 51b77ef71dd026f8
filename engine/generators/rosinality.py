"""rosinality/stylegan2-pytorch checkpoints <-> official StyleGAN2 names.

A rosinality ``.pt`` is a ``torch.save`` dict with ``g_ema`` (the generator's state
dict) and, for checkpoints converted from official weights, ``latent_avg`` (the mean
w). The network is the official StyleGAN2 "skip" generator without conv clamp, so its
weights map one to one:

    style.{i+1}.*                 mapping.fc{i}.*
    input.input [1,C,4,4]         synthesis.b4.const [C,4,4]
    conv1.*, to_rgb1.*            synthesis.b4.conv1.*, synthesis.b4.torgb.*
    convs.{2k}, convs.{2k+1}      synthesis.b{2^(k+3)}.conv0, .conv1
    to_rgbs.{k}                   synthesis.b{2^(k+3)}.torgb
    <layer>.conv.weight [1,O,I,k,k]   <layer>.weight [O,I,k,k]
    <layer>.conv.modulation.*     <layer>.affine.*
    <layer>.noise.weight [1]      <layer>.noise_strength []
    <layer>.activate.bias         <layer>.bias;  to_rgb bias [1,3,1,1] -> [3]
    noises.noise_{j} [1,1,r,r]    noise_const [r,r] (j=0: b4.conv1; 2k+1, 2k+2: conv0, conv1 of block k)
    latent_avg                    mapping.w_avg

rosinality's blur kernels (``*.blur.kernel``, ``*.upsample.kernel``) are the same
[1,3,3,1] filter with the gain folded in; the official layout keeps the normalised
filter (``resample_filter``) and applies the gain in the op.
"""
from __future__ import annotations

import re

import torch


def is_rosinality(state: dict) -> bool:
    return "input.input" in state and "style.1.weight" in state and "conv1.conv.weight" in state


def _count(state: dict, pattern: str) -> int:
    return len({int(m.group(1)) for k in state for m in [re.match(pattern, k)] if m})


def _same(t: torch.Tensor) -> torch.Tensor:
    return t


def _key_pairs(n_mlp: int, log_size: int):
    """``(rosinality key, official key, to official, to rosinality)`` for every tensor:
    the table in the module docstring, read one way by ``to_official`` and the other
    way by ``from_official``."""
    for i in range(n_mlp):
        yield f"style.{i + 1}.weight", f"mapping.fc{i}.weight", _same, _same
        yield f"style.{i + 1}.bias", f"mapping.fc{i}.bias", _same, _same
    yield "input.input", "synthesis.b4.const", lambda t: t[0], lambda t: t[None]
    layers = [("conv1", "synthesis.b4.conv1", "noise_0"), ("to_rgb1", "synthesis.b4.torgb", None)]
    for k in range(log_size - 2):
        r = 2 ** (k + 3)
        layers += [(f"convs.{2 * k}", f"synthesis.b{r}.conv0", f"noise_{2 * k + 1}"),
                   (f"convs.{2 * k + 1}", f"synthesis.b{r}.conv1", f"noise_{2 * k + 2}"),
                   (f"to_rgbs.{k}", f"synthesis.b{r}.torgb", None)]
    for src, dst, noise in layers:
        yield f"{src}.conv.weight", f"{dst}.weight", lambda t: t[0], lambda t: t[None]
        yield f"{src}.conv.modulation.weight", f"{dst}.affine.weight", _same, _same
        yield f"{src}.conv.modulation.bias", f"{dst}.affine.bias", _same, _same
        if noise is None:  # ToRGB: a bias of its own, shaped for broadcasting
            yield f"{src}.bias", f"{dst}.bias", lambda t: t.reshape(-1), lambda t: t.reshape(1, -1, 1, 1)
            continue
        yield f"{src}.activate.bias", f"{dst}.bias", _same, _same
        yield f"{src}.noise.weight", f"{dst}.noise_strength", lambda t: t.reshape([]), lambda t: t.reshape(1)
        yield f"noises.{noise}", f"{dst}.noise_const", lambda t: t[0, 0], lambda t: t[None, None]


def to_official(state: dict, latent_avg: torch.Tensor | None = None) -> tuple[dict, dict]:
    """``(official state dict, config)``. Without ``latent_avg`` the mapping's
    ``w_avg`` is left out (the loader estimates it)."""
    n_mlp = _count(state, r"style\.(\d+)\.weight")
    log_size = _count(state, r"to_rgbs\.(\d+)\.") + 2
    out = {official: to(state[ros]) for ros, official, to, _ in _key_pairs(n_mlp, log_size)}
    if latent_avg is not None:
        out["mapping.w_avg"] = latent_avg.reshape(-1)
    w_dim = int(state["style.1.weight"].shape[0])
    config = {
        "z_dim": int(state["style.1.weight"].shape[1]), "w_dim": w_dim, "c_dim": 0,
        "img_resolution": 2 ** log_size, "img_channels": int(state["to_rgb1.conv.weight"].shape[1]),
        "mapping_kwargs": {"num_layers": n_mlp}, "num_fp16_res": 0, "conv_clamp": None,
        "synthesis_architecture": "skip", "source_format": "rosinality",
    }
    return out, config


def from_official(state: dict) -> tuple[dict, torch.Tensor]:
    """The inverse: ``(g_ema state dict in rosinality's layout, latent_avg)``, for a
    StyleGAN2 "skip" generator without conv clamp."""
    from engine.generators.stylegan2 import lowpass_filter
    n_mlp = _count(state, r"mapping\.fc(\d+)\.weight")
    log_size = _count(state, r"synthesis\.b(\d+)\.conv1\.weight") + 1  # blocks 4, 8, ... 2**log_size
    out = {ros: back(state[official]) for ros, official, _, back in _key_pairs(n_mlp, log_size)}
    # rosinality stores its resampling kernels, gain folded in
    kernel = lowpass_filter() * 4
    for k in range(log_size - 2):
        out[f"convs.{2 * k}.conv.blur.kernel"] = kernel.clone()
        out[f"to_rgbs.{k}.upsample.kernel"] = kernel.clone()
    return {k: v.contiguous() for k, v in out.items()}, state["mapping.w_avg"].clone()
