"""StyleGAN2 generator (Karras et al., "Analyzing and Improving the Image Quality of
StyleGAN", CVPR 2020), with the StyleGAN2-ADA conventions (conv clamp, fp16 blocks).

Written from the paper and the format notes in the project's reference; parameter and
buffer names follow the official ``G_ema.state_dict()`` so official weights load as
they are:

    mapping.fc{i}.{weight,bias}, mapping.embed.* (c_dim > 0), mapping.w_avg
    synthesis.b4.const, synthesis.b{r}.{conv0,conv1}.{weight,bias,noise_const,noise_strength,
        resample_filter,affine.*}, synthesis.b{r}.torgb.*, synthesis.b{r}.skip.* (resnet)

The network, one frame:
- mapping: z is normalised to unit second moment (and the class embedding too, when
  c_dim > 0, concatenated after it), then ``num_layers`` equalised-lr fully connected
  layers with leaky ReLU; the result is broadcast to every layer and truncated towards
  ``w_avg``.
- synthesis: a learned 4x4 constant, then one block per resolution. Each 3x3 conv is a
  *modulated* convolution: the style ``s = affine(w)`` scales the input channels and the
  output is *demodulated* (divided by the norm of the style-scaled weights), then noise,
  bias, leaky ReLU x sqrt(2), and the clamp. Upsampling convs are a stride-2 transposed
  conv followed by a [1,3,3,1] low-pass filter. "skip" sums upsampled RGB outputs from
  every block; "resnet" adds a 1x1 up-sampled shortcut around each block's two convs and
  draws RGB only in the last block; "orig" draws RGB only in the last block.

Speed. The demodulation factor needs ``sum_k W[o,i,k]^2`` only, so that is computed once
at load time and each frame costs a [N, in] x [in, out] product instead of building
per-sample weights. Batch 1 folds style and demodulation into the conv weights (one
conv); larger batches scale the activations before and after a conv with shared
weights (one big conv, what tensor cores like). ``set_precision(torch.float16)`` runs
the convolutions in fp16 and keeps the mapping, the styles, the demodulation and the
image sum in fp32; weights and styles are pre-normalised as in the official fp16 path
so the activations cannot overflow before demodulation.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.generators.base import ModelInfo, StyleGenerator, resolve_noise, state_mismatch
from engine.generators.config import SG2_SYNTHESIS_ARCHS as ARCHITECTURES
from engine.generators.config import normalize_config
from engine.generators.layers import SQRT2, MappingNetwork, ModulatedLayer, mapping_args

SQRT_HALF = math.sqrt(0.5)


def lowpass_filter(taps=(1, 3, 3, 1)) -> torch.Tensor:
    """The 2-D FIR filter as an outer product of ``taps``, normalised to sum 1."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f) if f.ndim == 1 else f
    return f / f.sum()


# ---------------------------------------------------------------- synthesis layers
class _Prepared:
    """Per-precision copies of a layer's weights, rebuilt by ``prepare``."""
    __slots__ = ("w32", "w", "wsq", "fir", "aw", "ab", "bias", "noise")


def _depthwise(f: torch.Tensor, channels: int, gain: float, dtype, flip: bool) -> torch.Tensor:
    f = f.float() * gain
    if flip:
        f = f.flip([0, 1])
    return f[None, None].repeat(channels, 1, 1, 1).to(dtype)


