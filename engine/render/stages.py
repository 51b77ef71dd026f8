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

import numpy as np


class _Job:
    __slots__ = ("controls", "image", "ready", "error", "start", "end", "done")

    def __init__(self, controls):
        self.controls = controls
        self.image = self.ready = self.error = None
        self.start = self.end = 0.0
        self.done = threading.Event()


class GenerateStage:
    """Controls -> ``frame.image`` (a uint8 [H, W, channels] tensor on the generator's device).

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
        self._image = None
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
            c = job.controls
            if c is None:
                raise ValueError("no controls this frame")
            runner = self.runner
            ws = runner.styles(z=c.z, w=c.w, ws=c.ws, psi=c.psi, c=c.c,
                               per_layer=c.z is not None and np.ndim(c.z) == 2)
            transform = None if c.transform is None else runner.as_tensor(c.transform)
            job.image = runner.frame(ws, c.noise, transform=transform, channels=self.channels)
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
            self._image, self._ready = job.image, job.ready
            if self._error is not None:
                self._clear(self._error)
                self._error = None
        elif job is not None and job.error != self._error:
            self._report(job.error)
            self._error = job.error
        if self._image is None:  # black (opaque), where the frame sources expect it: on the device
            import torch
            r = self.runner.info.resolution
            self._image = torch.zeros((r, r, self.channels), dtype=torch.uint8, device=self.runner.device)
            if self.channels == 4:
                self._image[..., 3] = 255
        frame.image, frame.image_ready = self._image, self._ready
        if job is not None:
            self._gen_ms = (job.end - job.start) * 1000
            frame.stamps["gen_start"], frame.stamps["gen_end"] = job.start, job.end
        frame.gen_ms = self._gen_ms  # a late frame shows the last image: and says what it cost

    # --- the serial frame
    def run(self, frame) -> None:
        job = _Job(frame.controls)
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
        job = frame.gen_job = self._busy = _Job(frame.controls)
        self._jobs.put(job)

    def collect(self, frame, timeout: float | None = None) -> None:
        """``frame.image``: its own if it is ready within ``timeout`` s (None: however long it
        takes, as offline rendering must), else the newest there is."""
        job = getattr(frame, "gen_job", None)
        busy = self._busy
        if self._image is None and timeout is not None:
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
    """``frame.image`` -> the frame source -> the shader chain -> ``frame.texture``
    (finished: OpenGL is done with it)."""

    name = "shaders"

    def __init__(self, chain, source):
        self.chain = chain
        self.source = source

    def run(self, frame) -> None:
        if frame.image is not None:
            self.chain.show(self.source.upload(frame.image, ready=getattr(frame, "image_ready", None)))
        post = frame.controls.post if frame.controls is not None else None
        frame.texture = self.chain.render(post, dt=frame.dt)
        self.chain.finish()
