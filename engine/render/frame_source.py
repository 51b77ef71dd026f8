"""The seam between the generator and the shader chain: a frame source hands the
generator's image to OpenGL and says how (its ``name``: shown in the HUD and in
``vj bench`` as the display path).

- ``pbo`` (a CPU generator): the image goes through a pixel-buffer object, orphaned each
  frame so the driver never waits for the texture's previous upload before taking the
  next; the texture is then filled from the buffer, not from a NumPy array.
- ``cuda-gl`` (a CUDA generator): the image never leaves the GPU; the device tensor is
  copied into the texture through CUDA-GL interop (``render/cuda_gl.py``).
- ``pinned`` (a CUDA generator whose OpenGL is not on the same GPU, or when interop
  fails): device -> pinned host buffer -> pixel buffer -> texture.

``open_frame_source(ctx, device, path)`` picks one: ``auto`` takes interop where it
works and says why not otherwise. Every source returns the same texture object each
frame while the image size stays the same; the chain shades it (``ShaderChain.show``).
The interface: ``name``, ``channels`` (3 or 4: what the generator should hand over),
``upload(image, ready=None) -> texture``, ``release()``.
"""
from __future__ import annotations

import logging

import moderngl
import numpy as np

log = logging.getLogger("vj")

PATHS = ("auto", "pbo", "cuda-gl", "pinned")


class PboSource:
    """A CPU image (NumPy array or CPU tensor, uint8 [H, W, 3|4], top row first) through an
    orphaned pixel-buffer object into a texture."""

    name = "pbo"
    channels = 3

    def __init__(self, ctx: moderngl.Context):
        self.ctx = ctx
        self.texture: moderngl.Texture | None = None
        self._buffer: moderngl.Buffer | None = None
        self._shape: tuple | None = None

    def _allocate(self, h: int, w: int, c: int) -> None:
        self.release()
        self.texture = self.ctx.texture((w, h), c, alignment=1)
        self.texture.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.texture.repeat_x = self.texture.repeat_y = False
        self._buffer = self.ctx.buffer(reserve=h * w * c, dynamic=True)
        self._shape = (h, w, c)

    def upload(self, image, ready=None) -> moderngl.Texture:
        if hasattr(image, "numpy"):  # a CPU torch tensor: the same memory, no copy
            image = image.numpy()
        image = np.ascontiguousarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f"a frame is uint8 [H, W, 3 or 4], got {image.dtype} {image.shape}")
        if image.shape != self._shape:
            self._allocate(*image.shape)
        self._buffer.orphan()  # fresh storage: no wait for the texture's last read of the old one
        self._buffer.write(image)
        self.texture.write(self._buffer)
        return self.texture

    def release(self) -> None:
        for obj in (self._buffer, self.texture):
            if obj is not None:
                obj.release()
        self._buffer = self.texture = None
        self._shape = None


def open_frame_source(ctx: moderngl.Context, device, path: str = "auto"):
    """(source, note): the frame source for a generator on ``device``; ``note`` says why
    ``auto`` did not take interop (None when it did, or on a CPU generator)."""
    if path not in PATHS:
        raise ValueError(f"display path {path!r}: one of {', '.join(PATHS)}")
    if getattr(device, "type", "cpu") != "cuda":
        if path in ("cuda-gl", "pinned"):
            log.warning("--display-path %s needs a CUDA generator; using a pixel-buffer upload", path)
        return PboSource(ctx), None
    from engine.render import cuda_gl
    if path == "pbo":
        path = "pinned"  # a CUDA image has to come to the host first
    note = None
    if path in ("auto", "cuda-gl"):
        note = cuda_gl.interop_unavailable(device, ctx)
        if note is None:
            try:
                return cuda_gl.CudaGlSource(ctx, device), None
            except Exception as e:  # noqa: BLE001 - the pinned path still shows the frames
                note = f"CUDA-GL interop failed: {type(e).__name__}: {e}"
        log.warning("display path: %s; using the pinned-buffer upload", note)
    return cuda_gl.PinnedSource(ctx, device), note
