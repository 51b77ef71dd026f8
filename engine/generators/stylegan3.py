"""StyleGAN3 generator (Karras et al. 2021, "Alias-Free Generative Adversarial Networks"), configs T and R.

Written from the paper and the checkpoint format notes; parameter and buffer names follow
the official ``G_ema.state_dict()`` so those weights load as they are (``from_state_dict``).

The network, per image:

- **mapping**: z (normalised to unit second moment, plus an embedded class for conditional
  models) through a few equalised-learning-rate fully connected layers -> w; broadcast to
  ``num_ws`` copies; truncation moves the first ``cutoff`` of them toward ``w_avg``.
- **input**: Fourier features. Random frequencies inside a disc of radius ``bandwidth`` and
  random phases are rotated/translated by a transform learned from ws[0] and then by the
  user transform (``synthesis.input.transform``, or the ``transform`` argument of
  ``synthesis``); frequencies pushed past the band are faded out; the sinusoids are sampled
  on a ``size x size`` grid at ``sampling_rate`` and mixed by a learned channel matrix.
- **layers** L0..L13: modulated convolution (weights scaled by the style, demodulated, scaled
  by ``1/sqrt(magnitude_ema)``, "full" padding ``k - 1``), then the filtered leaky ReLU:
  bias, upsample by zero insertion and a low-pass FIR (Kaiser-windowed sinc), leaky ReLU
  x sqrt(2), clamp to +-conv_clamp, low-pass FIR and keep every ``down``-th sample. Config R
  uses 1x1 convolutions and radially symmetric (jinc) down filters in the layers that are
  not critically sampled.
- **ToRGB** (L14): modulated 1x1 convolution without demodulation, bias, clamp; the image is
  multiplied by ``output_scale``.

Precision: on CUDA the layers the official code marks fp16 (``sampling_rate * 2**num_fp16_res
> img_resolution``) run in half precision, with the conv clamp keeping them in range; the
mapping, the Fourier input, styles and demodulation always run in fp32, and so does
everything on the CPU (as in the official code). Keep the module itself in fp32 and move it
with ``.to(device)`` only: it picks the precision per layer.

The filtered leaky ReLU here is plain PyTorch (separable depthwise transposed convolutions
for zero insertion + FIR, in-place activation and clamp, strided depthwise convolutions for
FIR + decimation). It materialises the 2x-oversampled activations, so at 512-1024 px on a GPU
it is memory bound; real-time there needs a fused kernel (not included).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.generators.base import ModelInfo, StyleGenerator, state_mismatch
from engine.generators.config import normalize_config
from engine.generators.layers import SQRT2, FullyConnectedLayer, MappingNetwork, ModulatedLayer, mapping_args

ARCHITECTURES = ("stylegan3-t", "stylegan3-r")


# ---------------------------------------------------------------------------------------------
# Filter design and the layer plan (pure functions of the constructor arguments)

def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float,
                          radial: bool = False) -> np.ndarray | None:
    """Kaiser-windowed low-pass FIR, unit DC gain; None for a single tap (no filtering).

    Separable: a windowed sinc of ``numtaps`` taps (scipy.signal.firwin). Radial: a
    ``numtaps x numtaps`` jinc (the 2-D ideal low-pass of a disc) under the outer product of
    the same Kaiser window.
    """
    if numtaps < 1:
        raise ValueError(f"numtaps must be >= 1, got {numtaps}")
    if numtaps == 1:
        return None
    import scipy.signal
    if not radial:
        return scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
    import scipy.special
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    with np.errstate(divide="ignore", invalid="ignore"):
        f = scipy.special.j1(2 * np.pi * cutoff * r) / (np.pi * r)
    f = np.where(r == 0, cutoff, f)  # the limit at the centre (odd tap counts only)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    f = f * np.outer(window, window)
    return f / f.sum()


@dataclass(frozen=True)
class LayerSpec:
    """Everything about one synthesis layer that follows from the constructor arguments."""
    index: int
    name: str                  # official name: L{index}_{out_size}_{out_channels}
    is_torgb: bool
    is_critically_sampled: bool
    use_fp16: bool
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_sampling_rate: float
    out_sampling_rate: float
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    conv_kernel: int
    tmp_sampling_rate: float   # the rate the leaky ReLU runs at
    up_factor: int
    down_factor: int
    up_taps: int
    down_taps: int
    down_radial: bool
    padding: tuple[int, int]   # (before, after) of the upsampled signal, same on both axes


@dataclass(frozen=True)
class InputSpec:
    channels: int
    size: int
    sampling_rate: float
    bandwidth: float


def synthesis_plan(img_resolution: int, img_channels: int = 3, channel_base: int = 32768,
                   channel_max: int = 512, num_layers: int = 14, num_critical: int = 2,
                   first_cutoff: float = 2, first_stopband: float = 2 ** 2.1,
                   last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10, num_fp16_res: int = 4,
                   conv_kernel: int = 3, filter_size: int = 6, lrelu_upsampling: int = 2,
                   use_radial_filters: bool = False) -> tuple[InputSpec, list[LayerSpec]]:
    """Cutoffs, stopbands, sampling rates, sizes, channels and paddings of every layer.

    The cutoff and stopband grow geometrically from the first layer to the last
    ``num_critical`` layers, which are critically sampled at the output resolution; each
    layer's sampling rate is the smallest power of two above twice its stopband.
    """
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels

    layers = []
    for i in range(num_layers + 1):
        p = max(i - 1, 0)
        torgb = i == num_layers
        kernel = 1 if torgb else conv_kernel
        tmp_rate = max(rates[p], rates[i]) * (1 if torgb else lrelu_upsampling)
        up = int(np.rint(tmp_rate / rates[p]))
        down = int(np.rint(tmp_rate / rates[i]))
        up_taps = filter_size * up if up > 1 and not torgb else 1
        down_taps = filter_size * down if down > 1 and not torgb else 1
        critical = i >= num_layers - num_critical
        # Padding so that the output lands on the out_size grid: size before decimation,
        # minus the upsampled input, plus what the two FIRs eat; split so that the sample
        # positions stay centred (the symmetric interpretation of the pixel grid).
        pad_total = (int(sizes[i]) - 1) * down + 1
        pad_total -= (int(sizes[p]) + kernel - 1) * up
        pad_total += up_taps + down_taps - 2
        pad_lo = (pad_total + up) // 2
        layers.append(LayerSpec(
            index=i, name=f"L{i}_{int(sizes[i])}_{int(channels[i])}", is_torgb=torgb,
            is_critically_sampled=bool(critical),
            use_fp16=bool(rates[i] * 2 ** num_fp16_res > img_resolution),
            in_channels=int(channels[p]), out_channels=int(channels[i]),
            in_size=int(sizes[p]), out_size=int(sizes[i]),
            in_sampling_rate=float(rates[p]), out_sampling_rate=float(rates[i]),
            in_cutoff=float(cutoffs[p]), out_cutoff=float(cutoffs[i]),
            in_half_width=float(half_widths[p]), out_half_width=float(half_widths[i]),
            conv_kernel=kernel, tmp_sampling_rate=float(tmp_rate), up_factor=up, down_factor=down,
            up_taps=up_taps, down_taps=down_taps,
            down_radial=bool(use_radial_filters and not critical),
            padding=(int(pad_lo), int(pad_total - pad_lo))))
    first = InputSpec(channels=int(channels[0]), size=int(sizes[0]), sampling_rate=float(rates[0]),
                      bandwidth=float(cutoffs[0]))
    return first, layers


def make_transform(translate=(0.0, 0.0), rotate: float = 0.0) -> torch.Tensor:
    """The 3x3 input transform that moves the image content by ``translate`` and ``rotate``.

    Same convention as NVIDIA's visualizer and gen_images.py: they build
    ``[[cos a, sin a, x], [-sin a, cos a, y], [0, 0, 1]]`` and store its inverse in
    ``synthesis.input.transform``; this returns that inverse. ``translate`` is in image
    widths/heights (x right, y down: (0.25, 0) shifts the content a quarter of the width to
    the right); ``rotate`` is in radians (positive turns the content counter-clockwise on
    screen). Pass the result as ``synthesis(ws, transform=...)``.
    """
    x, y = (float(v) for v in translate)
    c, s = math.cos(float(rotate)), math.sin(float(rotate))
    # inverse of [[R, t], [0, 1]] with R = [[c, s], [-s, c]] is [[R^T, -R^T t], [0, 1]]
    return torch.tensor([[c, -s, -(c * x - s * y)],
                         [s, c, -(s * x + c * y)],
                         [0.0, 0.0, 1.0]], dtype=torch.float32)


# ---------------------------------------------------------------------------------------------
# Modules (names mirror the official state dict)

class SynthesisInput(nn.Module):
    """Fourier features on a grid, rotated/translated by ws[0] and the user transform."""

    def __init__(self, w_dim: int, spec: InputSpec):
        super().__init__()
        self.w_dim = w_dim
        self.channels, self.size = spec.channels, spec.size
        self.sampling_rate, self.bandwidth = spec.sampling_rate, spec.bandwidth
        # Frequencies: random directions, radii drawn so that they fill the disc of radius
        # `bandwidth` (the trained values come from the state dict).
        freqs = torch.randn(self.channels, 2)
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * self.bandwidth
        phases = torch.rand(self.channels) - 0.5
        self.weight = nn.Parameter(torch.randn(self.channels, self.channels))
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0.0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)
        # Sample positions: pixel centres, in units where the final image spans [-0.5, 0.5].
        coords = (torch.arange(self.size, dtype=torch.float64) + 0.5 - self.size / 2) / self.sampling_rate
        self.register_buffer("coords", coords.float(), persistent=False)

    def forward(self, w: torch.Tensor, transform=None) -> torch.Tensor:
        n = w.shape[0]
        if transform is None:
            user = self.transform.float()
        else:
            user = torch.as_tensor(transform, dtype=torch.float32, device=w.device)
            if user.shape[-2:] != (3, 3):
                raise ValueError(f"transform must be 3x3 (or [N, 3, 3]), got {list(user.shape)}")
        # Learned similarity transform t = (cos, sin, tx, ty), rotation normalised to unit length.
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        cos, sin, tx, ty = t.unbind(dim=1)
        zero, one = torch.zeros_like(cos), torch.ones_like(cos)
        # rotation @ translation(-tx, -ty), then the user transform (applied to positions first)
        learned = torch.stack([
            torch.stack([cos, -sin, -cos * tx + sin * ty], dim=1),
            torch.stack([sin, cos, -sin * tx - cos * ty], dim=1),
            torch.stack([zero, zero, one], dim=1)], dim=1)         # [N, 3, 3]
        m = learned @ user                                          # [N, 3, 3]
        freqs = self.freqs.float()
        phases = self.phases.float().unsqueeze(0) + (freqs.unsqueeze(0) @ m[:, :2, 2:]).squeeze(2)  # [N, C]
        freqs = freqs.unsqueeze(0) @ m[:, :2, :2]                  # [N, C, 2]
        # Fade out frequencies that the user transform pushed beyond the band.
        amps = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        g = self.coords
        arg = (freqs[:, :, 0, None, None] * g.view(1, 1, 1, -1)
               + (freqs[:, :, 1, None, None] * g.view(1, 1, -1, 1) + phases[:, :, None, None]))
        feats = arg.mul_(2 * math.pi).sin_()                        # [N, C, H, W]
        # Channel mixing with the amplitudes folded into the (per-sample) matrix.
        mix = (self.weight.float() / math.sqrt(self.channels)).unsqueeze(0) * amps.unsqueeze(1)  # [N, O, C]
        x = torch.bmm(mix, feats.view(n, self.channels, -1))
        return x.view(n, self.channels, self.size, self.size)


def _fir_up(x: torch.Tensor, kernel: torch.Tensor, up: int, pad0: int, pad1: int, dim: int) -> torch.Tensor:
    """Along one axis (2 = H, 3 = W): insert up-1 zeros after each sample, pad by (pad0, pad1)
    (negative crops), convolve with the FIR. Done as one depthwise transposed convolution,
    so the zero-stuffed signal is never built. ``kernel`` is [C, 1, k, 1] or [C, 1, 1, k]."""
    k = kernel.shape[dim]
    groups = x.shape[1]
    stride = (up, 1) if dim == 2 else (1, up)
    # A transposed convolution with padding q and output padding op is the zero-stuffed
    # signal padded by k-1-q before and k-1-q+op-(up-1) after, convolved in full.
    q = k - 1 - pad0
    op = up - 1 + pad1 - pad0
    if q >= 0 and 0 <= op < up:
        padding = (q, 0) if dim == 2 else (0, q)
        out_pad = (op, 0) if dim == 2 else (0, op)
        return F.conv_transpose2d(x, kernel, stride=stride, padding=padding, output_padding=out_pad,
                                  groups=groups)
    full = F.conv_transpose2d(x, kernel, stride=stride, groups=groups)  # (n-1)*up + k samples
    n_out = x.shape[dim] * up + pad0 + pad1 - k + 1
    before, after = -q, n_out - (full.shape[dim] - q)
    return F.pad(full, [0, 0, before, after] if dim == 2 else [before, after])


# On the CPU the filtered leaky ReLU runs over groups of channels whose upsampled
# activations fit in about this many bytes, so that each group stays in cache from the up
# filter to the down filter (the whole 64-px fixture generators ran about 1.8x faster this
# way, one thread on an AVX-512 VM). Groups are multiples of 16 channels, the channel block
# of oneDNN's depthwise kernels.
CPU_CHUNK_BYTES = 1 << 20


class SynthesisLayer(ModulatedLayer):
    """Modulated convolution + filtered leaky ReLU (or the ToRGB layer)."""

    def __init__(self, w_dim: int, spec: LayerSpec, conv_clamp: float | None = 256,
                 magnitude_ema_beta: float = 0.999):
        super().__init__(w_dim, spec.in_channels, spec.out_channels, spec.conv_kernel)
        self.spec = spec
        self.is_torgb = spec.is_torgb
        self.conv_clamp = None if conv_clamp is None else float(conv_clamp)
        self.magnitude_ema_beta = magnitude_ema_beta  # training only
        self.gain = 1.0 if spec.is_torgb else SQRT2
        self.slope = 1.0 if spec.is_torgb else 0.2
        k = spec.conv_kernel
        self.register_buffer("magnitude_ema", torch.ones([]))
        up = design_lowpass_filter(spec.up_taps, spec.in_cutoff, spec.in_half_width * 2, spec.tmp_sampling_rate)
        down = design_lowpass_filter(spec.down_taps, spec.out_cutoff, spec.out_half_width * 2,
                                     spec.tmp_sampling_rate, radial=spec.down_radial)
        self.register_buffer("up_filter", None if up is None else torch.tensor(up, dtype=torch.float32))
        self.register_buffer("down_filter", None if down is None else torch.tensor(down, dtype=torch.float32))
        self._up_active = spec.up_factor > 1 or up is not None or spec.padding != (0, 0)
        self._down_active = spec.down_factor > 1 or down is not None
        # Size after the conv ("full" padding) and after upsampling.
        self._up_size = (spec.in_size + k - 1) * spec.up_factor + sum(spec.padding) - spec.up_taps + 1
        self.register_buffer("_fu", None, persistent=False)
        self.register_buffer("_fd", None, persistent=False)
        self._kernels: dict = {}
        self._prepare_kernels()

    @torch.no_grad()
    def _prepare_kernels(self) -> None:
        """The FIR taps as the convolutions use them, derived from up_filter/down_filter
        (again after loading a state dict). The upsampling gain (up per axis) and the
        activation gain (lrelu(g*y) = g*lrelu(y) for g > 0) are folded into the up filter,
        so the activation is a single in-place op. The transposed convolution is a true
        convolution (taps as they are); the down filter is flipped for conv2d (correlation)."""
        device = self.weight.device
        self._post_gain = self.gain
        self._kernels = {}
        if self._up_active:
            f = self.up_filter.float() if self.up_filter is not None else torch.ones(1, device=device)
            self._fu = f * self.spec.up_factor
            self._post_gain = 1.0
        if self._down_active:
            f = self.down_filter.float() if self.down_filter is not None else torch.ones(1, device=device)
            self._fd = f.flip(list(range(f.ndim)))

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._prepare_kernels()

    def _kernel(self, which: str, x: torch.Tensor) -> torch.Tensor:
        """Depthwise conv weights for x's channels (every channel uses the same taps), cached."""
        key = (which, x.shape[1], x.dtype, x.device)
        kern = self._kernels.get(key)
        if kern is None:
            if which == "up_h":
                f = (self._fu * self.gain).view(1, 1, -1, 1)
            elif which == "up_w":
                f = self._fu.view(1, 1, 1, -1)
            elif which == "down_2d":
                f = self._fd.view(1, 1, *self._fd.shape)
            elif which == "down_h":
                f = self._fd.view(1, 1, -1, 1)
            else:
                f = self._fd.view(1, 1, 1, -1)
            kern = self._kernels[key] = f.to(x.device, x.dtype).expand(x.shape[1], -1, -1, -1).contiguous()
        return kern

    def modulated_weight(self, styles: torch.Tensor) -> torch.Tensor:
        """Per-sample conv weights [N, O, I, k, k] in fp32: modulated, demodulated (except
        ToRGB) and scaled by 1/sqrt(magnitude_ema)."""
        weight = self.weight.float()
        input_gain = self.magnitude_ema.float().rsqrt()
        if self.is_torgb:
            styles = styles * (input_gain / math.sqrt(weight[0].numel()))
            return weight.unsqueeze(0) * styles[:, None, :, None, None]
        # Pre-normalise weight and styles (a no-op in exact arithmetic, demodulation divides
        # it out; it keeps the numbers in range for fp16), then demodulate:
        # d[n, o] = rsqrt(sum_i s[n, i]^2 * sum_kk W[o, i]^2).
        weight = weight * weight.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean(dim=1, keepdim=True).rsqrt()
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]
        w = weight.unsqueeze(0) * styles[:, None, :, None, None]
        return w.mul_((dcoefs * input_gain)[:, :, None, None, None])

    def forward(self, x: torch.Tensor, w: torch.Tensor, fp16: bool = False) -> torch.Tensor:
        dtype = torch.float16 if fp16 else torch.float32
        weight = self.modulated_weight(self.affine(w.float())).to(dtype)
        x = self._modulated_conv(x.to(dtype), weight, self.bias.to(dtype))
        return self.filtered_lrelu(x)

    def _modulated_conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Per-sample convolution with "full" padding (k - 1), bias fused in."""
        n, cin, h, wd = x.shape
        cout, k = weight.shape[1], weight.shape[-1]
        if k == 1:  # config R and ToRGB: a batched matrix product
            out = torch.baddbmm(bias.view(1, cout, 1), weight.view(n, cout, cin), x.reshape(n, cin, h * wd))
            return out.view(n, cout, h, wd)
        out = F.conv2d(x.reshape(1, n * cin, h, wd), weight.reshape(n * cout, cin, k, k),
                       bias=bias if n == 1 else bias.repeat(n), padding=k - 1, groups=n)
        return out.view(n, cout, h + k - 1, wd + k - 1)

    def filtered_lrelu(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample + FIR, leaky ReLU x gain, clamp, FIR + downsample; x already has its bias.

        Every channel of every sample is filtered alike, so the batch is folded into the
        channels; on the CPU the channels go through in cache-sized groups."""
        if not (self._up_active or self._down_active):
            return self._activate(x)
        n, c, h, w = x.shape
        flat = x.view(1, n * c, h, w)
        total = n * c
        chunk = total
        if x.device.type == "cpu":
            per_channel = self._up_size * self._up_size * x.element_size()
            chunk = max(16, CPU_CHUNK_BYTES // per_channel // 16 * 16)
        if chunk >= total:
            y = self._filter_group(flat)
        else:
            y = torch.cat([self._filter_group(flat[:, i:i + chunk]) for i in range(0, total, chunk)], dim=1)
        return y.view(n, c, y.shape[2], y.shape[3])

    def _filter_group(self, x: torch.Tensor) -> torch.Tensor:
        s, c = self.spec, x.shape[1]
        if self._up_active:
            x = _fir_up(x, self._kernel("up_h", x), s.up_factor, *s.padding, dim=2)
            x = _fir_up(x, self._kernel("up_w", x), s.up_factor, *s.padding, dim=3)
        x = self._activate(x)
        if self._down_active:
            d = s.down_factor
            if self._fd.ndim == 2:
                x = F.conv2d(x, self._kernel("down_2d", x), stride=(d, d), groups=c)
            else:
                x = F.conv2d(x, self._kernel("down_h", x), stride=(d, 1), groups=c)
                x = F.conv2d(x, self._kernel("down_w", x), stride=(1, d), groups=c)
        return x

    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        """Leaky ReLU, gain (unless folded into the up filter), clamp; in place when no
        gradient is being recorded (x is always a fresh tensor here)."""
        inplace = not x.requires_grad
        if self.slope != 1:
            x = F.leaky_relu(x, self.slope, inplace=inplace)
        if self._post_gain != 1:
            x = x.mul_(self._post_gain) if inplace else x * self._post_gain
        if self.conv_clamp is not None:
            x = x.clamp_(-self.conv_clamp, self.conv_clamp) if inplace else x.clamp(-self.conv_clamp, self.conv_clamp)
        return x


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, img_resolution: int, img_channels: int = 3, channel_base: int = 32768,
                 channel_max: int = 512, num_layers: int = 14, num_critical: int = 2, first_cutoff: float = 2,
                 first_stopband: float = 2 ** 2.1, last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10,
                 output_scale: float = 0.25, num_fp16_res: int = 4, conv_kernel: int = 3, filter_size: int = 6,
                 lrelu_upsampling: int = 2, use_radial_filters: bool = False, conv_clamp: float | None = 256,
                 magnitude_ema_beta: float = 0.999):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.num_ws = num_layers + 2
        self.output_scale = output_scale
        first, specs = synthesis_plan(
            img_resolution, img_channels, channel_base=channel_base, channel_max=channel_max,
            num_layers=num_layers, num_critical=num_critical, first_cutoff=first_cutoff,
            first_stopband=first_stopband, last_stopband_rel=last_stopband_rel, margin_size=margin_size,
            num_fp16_res=num_fp16_res, conv_kernel=conv_kernel, filter_size=filter_size,
            lrelu_upsampling=lrelu_upsampling, use_radial_filters=use_radial_filters)
        self.input = SynthesisInput(w_dim, first)
        self.layer_names = []
        for spec in specs:
            setattr(self, spec.name, SynthesisLayer(w_dim, spec, conv_clamp=conv_clamp,
                                                    magnitude_ema_beta=magnitude_ema_beta))
            self.layer_names.append(spec.name)

    def forward(self, ws: torch.Tensor, transform=None, fp16: bool = False) -> torch.Tensor:
        ws = ws.float()
        x = self.input(ws[:, 0], transform)
        for i, name in enumerate(self.layer_names):
            layer = getattr(self, name)
            x = layer(x, ws[:, i + 1], fp16=fp16 and layer.spec.use_fp16)
        x = x.float()
        return x * self.output_scale if self.output_scale != 1 else x


