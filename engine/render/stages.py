"""The generator and shader-chain stages of a frame (engine/render/loop.py runs them).

The generator stage runs either in line (the serial frame, ``--no-pipeline``) or on its
own worker thread (the pipelined frame: ``submit`` a frame's controls, ``collect`` its
image a tick later, while the render thread shades the frame before it). On CUDA the
worker generates on its own stream and hands over an event with the image; the frame
source waits for it on the GPU, not on the CPU.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Layer:
    """One picture of a frame: a scene's controls through a generator, then through a shader
    chain. A frame without ``layers`` is one layer: its controls, the stage's runner and the
    session's chain. During a transition between scenes a frame has two (crossfade, wipe) or
    one whose latent is blended toward another scene's (``toward``: (controls, weight), morph)."""

    runner: Any
    controls: Any
    post: dict = field(default_factory=dict)
    slot: Any = None       # engine/show/scenes.py Slot (its chain and frame source); None: the session's
    toward: Any = None


def _styles(runner, c):
    return runner.styles(z=c.z, w=c.w, ws=c.ws, psi=c.psi, c=c.c, per_layer=c.z is not None and np.ndim(c.z) == 2)


class _Job:
    __slots__ = ("layers", "images", "ready", "error", "start", "end", "done")

    def __init__(self, layers):
        self.layers = layers
        self.images = self.ready = self.error = None
        self.start = self.end = 0.0
        self.done = threading.Event()


class GenerateStage:
    """Controls -> ``frame.images``: (slot, uint8 [H, W, channels] tensor on the generator's
    device) per layer; ``frame.image`` is the first.

    A generator error (a wrong latent size, device trouble) is reported once per distinct
    message and the previous image is shown again (black if there is none yet); the
    message goes as soon as the generator succeeds again. When the worker has not finished
    a frame in time (``collect``'s ``timeout``), the previous image is shown and the late
    one is taken when it arrives: the frames keep their rate whatever the generator does."""

    name = "generator"
    FIRST_IMAGE_WAIT = 10.0   # s: how long the first frame waits for its image, live

    def __init__(self, runner, report, clear, channels: int = 3):
        self.runner = runner
        self._report, self._clear = report, clear
        self.channels = channels
        self._images = None               # the newest good [(slot, image)]
        self._ready = None
        self._error: str | None = None
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._busy: _Job | None = None    # the job the worker has, until collected
        self._worker: threading.Thread | None = None
        self._stream = None
        self._gen_ms = 0.0
        self.late = 0                      # frames shown with an older image: the generator was late

    # --- the work itself (either thread)
    def _generate(self, job: _Job) -> None:
        import torch
        job.start = time.monotonic()
        try:
            images = []
            for layer in job.layers:
                c = layer.controls
                if c is None:
                    raise ValueError("no controls this frame")
                runner = layer.runner
                ws = _styles(runner, c)
                if layer.toward is not None:  # a morph: both scenes' styles, blended per layer
                    other, k = layer.toward
                    ws = ws + (_styles(runner, other) - ws) * float(k)
                transform = None if c.transform is None else runner.as_tensor(c.transform)
                images.append((layer.slot, runner.frame(ws, c.noise, transform=transform, channels=self.channels)))
            job.images = images
            if self._stream is not None:
                job.ready = torch.cuda.Event()
                job.ready.record(self._stream)
        except Exception as e:  # noqa: BLE001 - keep drawing
            job.error = f"generator: {type(e).__name__}: {e}"
        job.end = time.monotonic()
        job.done.set()

    def _take(self, frame, job: _Job | None) -> None:
        """Frame gets ``job``'s image (or the last good one), its stamps and its report."""
        if job is not None and job.error is None:
            self._images, self._ready = job.images, job.ready
            if self._error is not None:
                self._clear(self._error)
                self._error = None
        elif job is not None and job.error != self._error:
            self._report(job.error)
            self._error = job.error
        if self._images is None:  # black (opaque), where the frame sources expect it: on the device
            import torch
            r = self.runner.info.resolution
            black = torch.zeros((r, r, self.channels), dtype=torch.uint8, device=self.runner.device)
            if self.channels == 4:
                black[..., 3] = 255
            self._images = [(None, black)]
        frame.images, frame.image_ready = self._images, self._ready
        frame.image = self._images[0][1]
        if job is not None:
            self._gen_ms = (job.end - job.start) * 1000
            frame.stamps["gen_start"], frame.stamps["gen_end"] = job.start, job.end
        frame.gen_ms = self._gen_ms  # a late frame shows the last image: and says what it cost

    # --- the serial frame
    def _layers(self, frame) -> list:
        return frame.layers or [Layer(self.runner, frame.controls)]

    def run(self, frame) -> None:
        job = _Job(self._layers(frame))
        self._generate(job)
        self._take(frame, job)

    # --- the pipelined frame
    def submit(self, frame) -> None:
        """Start generating ``frame`` on the worker (unless it is still busy with a late one:
        then this frame will show the newest image there is)."""
        if self._busy is not None:
            frame.gen_job = None
            return
        if self._worker is None:
            self._start_worker()
        job = frame.gen_job = self._busy = _Job(self._layers(frame))
        self._jobs.put(job)

    def collect(self, frame, timeout: float | None = None) -> None:
        """``frame.image``: its own if it is ready within ``timeout`` s (None: however long it
        takes, as offline rendering must), else the newest there is."""
        job = getattr(frame, "gen_job", None)
        busy = self._busy
        if self._images is None and timeout is not None:
            # nothing to show yet: the show's first image is worth a wait (a model of several
            # hundred ms a frame would otherwise open on black frames), within reason
            timeout = max(timeout, self.FIRST_IMAGE_WAIT)
        if job is not None and job.done.wait(timeout):
            self._busy = None
            self._take(frame, job)
            return
        if job is None and busy is not None and busy.done.is_set():
            self._busy = None   # a late frame's image arrived: newer than what is on screen
            self._take(frame, busy)
        else:
            self._take(frame, None)
        self.late += 1

    def _start_worker(self) -> None:
        if self.runner.device.type == "cuda":
            import torch
            self._stream = torch.cuda.Stream(self.runner.device)
        self._worker = threading.Thread(target=self._work, name="generator", daemon=True)
        self._worker.start()

    def _work(self) -> None:
        import contextlib
        if self._stream is not None:
            import torch
            ctx = torch.cuda.stream(self._stream)
        else:
            ctx = contextlib.nullcontext()
        with ctx:
            while (job := self._jobs.get()) is not None:
                self._generate(job)

    def close(self) -> None:
        if self._worker is not None:
            self._jobs.put(None)
            self._worker.join(timeout=5)
            self._worker = None


