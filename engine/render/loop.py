"""The render loop: one frame is a fixed list of stages, run in order on the render thread.

The engine is given its stages when it is built (``engine/session.py`` builds them) and knows
nothing else about them. Each frame it ticks the clock, takes one snapshot of the bus and
hands a fresh ``Frame`` to every stage in turn; a stage reads what earlier ones left there and
adds its own part. The order for ``vj run``:

1. clock sync (``control/clock_sync.py``): tempo and beat sources, by priority;
2. parameters and mappings (``patching/stage.py``): ``param.*`` events, learn, bindings;
3. set list (``show/sets.py``): cues and timed scenes switch the patch;
4. patch (``patching/stage.py``): the user's ``frame(p, s)`` -> ``frame.controls``;
5. generator (``render/stages.py``): controls -> ``frame.image`` (uint8, on its device);
6. shader chain (``render/stages.py``): image -> frame source -> ``frame.texture``;
7. recording (``outputs/recording.py``): ``--record`` and ``/vj/record/*``;
8. publish (``control/publish.py``): the status for OSC out and OSCQuery;
9. window (``render/display.py``): present, keys, HUD.

**Pipelined** (the default): the stages before the generator are the front, those after
it the back. Each tick collects frame N-1's image from the generator's worker, runs the
front of frame N (its snapshot is taken then: the freshest controls the worker can start
on), hands the worker frame N's controls, and runs the back of frame N-1 while the worker
generates N. What reaches the screen is one frame older than the newest controls;
every frame still gets its own image, settings and clock, in order, so ``vj render`` gives
the same pixels either way. **Serial** (``pipeline=False``, ``--no-pipeline``): every stage
of a frame in one tick, on the render thread.

Each frame is stamped (``Frame.stamps``, ``time.monotonic``): ``input``, the capture time of
the newest input in its snapshot; ``gen_start`` and ``gen_end``; ``ready``, when its back
stages are done (shown, headless: ready to show). ``FrameStats`` keeps the latest figures.

``vj render`` and ``vj bench`` use the same list without the stages they do not need. A
stage that raises is reported once per distinct message and the frame goes on: nothing a
stage does stops the loop. ``Engine.run_live`` paces frames to the wall clock at the target
fps and, when a frame comes too late, skips the frames it missed (counted as dropped)
instead of falling behind; a generator slower than the frame rate leaves the last image on
screen until its next one is ready (counted as late). ``Engine.run_offline`` renders every
frame of a virtual clock as fast as the machine allows.
"""
from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

log = logging.getLogger("vj")


@dataclass
class FrameStats:
    frame: int = 0
    fps: float = 0.0
    frame_ms: float = 0.0
    gen_ms: float = 0.0
    dropped: int = 0
    latency_ms: float | None = None          # input captured -> frame shown (ready, headless)
    input_to_frame_ms: float | None = None   # input captured -> its image generated
    latency_by: dict = field(default_factory=dict)   # per input group ("hands"): input captured -> shown, ms
    _last: float | None = field(default=None, repr=False)
    _dt: float | None = field(default=None, repr=False)

    def tick(self, now: float, frame_ms: float, gen_ms: float) -> None:
        self.frame += 1
        self.frame_ms = frame_ms
        self.gen_ms = gen_ms
        if self._last is not None:
            # the average of the intervals, not of their inverses: a late frame and the quick
            # one after it must read as the frame rate they make together, not as a spike
            dt = max(now - self._last, 1e-6)
            self._dt = dt if self._dt is None else 0.9 * self._dt + 0.1 * dt
            self.fps = 1.0 / self._dt
        self._last = now