# ---------------------------------------------------------------------------------------------
# The engine's generator

class StyleGAN3(StyleGenerator):
    """StyleGAN3 (T or R) behind the engine's Generator interface.

    Constructor arguments are the official ones (synthesis arguments flattened, as the
    stylegan3 repository stores them); a freshly constructed generator has random weights and
    filters designed from those arguments. ``from_state_dict`` loads trained weights.
    """

    def __init__(self, z_dim: int = 512, c_dim: int = 0, w_dim: int = 512, img_resolution: int = 1024,
                 img_channels: int = 3, mapping_kwargs: dict | None = None, architecture: str = "stylegan3-t",
                 name: str | None = None, **synthesis_kwargs):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **synthesis_kwargs)
        num_ws = synthesis.num_ws
        # StyleGAN3's official mapping has 2 layers, not StyleGAN2's 8
        mapping = MappingNetwork(z_dim, c_dim, w_dim, num_ws, **mapping_args(mapping_kwargs, num_layers=2))
        self.set_networks(mapping, synthesis)
        self.use_fp16 = True  # on CUDA, the layers the official config marks fp16 run in half precision
        self.info = ModelInfo(name=name or architecture, architecture=architecture, resolution=img_resolution,
                              z_dim=z_dim, w_dim=w_dim, num_ws=num_ws, c_dim=c_dim, channels=img_channels,
                              extra={"layers": list(self.synthesis_network.layer_names), "transform": True})
        self.eval()

    def synthesis(self, ws: torch.Tensor, noise: str = "const", transform=None, force_fp32: bool = False,
                  **kwargs) -> torch.Tensor:
        """Images [N, C, H, W] fp32 in about [-1, 1]. StyleGAN3 has no noise inputs (``noise``
        is ignored). ``transform``: None uses the stored ``synthesis.input.transform``; a 3x3
        (or [N, 3, 3]) matrix (see ``make_transform``) replaces it for this call."""
        self.check_styles(ws)
        fp16 = self.use_fp16 and not force_fp32 and ws.device.type == "cuda"
        return self.synthesis_network(ws, transform=transform, fp16=fp16)

    def set_precision(self, dtype: torch.dtype, channels_last: bool = False) -> "StyleGAN3":
        """The weights stay fp32 either way: with float16 the layers the official config
        marks fp16 switch to half precision per call on CUDA; float32 keeps them all fp32."""
        self.use_fp16 = dtype == torch.float16
        return self