class SynthesisLayer(ModulatedLayer):
    """Modulated 3x3 conv (optionally 2x up), noise, bias, leaky ReLU, clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1,
                 kernel_size: int = 3, conv_clamp: float | None = None):
        super().__init__(w_dim, in_channels, out_channels, kernel_size)
        self.resolution, self.up = resolution, up
        self.padding = kernel_size // 2
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", lowpass_filter())
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.p: _Prepared | None = None

    @torch.no_grad()
    def prepare(self, dtype: torch.dtype, channels_last: bool) -> None:
        p = _Prepared()
        w = self.weight.float()
        if dtype == torch.float16:
            # official fp16 pre-normalisation: keeps x*s and the conv inside fp16 range
            fan_in = w[0].numel()
            w = w / math.sqrt(fan_in) / w.abs().amax(dim=[1, 2, 3], keepdim=True)
        p.wsq = w.square().sum(dim=[2, 3])                       # [out, in], fp32
        if self.up > 1:
            w = w.transpose(0, 1)                                # conv_transpose layout [in, out, k, k]
        p.w32 = w.contiguous()
        mf = torch.channels_last if channels_last else torch.contiguous_format
        p.w = p.w32.to(dtype).contiguous(memory_format=mf)
        p.fir = _depthwise(self.resample_filter, self.out_channels, float(self.up ** 2), dtype, flip=True) \
            if self.up > 1 else None
        p.aw, p.ab = self.affine.weight_and_bias()
        p.bias = self.bias.to(dtype)[None, :, None, None]
        p.noise = self.noise_const.to(dtype)
        self.p = p

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str, noise_gain=1.0,
                gain: float = 1.0) -> torch.Tensor:
        p, n, dtype = self.p, x.shape[0], x.dtype
        s = torch.addmm(p.ab, w, p.aw.t())                     # styles [N, in], fp32
        if dtype == torch.float16:
            s = s / s.abs().amax(dim=1, keepdim=True)
        d = (s.square().matmul(p.wsq.t()) + 1e-8).rsqrt()       # demodulation [N, out], fp32
        act_gain = SQRT2 * gain
        if n == 1:  # fold style and demodulation into the weights: one conv
            if self.up > 1:
                wm = (p.w32 * torch.outer(s[0], d[0])[:, :, None, None]).to(dtype)
            else:
                wm = (p.w32 * torch.outer(d[0], s[0])[:, :, None, None]).to(dtype)
            if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
                wm = wm.contiguous(memory_format=torch.channels_last)
            x = self._conv(x, wm)
        else:
            x = self._conv(x * s.to(dtype)[:, :, None, None], p.w)
            x = x * d.to(dtype)[:, :, None, None]
        if noise_mode == "const":
            x = x + p.noise * (self.noise_strength * noise_gain).to(dtype)
        elif noise_mode == "random":
            noise = torch.randn(n, 1, x.shape[2], x.shape[3], device=x.device, dtype=dtype)
            x = x + noise * (self.noise_strength * noise_gain).to(dtype)
        x = F.leaky_relu(x + p.bias, 0.2)
        x = x * act_gain
        if self.conv_clamp is not None:
            c = self.conv_clamp * gain
            x = x.clamp(-c, c)
        return x

    def _conv(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.up == 1:
            return F.conv2d(x, w, padding=self.padding)
        x = F.conv_transpose2d(x, w, stride=2)                  # 2H+1, then the 4x4 low-pass
        return F.conv2d(x, self.p.fir, padding=1, groups=self.out_channels)


class ToRGBLayer(ModulatedLayer):
    """Modulated 1x1 conv without demodulation, bias, clamp; returns float32."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__(w_dim, in_channels, out_channels, 1)
        self.conv_clamp = conv_clamp
        self.weight_gain = 1 / math.sqrt(in_channels)
        self.p: _Prepared | None = None

    @torch.no_grad()
    def prepare(self, dtype: torch.dtype, channels_last: bool) -> None:
        p = _Prepared()
        p.aw, p.ab = self.affine.weight_and_bias()
        p.aw, p.ab = p.aw * self.weight_gain, p.ab * self.weight_gain
        p.w32 = self.weight.float().contiguous()
        p.w = p.w32.to(dtype)
        if channels_last:
            p.w = p.w.contiguous(memory_format=torch.channels_last)
        self.p = p

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        p, dtype = self.p, x.dtype
        s = torch.addmm(p.ab, w, p.aw.t())
        if x.shape[0] == 1:
            y = F.conv2d(x, (p.w32 * s[0][None, :, None, None]).to(dtype))
        else:
            y = F.conv2d(x * s.to(dtype)[:, :, None, None], p.w)
        y = y.float() + self.bias.float()[None, :, None, None]
        if self.conv_clamp is not None:
            y = y.clamp(-self.conv_clamp, self.conv_clamp)
        return y.contiguous()