@dataclass
class Frame:
    """What the stages of one frame hand each other."""

    snap: Any                       # the bus snapshot (engine/signals/bus.py)
    fps: float                      # the target frame rate
    status: dict = field(default_factory=dict)   # for publishing: tempo, scene, recording ...
    controls: Any = None            # the patch's Controls (during a transition: the incoming scene's)
    layers: Any = None              # render/stages.py Layers: the pictures of a transition between scenes
    mix: Any = None                 # (amount, "crossfade" | "wipe") of two layers
    image: Any = None               # the generator's uint8 RGB image (the first layer's)
    images: Any = None              # [(slot, image)] per layer
    texture: Any = None             # the shader chain's output texture
    gen_ms: float = 0.0
    quit: bool = False              # a stage asks the loop to stop (the window was closed)
    stamps: dict = field(default_factory=dict)   # monotonic times: input, gen_start, gen_end, ready
    gen_job: Any = None             # the generator worker's job for this frame (pipelined)
    image_ready: Any = None         # a CUDA event the image is ready after (pipelined on CUDA)
    notes: list = field(default_factory=list)    # what a show recording keeps beside the snapshot

    @property
    def dt(self) -> float:
        return self.snap.dt or 1.0 / self.fps


class Engine:
    def __init__(self, clock, bus, stages: Sequence, fps: float = 30.0, stats: FrameStats | None = None,
                 report: Callable[[str], None] | None = None, status_line: Callable[[], str] | None = None,
                 pipeline: bool = False, live: bool = True, latency_of: dict[str, str] | None = None):
        self.clock = clock
        self.bus = bus
        self.stages = tuple(stages)
        gen = [i for i, st in enumerate(self.stages) if hasattr(st, "submit")]
        self._split = gen[0] if gen else None
        self.fps = float(fps)
        self.stats = stats if stats is not None else FrameStats()
        self._report = report or (lambda msg: log.error("%s", msg))
        self._status_line = status_line
        self._stage_errors: dict[str, str] = {}
        self._latency_of: float | None = None
        # inputs whose own latency is followed too: {name: a channel each of its messages sets}
        # (hands: hands.count), stamped as stamps[name]; "hand to frame" on the HUD and in the bench
        self._latency_of_inputs = dict(latency_of or {})
        self._seen_inputs: dict[str, float] = {}
        # live, a late generator costs one frame period of waiting, then the last image is
        # shown again; offline every frame waits for its own image
        self._gen_wait = (1.0 / self.fps) if live else None
        self.pipeline = bool(pipeline) and self._split is not None
        self._pending: Frame | None = None
        self.last: Frame | None = None

    @property
    def path(self) -> str:
        return "pipelined" if self.pipeline else "serial"

    def set_pipeline(self, on: bool) -> None:
        """Switch between the pipelined and the serial frame (the frame in flight is finished first)."""
        self.flush()
        self.pipeline = bool(on) and self._split is not None

    def _run(self, f: Frame, stages) -> None:
        for stage in stages:
            try:
                stage.run(f)
            except Exception as e:  # noqa: BLE001 - a failing stage never stops the frames
                msg = f"{stage.name}: {type(e).__name__}: {e}"
                if self._stage_errors.get(stage.name) != msg:
                    self._stage_errors[stage.name] = msg
                    self._report(msg)
            else:
                self._stage_errors.pop(stage.name, None)

    def _call(self, stage, method: str, f: Frame, *args) -> None:
        try:
            getattr(stage, method)(f, *args)
        except Exception as e:  # noqa: BLE001
            msg = f"{stage.name}: {type(e).__name__}: {e}"
            if self._stage_errors.get(stage.name) != msg:
                self._stage_errors[stage.name] = msg
                self._report(msg)

    # one frame
    def render_frame(self) -> Frame | None:
        """One tick. Returns the frame finished in it: this tick's own (serial), or the one
        before it (pipelined; None on the first tick)."""
        t0 = time.perf_counter()
        if not self.pipeline:
            f = self._begin()
            self._run(f, self.stages)
            return self._done(f, t0)
        split = self._split
        prev, gen = self._pending, self.stages[split]
        if prev is not None:
            # the image first, the snapshot after: the controls handed to the worker are as
            # fresh as they can be when it starts on them
            self._call(gen, "collect", prev, self._gen_wait)
        f = self._begin()
        self._run(f, self.stages[:split])
        self._call(gen, "submit", f)
        self._pending = f
        if prev is None:
            return None
        self._run(prev, self.stages[split + 1:])
        return self._done(prev, t0)

    def _begin(self) -> Frame:
        self.clock.tick()
        f = Frame(self.bus.snapshot(**self.clock.fields()), self.fps)
        f.stamps["input"] = f.snap.newest_input
        for name, channel in self._latency_of_inputs.items():
            f.stamps[name] = f.snap.times.get(channel)
        return f

    def flush(self) -> Frame | None:
        """Finish the frame in flight, if any (the end of an offline render)."""
        f, self._pending = self._pending, None
        if f is None:
            return None
        t0 = time.perf_counter()
        split = self._split
        self._call(self.stages[split], "collect", f, None)
        self._run(f, self.stages[split + 1:])
        return self._done(f, t0)

    def _done(self, f: Frame, t0: float) -> Frame:
        done = time.perf_counter()
        ready = f.stamps["ready"] = time.monotonic()
        newest = f.stamps.get("input")
        if newest is not None and newest != self._latency_of:
            # measured on the frame that first used that input, so a sparse input (an OSC
            # fader at rest) does not read as lag
            self.stats.latency_ms = (ready - newest) * 1000
            if "gen_end" in f.stamps:
                self.stats.input_to_frame_ms = (f.stamps["gen_end"] - newest) * 1000
            self._latency_of = newest
        for name in self._latency_of_inputs:
            t = f.stamps.get(name)
            if t is not None and t != self._seen_inputs.get(name):
                self._seen_inputs[name] = t
                self.stats.latency_by[name] = (ready - t) * 1000
        self.stats.tick(done, (done - t0) * 1000, f.gen_ms)
        self.last = f
        return f

    # loops
    def run_live(self, frames: int | None = None, should_stop: Callable[[], bool] | None = None,
                 status_every: float = 5.0) -> FrameStats:
        period = 1.0 / self.fps
        # everything built so far lives for the whole show: frozen out of the cyclic collector,
        # a full collection mid-show walks only what came since (over all of it: 50-70 ms, a
        # visible stall, measured on the built-in model)
        gc.collect()
        gc.freeze()
        if hasattr(self.clock, "restart"):
            self.clock.restart()
        next_t = time.monotonic()
        last_status = next_t
        rendered = 0
        while frames is None or rendered < frames:
            if should_stop and should_stop():
                break
            now = time.monotonic()
            if now < next_t:
                _sleep_until(next_t)
            elif now - next_t >= period:
                missed = int((now - next_t) / period)
                self.stats.dropped += missed
                next_t += missed * period
            f = self.render_frame()
            next_t += period
            if f is None:
                continue
            rendered += 1
            if f.quit:
                break
            now = time.monotonic()
            if now - last_status >= status_every:
                self._log_status()
                last_status = now
        self._log_status()
        return self.stats

    def run_offline(self, n_frames: int, before_frame: Callable[[int], None] | None = None,
                    progress=None) -> FrameStats:
        for k in range(n_frames):
            if before_frame:
                before_frame(k)
            if self.render_frame() is not None and progress is not None:
                progress.update(1)
        if self.flush() is not None and progress is not None:
            progress.update(1)
        return self.stats

    def fast_forward(self, n_frames: int, before_frame: Callable[[int], None] | None = None,
                     each: Callable[[Frame], None] | None = None) -> None:
        """Run ``n_frames`` frames through the front stages only (clock, parameters, set, patch):
        every state the frames carry moves on as in a full render, and nothing is generated,
        shaded or recorded. A chunk of a render begins here (engine/render/chunks.py).
        ``each(frame)`` sees each frame's controls and layers."""
        self.flush()
        split = self._split if self._split is not None else len(self.stages)
        for k in range(n_frames):
            if before_frame:
                before_frame(k)
            f = self._begin()
            self._run(f, self.stages[:split])
            if each is not None:
                each(f)

    def _log_status(self) -> None:
        s = self.stats
        lat = f", input latency {s.latency_ms:.0f} ms" if s.latency_ms is not None else ""
        more = self._status_line() if self._status_line else ""
        log.info("frame %d, %.1f fps, frame %.1f ms, generator %.1f ms, dropped %d%s%s", s.frame, s.fps,
                 s.frame_ms, s.gen_ms, s.dropped, lat, f", {more}" if more else "")


def _sleep_until(deadline: float) -> None:
    # time.sleep overshoots by up to a millisecond or so; sleep most of the way, spin the rest
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(left - 0.0015 if left > 0.002 else 0)
