"""BigGAN-deep generator (Brock, Donahue & Simonyan, ICLR 2019), in the state-dict
layout of huggingface's pytorch-pretrained-BigGAN (``pytorch_model.bin`` + ``config.json``).

Written from the paper and the format notes (docs/architecture.md, "BigGAN"); no code of
the port is used. The network, as the port's weights expect it:

- ``cond = concat(z, embeddings(c))``: z [N, z_dim] and a class vector c [N, num_classes]
  (one-hot or any mix) through a bias-free linear embedding. ``cond`` conditions every layer.
- ``gen_z``: a linear layer from ``cond`` to a 4x4 grid of ``16 * channel_width``
  channels, stored row-major as (height, width, channel) (TensorFlow's NHWC).
- ``layers``: residual blocks (BigGAN-deep "GBlock"): BN-ReLU-conv1x1 (to in/4 channels),
  BN-ReLU-[nearest 2x up]-conv3x3, BN-ReLU-conv3x3, BN-ReLU-conv1x1 (to out channels); the
  skip path keeps the first ``out`` channels and is upsampled alike. One self-attention
  block (SAGAN: theta/phi/g 1x1 convs, phi and g max-pooled 2x2, softmax over keys, o-conv,
  ``x + gamma * o``) sits before block ``attention_layer_position``, so it takes that index
  in ``generator.layers`` and the blocks after it shift by one.
- every block's batch norms are class-conditional: ``(x - mean) / sqrt(var + eps) *
  (1 + scale(cond)) + offset(cond)``, with ``scale``/``offset`` bias-free linear layers.
- a last unconditional batch norm, ReLU, a 3x3 conv to ``channel_width`` channels of which
  the first 3 are the image, tanh.
- every conv and linear except ``embeddings`` is spectrally normalised. The format stores
  ``weight_orig`` and the power-iteration vectors ``weight_u``, ``weight_v``; at inference
  the weight is ``weight_orig / (u . (W v))`` with no further iteration. It is computed
  once, not per frame (``BigGAN.refresh``).

Batch-norm statistics. BigGAN has no running statistics in the usual sense: the port
stores ``n_stats`` (51) rows of means and variances per batch norm, "standing statistics"
measured at truncations 0, 1/(n_stats-1), ..., 1. A truncation t picks row
``i = floor(t * (n_stats - 1))`` and, between rows, the port blends with
``coef = frac(t * (n_stats - 1))`` as ``coef * row[i] + (1 - coef) * row[i + 1]`` (sic:
the weights look swapped against a linear interpolation). That is reproduced as it is
(``stats_interpolation = "port"``, the default) for parity with images made by the port.
Because that rule jumps at every grid point, a truncation that sits on the grid (0.4,
0.5) is snapped to it when it is within ``GRID_SNAP`` steps, so that psi values that went
through float32 or float16 still pick the row the port picks for the exact value.
``stats_interpolation = "linear"`` (config key) blends the rows the usual way instead,
continuous in psi, for performances that sweep the truncation.

How it sits behind the engine's generator interface (engine/generators/base.py):

- BigGAN has no mapping network. ``mapping(z, c, psi)`` returns one style row per sample
  (``num_ws = 1``): ``ws[:, 0] = concat(psi * z, embeddings(c), psi)``, so
  ``w_dim = z_dim + class_embed_dim + 1``. The last number carries the truncation to the
  batch norms (their statistics depend on it). Interpolating styles therefore interpolates
  z, the class embedding and the truncation together, which is what one wants.
- ``psi`` is the truncation. The port expects ``z = truncnorm(-2, 2) * t`` and the same
  ``t`` for the statistics; here z arrives already drawn, so ``mapping`` scales it by
  ``psi`` and uses ``psi`` (clamped to [0, 1]) for the statistics. So ``mapping(
  truncated_z(n, 1.0, seed), c, psi=t)`` reproduces the port's ``model(truncated_noise_sample(
  truncation=t, ...), c, t)``. Do not pre-scale z by psi as well. psi > 1 extrapolates z.
- ``c``: None means the model's default class (config key ``default_class``, else class 0;
  ImageNet class 0 is "tench"); an int (or 0-d tensor) is a class index; a vector of
  ``num_classes`` weights is used as given (a 50/50 mix of two one-hots blends the two
  classes' embeddings; the port does not normalise, nor does this).
- ``synthesis(ws)`` ignores ``noise`` and ``transform``; images are [N, 3, H, W] in [-1, 1].

Config keys (the port's config.json): ``output_dim``, ``z_dim``, ``class_embed_dim``
(the port sizes the embedding by ``z_dim``; both are 128 in every released model),
``channel_width``, ``num_classes``, ``layers`` (``[upsample, in_mult, out_mult]`` per
block, channels = mult * channel_width), ``attention_layer_position``, ``eps`` (batch norm
epsilon; spectral-norm eps only matters when training), ``n_stats``. Engine extras:
``architecture = "biggan"``, ``name``, ``default_class``, ``stats_interpolation``.
A ``pytorch_model.bin`` without its config.json loads all the same when its blocks are
one of the released layouts: the loader reads the config from the tensor shapes
(``config_from_state_dict``; ``eps`` is not in the shapes and is the released 1e-4).
Any other layout is refused with a ModelLoadError that names the missing config.json.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.generators.base import Generator, ModelInfo, state_mismatch
from engine.generators.config import normalize_config

GRID_SNAP = 0.02  # in statistics rows: psi within 0.02/(n_stats-1) of a grid point is on it

# Block lists of the three released BigGAN-deep models: (upsample, in_mult, out_mult).
STANDARD_LAYERS = {
    128: [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 4),
          (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)],
    256: [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 8),
          (False, 8, 8), (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)],
    512: [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 8),
          (False, 8, 8), (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1),
          (False, 1, 1), (True, 1, 1)],
}


def standard_config(output_dim: int = 128, **overrides) -> dict:
    """The config.json of a released BigGAN-deep model (128, 256 or 512), with overrides
    (e.g. ``channel_width=4, num_classes=10`` for a tiny test model)."""
    if output_dim not in STANDARD_LAYERS:
        raise ValueError(f"BigGAN-deep comes in 128, 256 and 512 px, not {output_dim}")
    config = {"output_dim": output_dim, "z_dim": 128, "class_embed_dim": 128, "channel_width": 128,
              "num_classes": 1000, "layers": [list(x) for x in STANDARD_LAYERS[output_dim]],
              "attention_layer_position": 8, "eps": 1e-4, "n_stats": 51, "architecture": "biggan"}
    config.update(overrides)
    return config


def truncated_z(n: int = 1, psi: float = 1.0, seed: int | None = None, dim: int = 128,
                bound: float = 2.0) -> np.ndarray:
    """BigGAN's truncated noise: [n, dim] float32 standard normals, each redrawn until it
    lies in [-bound, bound], then scaled by ``psi``. The same seed gives the same z.

    ``mapping`` scales z by its own ``psi``: to feed it, draw with ``psi=1`` and pass the
    truncation to ``mapping`` (or ``p.controls(psi=...)``)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, dim))
    out = np.abs(z) > bound
    while out.any():
        z[out] = rng.standard_normal(int(out.sum()))
        out = np.abs(z) > bound
    return (z * psi).astype(np.float32)


