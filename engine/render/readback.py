"""Reading finished frames back from OpenGL without waiting for them: two pixel-buffer
objects take turns. Frame N is copied into one (on a GPU the copy runs while the CPU goes
on), and frame N-1's bytes are taken from the other, a frame later, when the copy is long
done. The bytes come back as a NumPy view, rows bottom first as OpenGL stores them, RGBA:
whoever keeps them flips and drops alpha in one copy (the encoder does, on its thread)."""
from __future__ import annotations

import moderngl
import numpy as np


class PixelReadback:
    def __init__(self, ctx: moderngl.Context, size: tuple[int, int]):
        self.size = tuple(size)
        w, h = self.size
        self._buffers = [ctx.buffer(reserve=w * h * 4, dynamic=True) for _ in range(2)]
        self._turn = 0
        self._pending = None   # (buffer, tag) copied last time, not yet taken

    def push(self, texture: moderngl.Texture, tag=None):
        """Start copying ``texture`` (the output, RGBA, ``size``); returns the previous
        frame's ``(pixels, tag)``, or None on the first."""
        buf = self._buffers[self._turn]
        self._turn ^= 1
        texture.read_into(buf, alignment=1)
        previous, self._pending = self._pending, (buf, tag)
        return None if previous is None else (self._view(previous[0]), previous[1])

    def drain(self):
        """The frame still waiting, ``(pixels, tag)`` or None (the end of a recording)."""
        pending, self._pending = self._pending, None
        return None if pending is None else (self._view(pending[0]), pending[1])

    def _view(self, buf: moderngl.Buffer) -> np.ndarray:
        w, h = self.size
        # upright RGB view of a fresh bytes object: no copy here, one in the encoder
        return np.frombuffer(buf.read(), np.uint8).reshape(h, w, 4)[::-1, :, :3]

    def release(self) -> None:
        for b in self._buffers:
            b.release()
        self._buffers = []
        self._pending = None
