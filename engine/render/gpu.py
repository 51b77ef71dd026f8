"""Running the generator each frame: device, precision, and the hand-off to OpenGL.

On CUDA the generator runs in fp16; on the CPU in fp32 (fp16 convolutions on the
CPU are slower, not faster). The output is turned into 8-bit RGB on the device, so
only width*height*3 bytes cross to the texture upload.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from engine.generators.base import Generator

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


class GeneratorRunner:
    def __init__(self, generator: Generator, device: str | None = None, precision: str = "auto"):
        self.device = pick_device(device)
        if precision == "auto":
            precision = "fp16" if self.device.type == "cuda" else "fp32"
        self.precision = precision
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        if hasattr(generator, "fold_batchnorm"):
            generator.fold_batchnorm()
        self.generator = generator.to(self.device, self.dtype).eval()
        self.info = generator.info

    def as_tensor(self, x) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)
        return t[None] if t.ndim == 1 else t

    @torch.inference_mode()
    def styles(self, z=None, w=None, ws=None, psi: float = 1.0, c=None) -> torch.Tensor:
        if ws is not None:
            return self.as_tensor(ws).reshape(1, self.info.num_ws, self.info.w_dim)
        if w is not None:
            return self.as_tensor(w).reshape(1, 1, self.info.w_dim).expand(1, self.info.num_ws, -1)
        zt = self.as_tensor(z)
        n = self.info.num_ws
        if zt.ndim == 2 and zt.shape[0] > 1 and n > 1:
            # one z per layer [num_ws, z_dim] (style mixing): each is mapped, layer i takes row i's style
            zt = zt.reshape(n, self.info.z_dim)
            ct = None if c is None else self.as_tensor(c).expand(n, -1)
            ws = self.generator.mapping(zt.to(self.dtype), ct, psi=psi)
            i = torch.arange(n, device=ws.device)
            return ws[i, i][None]
        zt = zt.reshape(1, self.info.z_dim)
        ct = None if c is None else self.as_tensor(c)
        return self.generator.mapping(zt.to(self.dtype), ct, psi=psi)

    @torch.inference_mode()
    def image(self, ws: torch.Tensor, noise: str = "const") -> np.ndarray:
        """One frame as uint8 RGB [H, W, 3], top row first."""
        img = self.generator.synthesis(ws.to(self.dtype), noise=noise)[0]
        img = (img.float().clamp_(-1, 1) + 1).mul_(127.5).round_().to(torch.uint8)
        return img.permute(1, 2, 0).contiguous().cpu().numpy()


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