class SkipLayer(nn.Module):
    """resnet shortcut: 1x1 conv (no bias), 2x FIR upsample, x sqrt(1/2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.register_buffer("resample_filter", lowpass_filter())
        self.p: _Prepared | None = None

    @torch.no_grad()
    def prepare(self, dtype: torch.dtype, channels_last: bool) -> None:
        p = _Prepared()
        w = self.weight.float() * (SQRT_HALF / math.sqrt(self.in_channels))
        p.w = w.to(dtype)
        if channels_last:
            p.w = p.w.contiguous(memory_format=torch.channels_last)
        p.fir = _depthwise(self.resample_filter, self.out_channels, 4.0, dtype, flip=False)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.p.w)
        return upsample2x(x, self.p.fir)


def upsample2x(x: torch.Tensor, fir: torch.Tensor) -> torch.Tensor:
    """Zero-insertion 2x upsampling followed by the low-pass filter (gain 4, padding
    [2, 1]), as one depthwise stride-2 transposed conv."""
    return F.conv_transpose2d(x, fir, stride=2, padding=1, groups=x.shape[1])


class SynthesisBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", conv_clamp: float | None = None,
                 use_fp16: bool = False):
        super().__init__()
        self.in_channels, self.resolution, self.architecture, self.use_fp16 = \
            in_channels, resolution, architecture, use_fp16
        self.img_channels = img_channels
        self.register_buffer("resample_filter", lowpass_filter())
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1 if (is_last or architecture == "skip") else 0
        if self.num_torgb:
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        if in_channels and architecture == "resnet":
            self.skip = SkipLayer(in_channels, out_channels)
        self.img_fir = None

    def noise_layers(self) -> list[SynthesisLayer]:
        return [self.conv1] if self.in_channels == 0 else [self.conv0, self.conv1]

    @torch.no_grad()
    def prepare(self, dtype, channels_last: bool) -> None:
        for m in self.children():
            if hasattr(m, "prepare"):
                m.prepare(dtype, channels_last)
        # the RGB image is upsampled in float32 whatever the block's precision
        self.img_fir = _depthwise(self.resample_filter, self.img_channels, 4.0, torch.float32, flip=False)


# ---------------------------------------------------------------- the generator
class StyleGAN2(StyleGenerator):
    """StyleGAN2 / StyleGAN2-ADA generator behind the engine's interface.

    ``channels`` maps each block resolution to its width; by default
    ``min(channel_base // r, channel_max)`` as in the official code."""

    def __init__(self, z_dim: int = 512, w_dim: int = 512, c_dim: int = 0, img_resolution: int = 1024,
                 img_channels: int = 3, mapping_kwargs: dict | None = None, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 4, conv_clamp: float | None = 256,
                 architecture: str = "skip", channels: dict | None = None, name: str = "stylegan2",
                 **_unused):
        super().__init__()
        log2 = int(math.log2(img_resolution))
        if img_resolution < 4 or 2 ** log2 != img_resolution:
            raise ValueError(f"StyleGAN2 resolution must be a power of two >= 4, got {img_resolution}")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"StyleGAN2 architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        if channels is None:
            channels = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        channels = {int(k): int(v) for k, v in channels.items()}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        synthesis = nn.Module()
        num_ws = 0
        for r in self.block_resolutions:
            block = SynthesisBlock(channels[r // 2] if r > 4 else 0, channels[r], w_dim, r, img_channels,
                                   is_last=(r == img_resolution), architecture=architecture,
                                   conv_clamp=conv_clamp, use_fp16=(r >= fp16_resolution))
            synthesis.add_module(f"b{r}", block)
            num_ws += block.num_conv
        num_ws += 1  # the last block's ToRGB
        self.set_networks(MappingNetwork(z_dim, c_dim, w_dim, num_ws, **mapping_args(mapping_kwargs)),
                          synthesis)
        noise_layers = [f"b{r}.{n}" for r in self.block_resolutions for n in
                        (("conv1",) if r == 4 else ("conv0", "conv1"))]
        self.info = ModelInfo(name=name, architecture="stylegan2", resolution=img_resolution, z_dim=z_dim,
                              w_dim=w_dim, num_ws=num_ws, c_dim=c_dim, channels=img_channels,
                              extra={"synthesis_architecture": architecture, "conv_clamp": conv_clamp,
                                     "num_fp16_res": num_fp16_res, "mapping_layers": self.mapping_network.num_layers,
                                     "channels": channels, "noise_layers": noise_layers})
        self.dtype = torch.float32
        self.channels_last = False
        self.fp16_blocks = "all"
        self._prepare()
        self.eval().requires_grad_(False)

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self.synthesis_network, f"b{r}") for r in self.block_resolutions]

    # precision
    def set_precision(self, dtype: torch.dtype, channels_last: bool = False, fp16_blocks: str = "all"):
        """``dtype`` for the synthesis convolutions. float16: every block (``fp16_blocks="all"``,
        fastest) or only the blocks the model was trained with in fp16 (``"trained"``, the
        ``num_fp16_res`` highest resolutions). Mapping, styles, demodulation and the image
        sum stay float32."""
        if fp16_blocks not in ("all", "trained"):
            raise ValueError("fp16_blocks must be 'all' or 'trained'")
        self.dtype, self.channels_last, self.fp16_blocks = dtype, bool(channels_last), fp16_blocks
        self._prepare()
        return self

    def block_dtype(self, block: SynthesisBlock) -> torch.dtype:
        if self.dtype == torch.float16 and self.fp16_blocks == "trained" and not block.use_fp16:
            return torch.float32
        return self.dtype

    def _prepare(self) -> None:
        for b in self.blocks():
            dt = self.block_dtype(b)
            b.prepare(dt, self.channels_last and dt == torch.float16)

    def weights_changed(self) -> None:
        if hasattr(self, "dtype"):  # not before __init__ has set the precision
            self._prepare()

    # the interface (mapping: StyleGenerator's)
    def _noise_gains(self, strength) -> list:
        names = self.info.extra["noise_layers"]
        if strength is None:
            return [1.0] * len(names)
        if isinstance(strength, dict):
            unknown = set(strength) - set(names)
            if unknown:
                raise ValueError(f"unknown noise layers {sorted(unknown)}; this model has {names}")
            return [strength.get(n, 1.0) for n in names]
        if torch.is_tensor(strength) and strength.ndim == 0 or isinstance(strength, (int, float)):
            return [strength] * len(names)
        gains = list(strength.unbind(0)) if torch.is_tensor(strength) else [float(v) for v in strength]
        if len(gains) != len(names):
            raise ValueError(f"noise strength: {len(gains)} values for {len(names)} noise layers")
        return gains

    def synthesis(self, ws: torch.Tensor, noise="const", transform=None, noise_strength=None,
                  **_unused) -> torch.Tensor:
        mode, strength = resolve_noise(noise, noise_strength)
        gains = iter(self._noise_gains(strength))
        self.check_styles(ws)
        n = ws.shape[0]
        ws = ws.float()
        x = img = None
        idx = 0
        for b in self.blocks():
            dtype = self.block_dtype(b)
            mf = torch.channels_last if (self.channels_last and dtype == torch.float16) else torch.contiguous_format
            if b.in_channels == 0:
                x = b.const.to(dtype).unsqueeze(0).expand(n, -1, -1, -1).contiguous(memory_format=mf)
                x = b.conv1(x, ws[:, idx], mode, next(gains))
            else:
                x = x.to(dtype=dtype, memory_format=mf)
                if b.architecture == "resnet":
                    y = b.skip(x)
                    x = b.conv0(x, ws[:, idx], mode, next(gains))
                    x = b.conv1(x, ws[:, idx + 1], mode, next(gains), gain=SQRT_HALF)
                    x = y.add_(x)
                else:
                    x = b.conv0(x, ws[:, idx], mode, next(gains))
                    x = b.conv1(x, ws[:, idx + 1], mode, next(gains))
            if img is not None:
                img = upsample2x(img, b.img_fir)
            if b.num_torgb:
                y = b.torgb(x, ws[:, idx + b.num_conv])
                img = y if img is None else img.add_(y)
            idx += b.num_conv
        return img