def stats_rows(means: torch.Tensor, variances: torch.Tensor, psi: torch.Tensor,
               mode: str = "port") -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-norm statistics for truncations ``psi`` [N] from the stored rows
    [n_stats, C] (row k measured at truncation k / (n_stats - 1)): [N, C] each, float32.
    ``mode="port"`` blends like the port (see the module docstring), ``"linear"`` linearly."""
    n = means.shape[0]
    q = psi.detach().double().clamp(0.0, 1.0) * (n - 1)
    if mode == "port":
        near = torch.round(q)
        q = torch.where((q - near).abs() < GRID_SNAP, near, q)
    elif mode != "linear":
        raise ValueError(f"stats_interpolation must be 'port' or 'linear', not {mode!r}")
    lo = q.floor()
    coef = (q - lo).float()[:, None]
    lo = lo.long()
    hi = (lo + 1).clamp(max=n - 1)
    m, v = means.float(), variances.float()
    if mode == "port":
        # the port: coef * row[lo] + (1 - coef) * row[lo + 1], and row[lo] itself when coef == 0
        on_grid = coef == 0
        mean = torch.where(on_grid, m[lo], m[lo] * coef + m[hi] * (1 - coef))
        var = torch.where(on_grid, v[lo], v[lo] * coef + v[hi] * (1 - coef))
    else:
        mean = m[lo] * (1 - coef) + m[hi] * coef
        var = v[lo] * (1 - coef) + v[hi] * coef
    return mean, var


# ---------------------------------------------------------------------------------------
# Modules. Their parameter and buffer names are the format's; forward passes run from the
# flattened plan that BigGAN._build_plan() builds.

class _SpectralNorm(nn.Module):
    """Holds ``weight_orig``, ``weight_u``, ``weight_v`` (+ ``bias``) like the format."""

    def __init__(self, shape: tuple[int, ...], bias: bool):
        super().__init__()
        self.weight_orig = nn.Parameter(torch.zeros(shape))
        self.register_buffer("weight_u", torch.zeros(shape[0]))
        self.register_buffer("weight_v", torch.zeros(math.prod(shape[1:])))
        self.register_parameter("bias", nn.Parameter(torch.zeros(shape[0])) if bias else None)

    @torch.no_grad()
    def effective_weight(self) -> torch.Tensor:
        """``weight_orig / sigma`` with ``sigma = u . (W v)`` (inference: no power iteration), float32."""
        w = self.weight_orig.float()
        sigma = torch.dot(self.weight_u.float(), w.reshape(w.shape[0], -1) @ self.weight_v.float())
        return w / sigma

    @torch.no_grad()
    def random_init(self, gen: torch.Generator, gain: float = 1.0) -> None:
        w = torch.randn(self.weight_orig.shape, generator=gen) * gain
        mat = w.reshape(w.shape[0], -1)
        v = F.normalize(torch.randn(mat.shape[1], generator=gen), dim=0)
        for _ in range(30):  # power iteration, so that sigma is the spectral norm
            u = F.normalize(mat @ v, dim=0)
            v = F.normalize(mat.t() @ u, dim=0)
        self.weight_orig.copy_(w)
        self.weight_u.copy_(u / gain)  # sigma = u . (W v) = spectral norm / gain: W / sigma has norm `gain`
        self.weight_v.copy_(v)
        if self.bias is not None:
            self.bias.copy_(torch.randn(self.bias.shape, generator=gen) * 0.05)


class _SNLinear(_SpectralNorm):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__((out_features, in_features), bias)


class _SNConv2d(_SpectralNorm):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True):
        super().__init__((out_channels, in_channels, kernel_size, kernel_size), bias)
        self.padding = kernel_size // 2


class _StandingStats(nn.Module):
    """A batch norm's ``n_stats`` rows of standing statistics (see the module docstring)."""

    def __init__(self, channels: int, n_stats: int):
        super().__init__()
        self.channels = channels
        self.register_buffer("running_means", torch.zeros(n_stats, channels))
        self.register_buffer("running_vars", torch.ones(n_stats, channels))


