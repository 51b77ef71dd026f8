"""Running the generator each frame: device, precision, CUDA graphs, and the hand-off
to OpenGL.

- CPU: fp32 (fp16 convolutions on the CPU are slower, not faster), eager.
- CUDA: fp16 by default through ``Generator.set_precision`` (StyleGAN2 keeps the mapping,
  styles, demodulation and the image sum in fp32; channels-last activations), and the
  synthesis replayed from a CUDA graph captured once per (batch, noise mode), so a
  frame costs one graph launch instead of hundreds of kernel launches.
  ``compile=True`` also runs the synthesis through ``torch.compile``.
  (The CUDA paths are built to be correct by construction; their speed has not been
  measured on a GPU yet.)

The output is turned into 8-bit RGB on the device, so only width*height*3 bytes cross
to the texture upload.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from engine.generators.base import Generator, resolve_noise

log = logging.getLogger(__name__)


def pick_device(name: str | None = None) -> torch.device:
    if name and name != "auto":
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.current_device()} {torch.cuda.get_device_name(device)}"
    import platform
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"cpu ({model}, {torch.get_num_threads()} threads)"


class GraphedSynthesis:
    """The synthesis for one batch size and noise mode, captured as a CUDA graph.

    ``ws`` and the per-layer noise strength are copied into static input tensors and
    the graph is replayed; the returned image is the graph's static output, valid until
    the next call. Random noise is drawn inside the graph (fresh on every replay)."""

    def __init__(self, fn, ws_shape, n_noise: int, device: torch.device, warmup: int = 3):
        self.static_ws = torch.zeros(ws_shape, device=device)
        self.static_gain = torch.ones(max(n_noise, 1), device=device)
        self.n_noise = n_noise
        gain = self.static_gain if n_noise else None
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up (cuDNN autotuning, allocator) off the capture
            for _ in range(warmup):
                fn(self.static_ws, gain)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = fn(self.static_ws, gain)

    def __call__(self, ws: torch.Tensor, gains=None) -> torch.Tensor:
        self.static_ws.copy_(ws)
        if self.n_noise:
            if gains is None:
                self.static_gain.fill_(1.0)
            else:
                self.static_gain.copy_(torch.as_tensor(gains, dtype=torch.float32).reshape(-1).expand(self.n_noise))
        self.graph.replay()
        return self.static_out


class GeneratorRunner:
    def __init__(self, generator: Generator, device: str | None = None, precision: str = "auto",
                 cuda_graph: bool | str = "auto", compile: bool = False, channels_last: bool | str = "auto"):
        self.device = pick_device(device)
        if precision == "auto":
            precision = "fp16" if self.device.type == "cuda" else "fp32"
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"precision must be fp32 or fp16, got {precision!r}")
        self.precision = precision
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        if hasattr(generator, "fold_batchnorm"):
            generator.fold_batchnorm()
        generator = generator.to(self.device).eval()
        if channels_last == "auto":
            channels_last = self.device.type == "cuda" and precision == "fp16"
        if precision == "fp16":
            try:
                generator.set_precision(torch.float16, channels_last=bool(channels_last))
            except TypeError:
                generator.set_precision(torch.float16)
        else:
            generator.set_precision(torch.float32)
        self.generator = generator
        self.info = generator.info
        self.use_graph = self.device.type == "cuda" and cuda_graph in (True, "auto")
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes per graph: let cuDNN pick its fastest kernels
        self._synthesis = generator.synthesis
        if compile:
            self._synthesis = torch.compile(generator.synthesis, mode="max-autotune-no-cudagraphs", dynamic=False)
        self._graphs: dict[tuple, GraphedSynthesis] = {}
        self.n_noise = len(self.info.extra.get("noise_layers", ()))

    def as_tensor(self, x) -> torch.Tensor:
        if torch.is_tensor(x):
            t = x.to(self.device, torch.float32)
        else:
            a = np.asarray(x, dtype=np.float32)
            # read-only arrays (a snapshot's, a bookmark's) are copied: torch wants to own writable memory
            t = torch.as_tensor(a if a.flags.writeable else a.copy(), device=self.device)
        return t[None] if t.ndim == 1 else t

    def _truncate(self, ws: torch.Tensor, psi, cutoff) -> torch.Tensor:
        if psi == 1 or not hasattr(self.generator, "truncate"):
            return ws
        return self.generator.truncate(ws, psi, cutoff)

    @torch.inference_mode()
    def styles(self, z=None, w=None, ws=None, psi: float = 1.0, c=None, cutoff: int | None = None,
               per_layer: bool = False) -> torch.Tensor:
        """Per-layer styles [N, num_ws, w_dim] (fp32) from one of ``z``, ``w`` or ``ws``
        (a single latent or a batch). ``psi``/``cutoff`` truncate towards the average
        style whichever is given. A conditional model without ``c`` draws class 0.
        ``per_layer``: a z of shape [num_ws, z_dim] is one z per layer, not a batch (what a
        patch means by it: the engine draws one frame at a time)."""
        nw, wd = self.info.num_ws, self.info.w_dim
        if ws is not None:
            return self._truncate(self.as_tensor(ws).reshape(-1, nw, wd), psi, cutoff)
        if w is not None:
            return self._truncate(self.as_tensor(w).reshape(-1, 1, wd).expand(-1, nw, -1), psi, cutoff)
        zt = self.as_tensor(z).reshape(-1, self.info.z_dim)
        ct = self._class_vectors(c, zt.shape[0]) if self.info.c_dim else None
        if per_layer and nw > 1 and zt.shape[0] == nw:
            # one z per layer (style mixing): each is mapped, layer i takes row i's style
            ws = self.generator.mapping(zt, ct, psi=psi, cutoff=cutoff)
            i = torch.arange(nw, device=ws.device)
            return ws[i, i][None]
        return self.generator.mapping(zt, ct, psi=psi, cutoff=cutoff)

    def _class_vectors(self, c, n: int) -> torch.Tensor:
        """[n, c_dim] from a class vector (one-hot or a mix), a class index, or None (the
        model's ``default_class``, else class 0)."""
        if c is None or np.ndim(c) == 0:
            index = int(self.info.extra.get("default_class", 0) if c is None else c)
            if not 0 <= index < self.info.c_dim:
                raise ValueError(f"class {index} is outside 0..{self.info.c_dim - 1}")
            ct = torch.zeros(n, self.info.c_dim, device=self.device)
            ct[:, index] = 1
            return ct
        return self.as_tensor(c).reshape(-1, self.info.c_dim).expand(n, -1)

    def _graphed(self, ws: torch.Tensor, mode: str) -> GraphedSynthesis:
        key = (tuple(ws.shape), mode)
        g = self._graphs.get(key)
        if g is None:
            synth = self._synthesis

            def fn(static_ws, gain):
                return synth(static_ws, noise=mode, noise_strength=gain).float()

            log.debug("capturing a CUDA graph for batch %d, noise %s", ws.shape[0], mode)
            g = self._graphs[key] = GraphedSynthesis(fn, tuple(ws.shape), self.n_noise, self.device)
        return g

    @torch.inference_mode()
    def images(self, ws: torch.Tensor, noise="const", noise_strength=None, transform=None) -> torch.Tensor:
        """Float images [N, C, H, W] on the device. With a CUDA graph the tensor is
        reused by the next call: copy it to keep it."""
        mode, strength = resolve_noise(noise, noise_strength)
        ws = ws.to(self.device, torch.float32)
        if isinstance(strength, dict) and self.n_noise:
            names = self.info.extra["noise_layers"]
            unknown = set(strength) - set(names)
            if unknown:
                raise ValueError(f"unknown noise layers {sorted(unknown)}; this model has {names}")
            strength = [float(strength.get(n, 1.0)) for n in names]
        if self.use_graph and transform is None:
            return self._graphed(ws, mode)(ws, strength)
        return self._synthesis(ws, noise=mode, noise_strength=strength, transform=transform).float()

    @torch.inference_mode()
    def frame(self, ws: torch.Tensor, noise="const", noise_strength=None, transform=None,
              channels: int = 3) -> torch.Tensor:
        """The first frame of ``ws`` as a uint8 tensor [H, W, channels] on the device, top row
        first (4 channels: RGB and an opaque alpha, what CUDA-GL interop can take)."""
        img = self.images(ws[:1], noise, noise_strength, transform)[0]
        img = (img.clamp(-1, 1) + 1).mul_(127.5).round_().to(torch.uint8).permute(1, 2, 0)
        if channels == 4:
            img = torch.cat([img, torch.full_like(img[..., :1], 255)], dim=2)
        return img.contiguous()

    def image(self, ws: torch.Tensor, noise="const", noise_strength=None, transform=None) -> np.ndarray:
        """The first frame of ``ws`` as uint8 RGB [H, W, 3] in host memory, top row first."""
        return self.frame(ws, noise, noise_strength, transform).cpu().numpy()


def share_cores_with_gl(gl_renderer: str, device: torch.device) -> None:
    """With a software OpenGL renderer (llvmpipe) the shader chain runs on the same CPU
    cores as a CPU generator, and torch's spinning worker threads slow both down:
    give the generator half the cores. Measured on 2 cores: 12.7 ms per frame with one
    torch thread against 15.4 ms with two."""
    import os
    if device.type != "cpu" or not any(s in gl_renderer.lower() for s in ("llvmpipe", "softpipe", "swrast")):
        return
    threads = max(1, (os.cpu_count() or 2) // 2)
    if torch.get_num_threads() > threads:
        torch.set_num_threads(threads)
        log.debug("software OpenGL: generator uses %d CPU thread(s)", threads)