# ---------------------------------------------------------------- from files
def _int_keys(state: dict, prefix: str, pattern: str) -> list[int]:
    import re
    rx = re.compile(re.escape(prefix) + pattern)
    return sorted({int(m.group(1)) for k in state for m in [rx.match(k)] if m})


def generator_kwargs(config: dict, state: dict) -> dict:
    """StyleGAN2 constructor arguments: shapes from the state dict, the rest (conv clamp,
    fp16 blocks, mapping learning rate) from ``config`` (any layout ``normalize_config``
    reads), with the official defaults."""
    config = normalize_config(config)
    res = _int_keys(state, "synthesis.b", r"(\d+)\.")
    fcs = _int_keys(state, "mapping.fc", r"(\d+)\.weight")
    if not res or 4 not in res or not fcs:
        raise ValueError("not a StyleGAN2 state dict (no synthesis.b4.* or mapping.fc*.weight)")
    img_resolution = max(res)
    if res != [2 ** i for i in range(2, int(math.log2(img_resolution)) + 1)]:
        raise ValueError(f"StyleGAN2 blocks must be 4, 8, ... up to the resolution, found {res}")
    channels = {4: int(state["synthesis.b4.const"].shape[0])}
    for r in res[1:]:
        channels[r] = int(state[f"synthesis.b{r}.conv1.weight"].shape[0])
    c_dim = int(state["mapping.embed.weight"].shape[1]) if "mapping.embed.weight" in state else 0
    embed = int(state["mapping.embed.weight"].shape[0]) if c_dim else 0
    fc0 = state["mapping.fc0.weight"]
    w_dim = int(state[f"mapping.fc{fcs[-1]}.weight"].shape[0])
    z_dim = int(fc0.shape[1]) - embed
    if any(f"synthesis.b{r}.skip.weight" in state for r in res[1:]):
        arch = "resnet"
    elif all(f"synthesis.b{r}.torgb.weight" in state for r in res):
        arch = "skip"
    else:
        arch = "orig"
    declared = config.get("synthesis_architecture")
    if declared and declared != arch:
        raise ValueError(f"config says {declared!r} architecture, the weights are {arch!r}")
    for key, have in (("z_dim", z_dim), ("w_dim", w_dim), ("c_dim", c_dim), ("img_resolution", img_resolution)):
        if key in config and config[key] is not None and int(config[key]) != have:
            raise ValueError(f"config {key}={config[key]} but the weights have {have}")
    mk = mapping_args(config.get("mapping_kwargs"))
    mk["num_layers"] = len(fcs)
    mk["layer_features"] = int(fc0.shape[0]) if len(fcs) > 1 else None
    if c_dim:
        mk["embed_features"] = embed
    log2 = int(math.log2(img_resolution))
    return {
        "z_dim": z_dim, "w_dim": w_dim, "c_dim": c_dim, "img_resolution": img_resolution,
        "img_channels": int(state[f"synthesis.b{img_resolution}.torgb.weight"].shape[0]),
        "mapping_kwargs": mk, "channels": channels,
        "channel_base": config.get("channel_base"), "channel_max": config.get("channel_max"),
        "num_fp16_res": min(int(config.get("num_fp16_res", 4)), log2),
        "conv_clamp": config.get("conv_clamp", 256),
        "architecture": arch, "name": config.get("name", "stylegan2"),
    }


def from_state_dict(state: dict, config: dict) -> StyleGAN2:
    g = StyleGAN2(**generator_kwargs(config, state))
    state = {k: v for k, v in state.items() if v is not None}
    # filters are optional in a file (the standard [1,3,3,1] when absent); everything else must be there
    problem = state_mismatch(g.state_dict(), state, optional=lambda k: k.endswith("resample_filter"))
    if problem:
        raise ValueError(f"StyleGAN2 weights do not match: {problem}")
    g.load_state_dict(state, strict=False)
    return g.eval()
