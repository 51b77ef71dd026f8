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


def _log_size(state: dict) -> int:
    n_rgbs = len({int(m.group(1)) for k in state for m in [re.match(r"to_rgbs\.(\d+)\.", k)] if m})
    return n_rgbs + 2


def to_official(state: dict, latent_avg: torch.Tensor | None = None) -> tuple[dict, dict]:
    """``(official state dict, config)``. Without ``latent_avg`` the mapping's
    ``w_avg`` is left out (the loader estimates it)."""
    out = {}
    n_mlp = len({int(m.group(1)) for k in state for m in [re.match(r"style\.(\d+)\.weight", k)] if m})
    for i in range(n_mlp):
        out[f"mapping.fc{i}.weight"] = state[f"style.{i + 1}.weight"]
        out[f"mapping.fc{i}.bias"] = state[f"style.{i + 1}.bias"]
    if latent_avg is not None:
        out["mapping.w_avg"] = latent_avg.reshape(-1)
    out["synthesis.b4.const"] = state["input.input"][0]
    log_size = _log_size(state)

    def layer(src: str, dst: str, noise: str | None):
        out[f"{dst}.weight"] = state[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = state[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = state[f"{src}.conv.modulation.bias"]
        if noise is not None:
            out[f"{dst}.bias"] = state[f"{src}.activate.bias"]
            out[f"{dst}.noise_strength"] = state[f"{src}.noise.weight"].reshape([])
            out[f"{dst}.noise_const"] = state[f"noises.{noise}"][0, 0]
        else:
            out[f"{dst}.bias"] = state[f"{src}.bias"].reshape(-1)

    layer("conv1", "synthesis.b4.conv1", "noise_0")
    layer("to_rgb1", "synthesis.b4.torgb", None)
    for k in range(log_size - 2):
        r = 2 ** (k + 3)
        layer(f"convs.{2 * k}", f"synthesis.b{r}.conv0", f"noise_{2 * k + 1}")
        layer(f"convs.{2 * k + 1}", f"synthesis.b{r}.conv1", f"noise_{2 * k + 2}")
        layer(f"to_rgbs.{k}", f"synthesis.b{r}.torgb", None)
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
    out = {}
    fcs = sorted(int(m.group(1)) for k in state for m in [re.match(r"mapping\.fc(\d+)\.weight", k)] if m)
    for i in fcs:
        out[f"style.{i + 1}.weight"] = state[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = state[f"mapping.fc{i}.bias"]
    out["input.input"] = state["synthesis.b4.const"][None]
    res = sorted(int(m.group(1)) for k in state for m in [re.match(r"synthesis\.b(\d+)\.conv1\.weight", k)] if m)
    kernel = lowpass_filter() * 4

    def layer(src: str, dst: str, noise: str | None):
        out[f"{dst}.conv.weight"] = state[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = state[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = state[f"{src}.affine.bias"]
        if noise is not None:
            out[f"{dst}.activate.bias"] = state[f"{src}.bias"]
            out[f"{dst}.noise.weight"] = state[f"{src}.noise_strength"].reshape(1)
            out[f"noises.{noise}"] = state[f"{src}.noise_const"][None, None]
        else:
            out[f"{dst}.bias"] = state[f"{src}.bias"].reshape(1, -1, 1, 1)

    layer("synthesis.b4.conv1", "conv1", "noise_0")
    layer("synthesis.b4.torgb", "to_rgb1", None)
    for k, r in enumerate(res[1:]):
        layer(f"synthesis.b{r}.conv0", f"convs.{2 * k}", f"noise_{2 * k + 1}")
        out[f"convs.{2 * k}.conv.blur.kernel"] = kernel.clone()
        layer(f"synthesis.b{r}.conv1", f"convs.{2 * k + 1}", f"noise_{2 * k + 2}")
        layer(f"synthesis.b{r}.torgb", f"to_rgbs.{k}", None)
        out[f"to_rgbs.{k}.upsample.kernel"] = kernel.clone()
    return {k: v.contiguous() for k, v in out.items()}, state["mapping.w_avg"].clone()