class _CondBatchNorm(_StandingStats):
    def __init__(self, channels: int, cond_dim: int, n_stats: int):
        super().__init__(channels, n_stats)
        self.scale = _SNLinear(cond_dim, channels, bias=False)
        self.offset = _SNLinear(cond_dim, channels, bias=False)


class _BatchNorm(_StandingStats):
    def __init__(self, channels: int, n_stats: int):
        super().__init__(channels, n_stats)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))


class _GenBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, upsample: bool, n_stats: int):
        super().__init__()
        if out_ch > in_ch:
            raise ValueError(f"a BigGAN-deep block cannot widen its skip path ({in_ch} -> {out_ch} channels)")
        mid = in_ch // 4
        self.in_ch, self.out_ch, self.upsample = in_ch, out_ch, upsample
        self.bn_0 = _CondBatchNorm(in_ch, cond_dim, n_stats)
        self.conv_0 = _SNConv2d(in_ch, mid, 1)
        self.bn_1 = _CondBatchNorm(mid, cond_dim, n_stats)
        self.conv_1 = _SNConv2d(mid, mid, 3)
        self.bn_2 = _CondBatchNorm(mid, cond_dim, n_stats)
        self.conv_2 = _SNConv2d(mid, mid, 3)
        self.bn_3 = _CondBatchNorm(mid, cond_dim, n_stats)
        self.conv_3 = _SNConv2d(mid, out_ch, 1)

    def norms(self):
        return [self.bn_0, self.bn_1, self.bn_2, self.bn_3]

    def convs(self):
        return [self.conv_0, self.conv_1, self.conv_2, self.conv_3]


