"""The one interface every model sits behind.

``mapping(z, c, psi, cutoff)`` turns latents into per-layer styles ``ws``
[N, num_ws, w_dim]; ``synthesis(ws, noise, transform, ...)`` turns styles into images
[N, C, H, W] in about [-1, 1] (float32, not clamped). Models without a mapping network
(DCGAN) use the identity, with one "layer" whose style is z itself, so patches can
treat every model alike; a model ignores the arguments it has no use for.

Truncation: ``psi`` pulls each style towards the model's average style (``w_avg``),
``ws = w_avg + psi * (w - w_avg)``; ``cutoff`` limits that to the first ``cutoff``
layers (None = all), so coarse layers can be tamed while fine detail stays free.

Names. Parameters and buffers keep the names of the format a model's weights come in
(NVIDIA's ``G_ema.state_dict()`` for StyleGAN, the port's for BigGAN, ...), so
``state_dict()`` *is* the file's layout and no key is ever translated. Where an official
submodule's name is also an interface method (StyleGAN's ``mapping`` and ``synthesis``
networks), the submodule is registered under its official name all the same (in
``_modules``, see ``StyleGenerator``), so its keys stay ``mapping.*`` / ``synthesis.*``;
the method keeps the attribute name, and Python code reaches the submodule as
``mapping_network`` / ``synthesis_network``.

Style mixing: ``ws`` is per layer, so mixing is ``ws[:, :k] = other[:, :k]`` before
``synthesis``; ``mix_styles`` does that.

Noise (models with noise inputs, e.g. StyleGAN2): ``noise`` is
- ``"const"``: the fixed noise images stored with the model (deterministic),
- ``"random"``: fresh Gaussian noise every call,
- ``"none"``: no noise,
- a number or a sequence of numbers: random noise, with that strength multiplier
  (one number for every layer, or one per noise layer), so a patch can write
  ``noise=s["audio.onset"]``.
``noise_strength`` scales each layer's *trained* noise strength: None or 1.0 = as
trained, 0 = off, 2 = doubled; a sequence gives one multiplier per noise layer
(``info.extra["noise_layers"]`` names them, coarse to fine); a dict maps layer names
to multipliers (the rest stay at 1).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
import torch

NOISE_MODES = ("const", "random", "none")


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


def resolve_noise(noise, noise_strength=None):
    """``(mode, strength)`` from the ``noise`` and ``noise_strength`` arguments (see the
    module docstring); strength is None (as trained), a float, a sequence or a dict."""
    if isinstance(noise, str):
        if noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {', '.join(NOISE_MODES)} or a strength, got {noise!r}")
        return noise, noise_strength
    if noise is None:
        return "none", None
    if isinstance(noise, numbers.Number) or isinstance(noise, (list, tuple)) or hasattr(noise, "__array__"):
        values = noise.detach().cpu().numpy() if torch.is_tensor(noise) else np.asarray(noise, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError(f"noise strength must be finite, got {noise!r}")
        if noise_strength is not None:
            raise ValueError("give the noise strength either as noise=<number> or as noise_strength=, not both")
        return "random", noise
    raise TypeError(f"noise must be a mode name or a strength, got {type(noise).__name__}")


def truncate_styles(ws: torch.Tensor, w_avg: torch.Tensor, psi=1.0, cutoff: int | None = None) -> torch.Tensor:
    """``w_avg + psi * (ws - w_avg)`` on the first ``cutoff`` layers (all when None).
    ``psi`` is a number or one per sample (a tensor, array or list [N]). The one
    truncation: mapping networks and ``Generator.truncate`` both call it."""
    if isinstance(psi, numbers.Number):
        if psi == 1:
            return ws
        psi = float(psi)
    else:
        psi = torch.as_tensor(psi).to(ws).reshape(-1, 1, 1)
    avg = w_avg.to(ws)
    if cutoff is None:
        return avg.lerp(ws, psi)
    cutoff = int(cutoff)
    ws = ws.clone()
    ws[:, :cutoff] = avg.lerp(ws[:, :cutoff], psi)
    return ws


def mix_styles(ws: torch.Tensor, other: torch.Tensor, layers) -> torch.Tensor:
    """Style mixing: ``ws`` with the layers ``layers`` (a slice, an int k meaning the
    first k layers, or an index list) taken from ``other``."""
    out = ws.clone()
    if isinstance(layers, int):
        layers = slice(0, layers)
    out[:, layers] = other.expand_as(ws)[:, layers]
    return out


class Generator(torch.nn.Module):
    info: ModelInfo

    @property
    def z_dim(self) -> int:
        return self.info.z_dim

    @property
    def resolution(self) -> int:
        return self.info.resolution

    def mapping(self, z: torch.Tensor, c: torch.Tensor | None = None, psi: float = 1.0,
                cutoff: int | None = None) -> torch.Tensor:
        raise NotImplementedError

    def synthesis(self, ws: torch.Tensor, noise="const", transform=None, **kwargs) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, z, c=None, psi: float = 1.0, noise="const", cutoff: int | None = None, **kwargs):
        return self.synthesis(self.mapping(z, c, psi=psi, cutoff=cutoff), noise=noise, **kwargs)

    def average_style(self) -> torch.Tensor:
        """The style truncation pulls towards: ``w_avg``, or the origin (the mean of z)
        for models without a mapping network."""
        p = next(self.parameters())
        return torch.zeros(self.info.w_dim, device=p.device)

    def truncate(self, ws: torch.Tensor, psi=1.0, cutoff: int | None = None) -> torch.Tensor:
        """Truncation of styles given directly (``w``/``ws`` from a patch), the same
        operation ``mapping`` applies."""
        return truncate_styles(ws, self.average_style(), psi, cutoff)

    def weights_changed(self) -> None:
        """Runs after ``.to()`` (and every other ``_apply``) and ``load_state_dict``: a
        generator that precomputes from its weights (StyleGAN2's prepared convolutions,
        BigGAN's inference plan) rebuilds or drops that here."""

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self.weights_changed()
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        out = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.weights_changed()
        return out

    def set_precision(self, dtype: torch.dtype, channels_last: bool = False) -> "Generator":
        """Run the synthesis in ``dtype`` (float16 on CUDA). The default casts the whole
        module; generators that keep parts in float32 (mapping, styles, the image sum)
        override this."""
        return self.to(dtype)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


class StyleGenerator(Generator):
    """A generator made of NVIDIA's two networks, ``mapping`` and ``synthesis``
    (StyleGAN2, StyleGAN3). Both are registered under those official names (see "Names"
    in the module docstring), so ``state_dict()`` has the official keys; the interface
    methods ``mapping()`` and ``synthesis()`` keep the attribute names."""

    def set_networks(self, mapping: torch.nn.Module, synthesis: torch.nn.Module) -> None:
        # straight into _modules: add_module refuses a name that is a method, and
        # ``self.mapping = ...`` would read as replacing the interface method
        self._modules["synthesis"] = synthesis
        self._modules["mapping"] = mapping

    def get_submodule(self, target: str) -> torch.nn.Module:
        # nn.Module resolves dotted paths with getattr, which finds the methods; so do
        # get_parameter and get_buffer, which come through here
        head, _, rest = target.partition(".")
        if head in ("mapping", "synthesis"):
            return self._modules[head].get_submodule(rest)
        return super().get_submodule(target)

    @property
    def mapping_network(self) -> torch.nn.Module:
        return self._modules["mapping"]

    @property
    def synthesis_network(self) -> torch.nn.Module:
        return self._modules["synthesis"]

    def mapping(self, z, c=None, psi=1.0, cutoff: int | None = None) -> torch.Tensor:
        """ws [N, num_ws, w_dim] float32; ``psi`` (a number or one per sample) pulls the
        first ``cutoff`` rows (all if None) towards ``w_avg``."""
        return self.mapping_network(z, c, psi=psi, cutoff=cutoff)

    def average_style(self) -> torch.Tensor:
        return self.mapping_network.w_avg.float()

    def check_styles(self, ws: torch.Tensor) -> None:
        nw, wd = self.info.num_ws, self.info.w_dim
        if ws.ndim != 3 or ws.shape[1] != nw or ws.shape[2] != wd:
            raise ValueError(f"ws must be [N, {nw}, {wd}], got {list(ws.shape)}")


def state_mismatch(expected: dict, state: dict, optional=lambda key: False) -> str:
    """Why ``state`` does not load into a module whose ``state_dict()`` is ``expected``:
    missing names (except the ``optional`` ones), unexpected names, wrong shapes; "" when
    it fits. Every builder checks with it before loading, so errors name the tensors."""
    missing = sorted(k for k in expected if k not in state and not optional(k))
    unexpected = sorted(k for k in state if k not in expected)
    wrong = sorted(k for k in state if k in expected and tuple(state[k].shape) != tuple(expected[k].shape))
    parts = []
    if missing:
        parts.append(f"missing {missing[:6]}")
    if unexpected:
        parts.append(f"unexpected {unexpected[:6]}")
    if wrong:
        parts.append("wrong shapes " + ", ".join(f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
                                                 for k in wrong[:5]))
    return "; ".join(parts)