class ShadeStage:
    """``frame.images`` -> each one's frame source -> its shader chain -> ``frame.texture``
    (finished: OpenGL is done with it). Two layers (a crossfade or a wipe between scenes)
    are shaded each through its own chain and composited (``frame.mix``: (amount, mode))."""

    name = "shaders"

    def __init__(self, chain, source, compositor=None):
        self.chain = chain
        self.source = source
        self.compositor = compositor   # engine/render/compose.py, for sets with crossfades or wipes

    def _slot(self, slot):
        return (self.chain, self.source) if slot is None else (slot.chain, slot.source)

    def run(self, frame) -> None:
        ready = getattr(frame, "image_ready", None)
        # a late frame shows the newest images there are; each goes to the chain it was made for
        for slot, image in getattr(frame, "images", None) or ():
            chain, source = self._slot(slot)
            chain.show(source.upload(image, ready=ready))
        layers = frame.layers or [Layer(None, frame.controls, frame.controls.post if frame.controls else {})]
        outputs = []
        for layer in layers:
            chain, _ = self._slot(layer.slot)
            if chain.source is not None:  # a chain that has no picture yet sits this one out
                outputs.append(chain.render(layer.post, dt=frame.dt))
        if not outputs:
            raise RuntimeError("no picture to shade yet")
        mix = getattr(frame, "mix", None)
        if len(outputs) == 2 and mix is not None and self.compositor is not None:
            frame.texture = self.compositor.render(outputs[0], outputs[1], *mix)
        else:
            frame.texture = outputs[-1]
        self.chain.finish()