class _SelfAttention(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.ch = ch
        self.snconv1x1_theta = _SNConv2d(ch, ch // 8, 1, bias=False)
        self.snconv1x1_phi = _SNConv2d(ch, ch // 8, 1, bias=False)
        self.snconv1x1_g = _SNConv2d(ch, ch // 2, 1, bias=False)
        self.snconv1x1_o_conv = _SNConv2d(ch // 2, ch, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))


class _Synthesis(nn.Module):
    """Named ``generator`` inside BigGAN, as in the format."""

    def __init__(self, config: dict):
        super().__init__()
        ch = int(config["channel_width"])
        cond_dim = int(config["z_dim"]) + int(config["class_embed_dim"])
        n_stats = int(config["n_stats"])
        layers = config["layers"]
        self.first_ch = ch * int(layers[0][1])
        self.gen_z = _SNLinear(cond_dim, 4 * 4 * self.first_ch)
        mods: list[nn.Module] = []
        for i, (up, m_in, m_out) in enumerate(layers):
            if i == int(config["attention_layer_position"]):
                mods.append(_SelfAttention(ch * int(m_in)))
            mods.append(_GenBlock(ch * int(m_in), ch * int(m_out), cond_dim, bool(up), n_stats))
        self.layers = nn.ModuleList(mods)
        last_ch = ch * int(layers[-1][2])
        self.bn = _BatchNorm(last_ch, n_stats)
        self.conv_to_rgb = _SNConv2d(last_ch, ch, 3)


# ---------------------------------------------------------------------------------------

def generator_config(config: dict) -> dict:
    """The config BigGAN is built from (its counterpart of StyleGAN's ``generator_kwargs``:
    the constructor takes the port's config dict itself): ``normalize_config``'s layout,
    the port's defaults where absent, checked."""
    cfg = normalize_config(config)
    missing = [k for k in ("output_dim", "z_dim", "channel_width", "num_classes", "layers") if k not in cfg]
    if missing:
        raise ValueError(f"BigGAN config lacks {', '.join(missing)}")
    cfg.setdefault("class_embed_dim", cfg["z_dim"])
    cfg.setdefault("attention_layer_position", 8)
    cfg.setdefault("eps", 1e-4)
    cfg.setdefault("n_stats", 51)
    cfg["layers"] = [[bool(u), int(a), int(b)] for u, a, b in cfg["layers"]]
    ups = sum(1 for u, _, _ in cfg["layers"] if u)
    if 4 * 2 ** ups != int(cfg["output_dim"]):
        raise ValueError(f"BigGAN layers upsample 4 px to {4 * 2 ** ups} px, but output_dim is {cfg['output_dim']}")
    if int(cfg["num_classes"]) < 1:
        raise ValueError("BigGAN needs num_classes >= 1")
    if int(cfg["n_stats"]) < 2:
        raise ValueError("BigGAN needs n_stats >= 2")
    if int(cfg["channel_width"]) * int(cfg["layers"][-1][2]) < 3 or int(cfg["channel_width"]) < 3:
        raise ValueError("BigGAN channel_width must give at least 3 output channels")
    cfg.setdefault("architecture", "biggan")
    # engine options are validated but not written in when absent, so that models.toml
    # can still set them for a file whose metadata config lacks them
    if cfg.get("stats_interpolation", "port") not in ("port", "linear"):
        raise ValueError(f"stats_interpolation must be 'port' or 'linear', not {cfg['stats_interpolation']!r}")
    if not 0 <= int(cfg.get("default_class", 0)) < int(cfg["num_classes"]):
        raise ValueError(f"default_class {cfg['default_class']} is not one of the {cfg['num_classes']} classes")
    return cfg


class BigGAN(Generator):
    """BigGAN-deep behind the engine's generator interface (see the module docstring)."""

    def __init__(self, config: dict | None = None, seed: int | None = 0, **overrides):
        """A generator from a config (the port's config.json content; default: the 128 px
        ImageNet model's). ``seed`` fills it with random weights (with proper spectral-norm
        vectors and a non-zero attention gain); ``seed=None`` leaves the format's defaults
        for weights that are about to be loaded."""
        super().__init__()
        cfg = generator_config({**(config or standard_config(128)), **overrides})
        self.config = cfg
        z_dim, e_dim = int(cfg["z_dim"]), int(cfg["class_embed_dim"])
        self.eps = float(cfg["eps"])
        self.stats_mode = cfg.get("stats_interpolation", "port")
        self.default_class = int(cfg.get("default_class", 0))
        self.embeddings = nn.Linear(int(cfg["num_classes"]), e_dim, bias=False)
        self.generator = _Synthesis(cfg)
        self.info = ModelInfo(
            name=str(cfg.get("name", f"biggan-deep-{cfg['output_dim']}")), architecture="biggan",
            resolution=int(cfg["output_dim"]), z_dim=z_dim, w_dim=z_dim + e_dim + 1, num_ws=1,
            c_dim=int(cfg["num_classes"]), channels=3,
            extra={"class_embed_dim": e_dim, "channel_width": int(cfg["channel_width"]),
                   "n_stats": int(cfg["n_stats"]), "default_class": self.default_class,
                   "stats_interpolation": self.stats_mode,
                   "ws_layout": {"z": [0, z_dim], "class": [z_dim, z_dim + e_dim], "psi": z_dim + e_dim}})
        self._plan: dict | None = None
        if seed is not None:
            self._random_init(seed)
        self.requires_grad_(False)
        self.eval()

    # -- weights ---------------------------------------------------------------------
    @torch.no_grad()
    def _random_init(self, seed: int) -> None:
        gen = torch.Generator().manual_seed(int(seed))
        self.embeddings.weight.copy_(torch.randn(self.embeddings.weight.shape, generator=gen))
        for name, m in self.named_modules():
            if isinstance(m, _SpectralNorm):
                # class-conditional gains and offsets small (gains near 1, as in trained models)
                m.random_init(gen, gain=0.1 if name.endswith((".scale", ".offset")) else 1.0)
            elif isinstance(m, _SelfAttention):
                m.gamma.fill_(0.5)
            elif isinstance(m, _StandingStats):
                m.running_means.copy_(torch.randn(m.running_means.shape, generator=gen) * 0.1)
                m.running_vars.copy_(torch.rand(m.running_vars.shape, generator=gen) * 0.5 + 0.5)
            if isinstance(m, _BatchNorm):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
        self.refresh()

    def weights_changed(self) -> None:
        """Forget the precomputed inference plan (spectrally normalised weights, stacked
        batch-norm tables); the next synthesis rebuilds it from the parameters. Runs after
        load_state_dict and .to()."""
        self._plan = None

    def refresh(self) -> "BigGAN":
        """``weights_changed``, for after editing parameters in place."""
        self.weights_changed()
        return self

    @torch.no_grad()
    def _build_plan(self) -> dict:
        """Everything synthesis needs, precomputed once: effective (spectrally normalised)
        weights in the activation dtype, and all conditional batch norms stacked so that a
        frame computes their gains and offsets with one matrix product."""
        net = self.generator
        dtype = net.gen_z.weight_orig.dtype
        first = net.first_ch
        # gen_z rows are stored (h, w, c); reorder them to (c, h, w) so the output is NCHW as is
        w = net.gen_z.effective_weight()
        w = w.reshape(4, 4, first, -1).permute(2, 0, 1, 3).reshape(4 * 4 * first, -1)
        b = net.gen_z.bias.float().reshape(4, 4, first).permute(2, 0, 1).reshape(-1)
        cond_norms, steps = [], []
        for layer in net.layers:
            if isinstance(layer, _GenBlock):
                cond_norms += layer.norms()
                steps.append(("block", layer.upsample, layer.out_ch,
                              [(c.effective_weight().to(dtype), c.bias.to(dtype)) for c in layer.convs()]))
            else:
                t, p, g = (layer.snconv1x1_theta, layer.snconv1x1_phi, layer.snconv1x1_g)
                qkv = torch.cat([t.effective_weight(), p.effective_weight(), g.effective_weight()]).to(dtype)
                steps.append(("attention", layer.ch // 8, layer.ch // 2, qkv,
                              layer.snconv1x1_o_conv.effective_weight().to(dtype), layer.gamma.to(dtype)))
        affine = torch.cat([n.scale.effective_weight() for n in cond_norms]
                           + [n.offset.effective_weight() for n in cond_norms])
        sizes = [n.channels for n in cond_norms]
        means = torch.cat([n.running_means.float() for n in cond_norms] + [net.bn.running_means.float()], 1)
        variances = torch.cat([n.running_vars.float() for n in cond_norms] + [net.bn.running_vars.float()], 1)
        rgb = net.conv_to_rgb
        return {
            "dtype": dtype, "gen_z": (w, b), "first": first, "steps": steps,
            "affine": affine, "sizes": sizes, "total": sum(sizes), "means": means, "vars": variances,
            "bn": (net.bn.weight.float(), net.bn.bias.float()),
            # only the first 3 of conv_to_rgb's outputs are the image
            "rgb": (rgb.effective_weight()[:3].to(dtype), rgb.bias[:3].to(dtype)),
        }

    # -- interface ----------------------------------------------------------------------
    def class_vector(self, c=None, n: int = 1) -> torch.Tensor:
        """[n, num_classes] float32 from None (default class), a class index, a vector
        [num_classes] or a batch [n or 1, num_classes]."""
        k = self.info.c_dim
        dev = self.embeddings.weight.device
        if c is None:
            c = self.default_class
        if isinstance(c, (int, np.integer)) or (torch.is_tensor(c) and c.ndim == 0):
            idx = int(c)
            if not 0 <= idx < k:
                raise ValueError(f"class {idx} is out of range: this model has {k} classes")
            return F.one_hot(torch.full((n,), idx, device=dev), k).float()
        c = torch.as_tensor(np.asarray(c, dtype=np.float32) if not torch.is_tensor(c) else c)
        c = c.to(dev, torch.float32)
        if c.ndim == 1:
            c = c[None]
        if c.ndim != 2 or c.shape[1] != k:
            raise ValueError(f"class vector has shape {tuple(c.shape)}; this model wants {k} class weights "
                             "(one-hot or a mix), or a class index")
        if c.shape[0] not in (1, n):
            raise ValueError(f"{c.shape[0]} class vectors for a batch of {n}")
        return c.expand(n, k)

    def mapping(self, z: torch.Tensor, c=None, psi: float = 1.0, cutoff=None) -> torch.Tensor:
        """ws [N, 1, z_dim + class_embed_dim + 1] = concat(psi * z, embeddings(c), psi), float32.
        ``cutoff`` is ignored (one style row)."""
        z = torch.as_tensor(z).to(self.embeddings.weight.device, torch.float32)
        if z.ndim == 1:
            z = z[None]
        if z.shape[1] != self.info.z_dim:
            raise ValueError(f"z has {z.shape[1]} numbers; this model wants {self.info.z_dim}")
        n = z.shape[0]
        embed = self.class_vector(c, n) @ self.embeddings.weight.float().t()
        psi_col = torch.full((n, 1), float(psi), device=z.device)
        return torch.cat([z * float(psi), embed, psi_col], 1)[:, None, :]

    def synthesis(self, ws: torch.Tensor, noise: str = "const", transform=None, **kwargs) -> torch.Tensor:
        if self._plan is None:
            self._plan = self._build_plan()
        plan = self._plan
        dtype = plan["dtype"]
        if ws.ndim == 2:
            ws = ws[:, None]
        if ws.shape[-1] != self.info.w_dim:
            raise ValueError(f"style has {ws.shape[-1]} numbers; this model wants {self.info.w_dim} "
                             "(z, class embedding, psi)")
        row = ws[:, 0].float()
        cond, psi = row[:, :-1], row[:, -1]
        n = row.shape[0]

        # all batch norms of the frame at once: x * a + b per channel and sample
        mean, var = stats_rows(plan["means"], plan["vars"], psi, self.stats_mode)
        inv = torch.rsqrt(var + self.eps)
        gain_off = cond @ plan["affine"].t()
        total = plan["total"]
        a = (1 + gain_off[:, :total]) * inv[:, :total]
        b = gain_off[:, total:] - mean[:, :total] * a
        a, b = a.to(dtype), b.to(dtype)
        w_bn, b_bn = plan["bn"]
        a_last = w_bn * inv[:, total:]
        b_last = (b_bn - mean[:, total:] * a_last).to(dtype)
        a_last = a_last.to(dtype)

        offsets = iter(np.cumsum([0] + plan["sizes"]).tolist())
        sizes = iter(plan["sizes"])

        def norm_relu(x):
            start, size = next(offsets), next(sizes)
            aa = a[:, start:start + size, None, None]
            bb = b[:, start:start + size, None, None]
            return torch.relu(torch.addcmul(bb, x, aa))

        w, bias = plan["gen_z"]
        x = (cond @ w.t() + bias).to(dtype).reshape(n, plan["first"], 4, 4)
        for step in plan["steps"]:
            if step[0] == "block":
                _, up, out_ch, convs = step
                (w0, b0), (w1, b1), (w2, b2), (w3, b3) = convs
                h = F.conv2d(norm_relu(x), w0, b0)
                h = norm_relu(h)
                if up:
                    h = F.interpolate(h, scale_factor=2, mode="nearest")
                h = F.conv2d(h, w1, b1, padding=1)
                h = F.conv2d(norm_relu(h), w2, b2, padding=1)
                h = F.conv2d(norm_relu(h), w3, b3)
                skip = x[:, :out_ch]
                if up:
                    skip = F.interpolate(skip, scale_factor=2, mode="nearest")
                x = h + skip
            else:
                _, c8, c2, qkv, w_o, gamma = step
                x = x + gamma * F.conv2d(_attention(x, qkv, c8, c2), w_o)
        x = torch.relu(torch.addcmul(b_last[:, :, None, None], x, a_last[:, :, None, None]))
        w_rgb, b_rgb = plan["rgb"]
        return torch.tanh(F.conv2d(x, w_rgb, b_rgb, padding=1))

    def truncated_z(self, n: int = 1, psi: float = 1.0, seed: int | None = None) -> torch.Tensor:
        """``truncated_z`` for this model's z_dim, as a tensor on its device."""
        return torch.from_numpy(truncated_z(n, psi, seed, self.info.z_dim)).to(self.embeddings.weight.device)


def _attention(x: torch.Tensor, qkv: torch.Tensor, c8: int, c2: int) -> torch.Tensor:
    """SAGAN self-attention: queries at every pixel, keys and values max-pooled 2x2,
    softmax over keys with no 1/sqrt(d) scaling. Returns the attended values [N, c2, H, W]."""
    n, _, h, w = x.shape
    proj = F.conv2d(x, qkv)
    theta = proj[:, :c8]
    pooled = F.max_pool2d(proj[:, c8:], 2)
    phi, g = pooled[:, :c8], pooled[:, c8:]
    q = theta.flatten(2).transpose(1, 2)          # [N, HW, c8]
    k = phi.flatten(2).transpose(1, 2)            # [N, HW/4, c8]
    v = g.flatten(2).transpose(1, 2)              # [N, HW/4, c2]
    out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
    return out.transpose(1, 2).reshape(n, c2, h, w)


def expected_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Every parameter and buffer name of the format for ``config``, with its shape."""
    return {k: tuple(v.shape) for k, v in BigGAN(config, seed=None).state_dict().items()}


def config_from_state_dict(state: dict[str, torch.Tensor]) -> dict:
    """The config of a released-layout BigGAN-deep state dict, read from its shapes alone
    (the loader's way for a ``pytorch_model.bin`` that arrives without its config.json).
    Upsampling cannot be seen in shapes, so the block list must be one of the released
    ones (128/256/512 px, any channel width and class count); any other is a ValueError."""
    try:
        e_dim, num_classes = state["embeddings.weight"].shape
        cond_dim = state["generator.gen_z.weight_orig"].shape[1]
        ch = state["generator.conv_to_rgb.weight_orig"].shape[0]
        n_stats = state["generator.bn.running_means"].shape[0]
    except KeyError as e:
        raise ValueError(f"not a BigGAN state dict (no {e.args[0]})") from None
    blocks, attention = [], None
    for i in range(len(state)):
        p = f"generator.layers.{i}"
        if f"{p}.bn_0.running_means" in state:
            blocks.append((state[f"{p}.bn_0.running_means"].shape[1] // ch,
                           state[f"{p}.conv_3.weight_orig"].shape[0] // ch))
        elif f"{p}.gamma" in state:
            attention = len(blocks)
        else:
            break
    for output_dim, layers in STANDARD_LAYERS.items():
        if [(a, b) for _, a, b in layers] == blocks:
            return standard_config(output_dim, z_dim=int(cond_dim - e_dim), class_embed_dim=int(e_dim),
                                   channel_width=int(ch), num_classes=int(num_classes), n_stats=int(n_stats),
                                   attention_layer_position=attention if attention is not None else -1)
    raise ValueError(f"BigGAN blocks {blocks} (channel multipliers) are not a released layout, so where "
                     "they upsample cannot be told from the shapes")


def from_state_dict(state: dict[str, torch.Tensor], config: dict) -> BigGAN:
    """A BigGAN from a pytorch-pretrained-BigGAN state dict and its config.json content
    (plus engine keys). Strict: every name must be there with its shape, and nothing else."""
    g = BigGAN(config, seed=None)
    problem = state_mismatch(g.state_dict(), state)
    if problem:
        raise ValueError(f"BigGAN weights do not match the config: {problem}")
    g.load_state_dict(state, strict=True)
    return g.eval()
