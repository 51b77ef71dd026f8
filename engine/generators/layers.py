"""The layers StyleGAN2 and StyleGAN3 share, under NVIDIA's names.

Class, parameter and argument names are the official ones (``FullyConnectedLayer`` with
``weight``/``bias``, ``activation``, ``lr_multiplier``, ``weight_init``, ``bias_init``;
``MappingNetwork`` with ``fc{i}``, ``embed``, ``w_avg``), so official state dicts load
into them key for key.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.generators.base import truncate_styles

SQRT2 = math.sqrt(2.0)

# the official MappingNetwork's keyword arguments (``mapping_kwargs`` in a config)
MAPPING_ARGS = ("num_layers", "embed_features", "layer_features", "activation", "lr_multiplier", "w_avg_beta")


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    """Equalised learning rate linear layer: ``x @ (W * lr/sqrt(in)).T + b * lr``, then
    ``activation`` ("linear", or "lrelu": leaky ReLU 0.2 times sqrt(2)).

    The options are keyword-only: the two official versions order them differently."""

    def __init__(self, in_features: int, out_features: int, *, activation: str = "linear",
                 lr_multiplier: float = 1.0, weight_init: float = 1.0, bias_init=0.0):
        super().__init__()
        if activation not in ("linear", "lrelu"):
            raise ValueError(f"activation must be 'linear' or 'lrelu', got {activation!r}")
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * (weight_init / lr_multiplier))
        # bias_init may be one number or one per output (StyleGAN3's input affine starts at [1, 0, 0, 0])
        bias = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features]) / lr_multiplier
        self.bias = nn.Parameter(torch.tensor(bias, dtype=torch.float32))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def weight_and_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weight and bias as applied (gains folded in), float32."""
        return self.weight.float() * self.weight_gain, self.bias.float() * self.bias_gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the official order of operations (scaled weight, then the product), for parity
        w, b = self.weight_and_bias()
        if self.activation == "linear":
            return torch.addmm(b, x, w.t())
        return F.leaky_relu(x.matmul(w.t()) + b, 0.2) * SQRT2


def mapping_args(given: dict | None, **defaults) -> dict:
    """``mapping_kwargs`` from a config, over a generator's ``defaults``; an argument the
    official MappingNetwork does not take is an error, not silently dropped."""
    kwargs = {**defaults, **(given or {})}
    unknown = sorted(set(kwargs) - set(MAPPING_ARGS))
    if unknown:
        raise ValueError(f"unknown mapping_kwargs: {unknown} (known: {', '.join(MAPPING_ARGS)})")
    return kwargs


class MappingNetwork(nn.Module):
    """z (and the embedded class, when ``c_dim`` > 0), each normalised to unit second
    moment, through ``num_layers`` fully connected layers -> w, broadcast to ``num_ws``
    rows and truncated towards ``w_avg`` (``truncate_styles``)."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None,
                 activation: str = "lrelu", lr_multiplier: float = 0.01, w_avg_beta: float = 0.998):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        self.w_avg_beta = w_avg_beta  # training only
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim else 0
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(features[i], features[i + 1], activation=activation,
                                                        lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, psi=1.0,
                cutoff: int | None = None) -> torch.Tensor:
        x = None
        if self.z_dim:
            if z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
            x = normalize_2nd_moment(z.float())
        if self.c_dim:
            if c is None:
                raise ValueError(f"this model is conditional (c_dim={self.c_dim}): pass c, e.g. a one-hot "
                                 f"[N, {self.c_dim}]")
            y = normalize_2nd_moment(self.embed(c.float().reshape(-1, self.c_dim)))
            x = y if x is None else torch.cat([x, y], dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        return truncate_styles(ws, self.w_avg, psi, cutoff)


class ModulatedLayer(nn.Module):
    """What every modulated convolution is trained with, under the official names:
    ``affine`` (w -> one style per input channel, starting at 1), the conv ``weight``
    [out, in, k, k] and its ``bias`` [out]. Subclasses add the rest of the layer."""

    def __init__(self, w_dim: int, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
