"""The one interface every model sits behind.

``mapping(z, c, psi)`` turns latents into per-layer styles ``ws`` [N, num_ws, w_dim];
``synthesis(ws, noise, transform)`` turns styles into images [N, 3, H, W] in about
[-1, 1]. Models without a mapping network (DCGAN) use the identity, with one
"layer" whose style is z itself, so patches can treat every model alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ModelInfo:
    name: str
    architecture: str
    resolution: int
    z_dim: int
    w_dim: int
    num_ws: int
    c_dim: int = 0
    channels: int = 3
    extra: dict = field(default_factory=dict)


class Generator(torch.nn.Module):
    info: ModelInfo

    @property
    def z_dim(self) -> int:
        return self.info.z_dim

    @property
    def resolution(self) -> int:
        return self.info.resolution

    def mapping(self, z: torch.Tensor, c: torch.Tensor | None = None, psi: float = 1.0) -> torch.Tensor:
        raise NotImplementedError

    def synthesis(self, ws: torch.Tensor, noise: str = "const", transform=None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, z, c=None, psi: float = 1.0, noise: str = "const"):
        return self.synthesis(self.mapping(z, c, psi), noise=noise)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
