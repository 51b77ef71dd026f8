"""The generator and shader-chain stages of a frame (engine/render/loop.py runs them)."""
from __future__ import annotations

import time

import numpy as np


class GenerateStage:
    """Controls -> ``frame.image``. A generator error (a wrong latent size, device trouble) is
    reported once per distinct message and the previous image is shown again (black if there is
    none yet); the message goes as soon as the generator succeeds again."""

    name = "generator"

    def __init__(self, runner, report, clear):
        self.runner = runner
        self._report, self._clear = report, clear
        self._image: np.ndarray | None = None
        self._error: str | None = None

    def run(self, frame) -> None:
        c = frame.controls
        g0 = time.perf_counter()
        try:
            if c is None:
                raise ValueError("no controls this frame")
            runner = self.runner
            ws = runner.styles(z=c.z, w=c.w, ws=c.ws, psi=c.psi, c=c.c,
                               per_layer=c.z is not None and np.ndim(c.z) == 2)
            transform = None if c.transform is None else runner.as_tensor(c.transform)
            self._image = runner.image(ws, c.noise, transform=transform)
            if self._error is not None:
                self._clear(self._error)
                self._error = None
        except Exception as e:  # noqa: BLE001 - keep drawing
            msg = f"generator: {type(e).__name__}: {e}"
            if msg != self._error:
                self._report(msg)
                self._error = msg
            if self._image is None:
                self._image = np.zeros((self.runner.info.resolution,) * 2 + (3,), np.uint8)
        frame.image = self._image
        frame.gen_ms = (time.perf_counter() - g0) * 1000


class ShadeStage:
    """``frame.image`` -> the shader chain -> ``frame.texture`` (finished: the GPU is done with it)."""

    name = "shaders"

    def __init__(self, chain):
        self.chain = chain

    def run(self, frame) -> None:
        if frame.image is not None:
            self.chain.upload(frame.image)
        post = frame.controls.post if frame.controls is not None else None
        frame.texture = self.chain.render(post, dt=frame.dt)
        self.chain.ctx.finish()