_CONSTRUCTOR_KEYS = {
    "z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "channel_base",
    "channel_max", "num_layers", "num_critical", "first_cutoff", "first_stopband", "last_stopband_rel",
    "margin_size", "output_scale", "num_fp16_res", "conv_kernel", "filter_size", "lrelu_upsampling",
    "use_radial_filters", "conv_clamp", "magnitude_ema_beta",
}


def generator_kwargs(config: dict) -> dict:
    """StyleGAN3 constructor arguments from a config in any layout ``normalize_config``
    reads (the official ``init_kwargs`` plus ``architecture`` and ``name``). Other keys
    (file, licence, ...) are ignored."""
    cfg = normalize_config(config)
    arch = str(cfg.get("architecture") or "stylegan3-t").lower()
    if arch not in ARCHITECTURES:
        raise ValueError(f"not a StyleGAN3 architecture: {arch!r} (expected one of {ARCHITECTURES})")
    if arch == "stylegan3-r":  # the R config's defaults, unless stated
        cfg.setdefault("conv_kernel", 1)
        cfg.setdefault("use_radial_filters", True)
    kwargs = {k: v for k, v in cfg.items() if k in _CONSTRUCTOR_KEYS}
    if "img_resolution" not in kwargs:
        raise ValueError("StyleGAN3 config needs img_resolution")
    kwargs["mapping_kwargs"] = mapping_args(kwargs.get("mapping_kwargs"))
    kwargs["architecture"] = arch
    if cfg.get("name"):
        kwargs["name"] = str(cfg["name"])
    return kwargs


def from_state_dict(state: dict[str, torch.Tensor], config: dict) -> StyleGAN3:
    """A StyleGAN3 generator from an official ``G_ema.state_dict()`` and its config
    (``init_kwargs`` + ``architecture``). The stored filters, frequencies, phases and
    magnitude EMAs are used as they are."""
    g = StyleGAN3(**generator_kwargs(config))
    expected = g.state_dict()
    problem = state_mismatch(expected, state)
    if problem:
        def layers(keys):
            names = {k.split(".")[1] for k in keys if k.startswith("synthesis.L")}
            return sorted(names, key=lambda n: int(n[1:].split("_")[0]))
        if layers(expected) != layers(state):  # the usual cause: a config that gives other layer sizes
            problem += (f"; the config gives layers {layers(expected)}, the weights have {layers(state)} "
                        "(check img_resolution, channel_base, channel_max, num_layers)")
        raise ValueError(f"weights do not match the StyleGAN3 config: {problem}")
    g.load_state_dict(state, strict=True)
    return g.requires_grad_(False).eval()
