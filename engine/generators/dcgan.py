"""DCGAN generator (Radford et al. 2016): a stack of stride-2 transposed convolutions.

z [N, z_dim] -> 4x4 -> 8x8 -> ... -> resolution, batch norm + ReLU between layers and
tanh at the end. The parameter names follow the common PyTorch layout
(``main.<i>.weight`` with batch norm at i+1), so state dicts in that layout load as
they are. At load time each batch norm (inference statistics) is folded into the
transposed convolution before it: one op per layer at run time.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from engine.generators.base import Generator, ModelInfo, state_mismatch


def _layer_channels(resolution: int, ngf: int) -> list[int]:
    n_up = int(math.log2(resolution)) - 2
    if 2 ** (n_up + 2) != resolution or n_up < 1:
        raise ValueError(f"DCGAN resolution must be a power of two >= 8, got {resolution}")
    return [ngf * 2 ** (n_up - 1 - i) for i in range(n_up)]


class DCGAN(Generator):
    def __init__(self, z_dim: int = 100, ngf: int = 64, resolution: int = 64, channels: int = 3,
                 name: str = "dcgan"):
        super().__init__()
        self.info = ModelInfo(name=name, architecture="dcgan", resolution=resolution, z_dim=z_dim,
                              w_dim=z_dim, num_ws=1, channels=channels, extra={"ngf": ngf})
        widths = _layer_channels(resolution, ngf)
        layers: list[nn.Module] = []
        c_in = z_dim
        for i, c_out in enumerate(widths):
            stride, pad = (1, 0) if i == 0 else (2, 1)
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride, pad, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]
            c_in = c_out
        layers += [nn.ConvTranspose2d(c_in, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.eval()

    def mapping(self, z, c=None, psi: float = 1.0, cutoff=None):
        # No mapping network: the style is z, truncated towards the origin (the mean of
        # z, ``average_style``) so that psi behaves like StyleGAN's truncation.
        return self.truncate(z[:, None, :].clone(), psi, cutoff)  # a new tensor, never a view of z

    def synthesis(self, ws, noise="const", transform=None, **kwargs):
        x = ws[:, 0, :, None, None].to(next(self.parameters()).dtype)
        return self.main(x)

    @torch.no_grad()
    def fold_batchnorm(self) -> "DCGAN":
        """Fold each eval-mode batch norm into the transposed convolution before it."""
        layers = list(self.main)
        fused: list[nn.Module] = []
        i = 0
        while i < len(layers):
            layer = layers[i]
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(layer, nn.ConvTranspose2d) and isinstance(nxt, nn.BatchNorm2d):
                scale = nxt.weight / torch.sqrt(nxt.running_var + nxt.eps)
                conv = nn.ConvTranspose2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                          layer.stride, layer.padding, bias=True)
                conv.weight.copy_(layer.weight * scale[None, :, None, None])
                conv.bias.copy_(nxt.bias - nxt.running_mean * scale)
                fused.append(conv)
                i += 2
            else:
                fused.append(layer)
                i += 1
        self.main = nn.Sequential(*fused)
        return self


def config_from_state_dict(state: dict) -> dict:
    """The constructor arguments read from the shapes alone (for a bare state dict)."""
    convs = sorted((k for k in state if k.startswith("main.") and k.endswith(".weight") and state[k].ndim == 4),
                   key=lambda k: int(k.split(".")[1]))
    if not convs:
        raise ValueError("not a DCGAN state dict (no main.<i>.weight convolutions)")
    first, last = state[convs[0]], state[convs[-1]]
    return {"z_dim": int(first.shape[0]), "ngf": int(last.shape[0]), "channels": int(last.shape[1]),
            "resolution": 2 ** (len(convs) + 1)}


def from_state_dict(state: dict, config: dict) -> DCGAN:
    g = DCGAN(z_dim=int(config.get("z_dim", 100)), ngf=int(config.get("ngf", 64)),
              resolution=int(config.get("resolution", 64)), channels=int(config.get("channels", 3)),
              name=config.get("name", "dcgan"))
    # the batch norms' step counters are training state: neither needed nor required
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    problem = state_mismatch(g.state_dict(), state, optional=lambda k: k.endswith("num_batches_tracked"))
    if problem:
        raise ValueError(f"DCGAN weights do not match the architecture: {problem}")
    g.load_state_dict(state, strict=False)
    return g.eval()
