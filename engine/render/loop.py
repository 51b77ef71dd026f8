"""The render loop: one frame = snapshot -> patch -> generator -> shader chain -> outputs.

``Engine.run_live`` paces frames to the wall clock at the target fps and, when a
frame comes too late, skips the frames it missed (counted as dropped) instead of
falling behind. ``Engine.run_offline`` renders every frame of a virtual clock as fast
as the machine allows. Nothing a patch or the generator does can stop the loop:
failures are reported and the last good frame's settings are used again.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from engine.patching.loader import PatchHost
from engine.render.gpu import GeneratorRunner
from engine.render.post import ShaderChain
from engine.signals.bus import SignalBus
from engine.signals.clock import Clock, follow_audio

log = logging.getLogger("vj")


@dataclass
class FrameStats:
    frame: int = 0
    fps: float = 0.0
    frame_ms: float = 0.0
    gen_ms: float = 0.0
    dropped: int = 0
    latency_ms: float | None = None
    _last: float | None = field(default=None, repr=False)

    def tick(self, now: float, frame_ms: float, gen_ms: float) -> None:
        self.frame += 1
        self.frame_ms = frame_ms
        self.gen_ms = gen_ms
        if self._last is not None:
            inst = 1.0 / max(now - self._last, 1e-6)
            self.fps = inst if self.fps == 0.0 else 0.9 * self.fps + 0.1 * inst
        self._last = now


class Engine:
    def __init__(self, runner: GeneratorRunner, patches: PatchHost, chain: ShaderChain,
                 bus: SignalBus, clock: Clock, fps: float = 30.0, recorder=None, window=None,
                 hud=None, setlist=None):
        self.runner = runner
        self.patches = patches
        self.chain = chain
        self.bus = bus
        self.clock = clock
        self.fps = float(fps)
        self.recorder = recorder
        self.window = window
        self.hud = hud
        self.setlist = setlist
        self.rig = None  # OSC/MIDI control surfaces (engine/rig.py), set by `vj run`
        self.stats = FrameStats()
        self._image: np.ndarray | None = None
        self._last_index = -1
        self._gen_error: str | None = None
        self.newest_input: float | None = None  # capture time of the newest input the last frame used
        self._latency_of: float | None = None
        self.follow_tempo = False               # the clock follows audio.bpm / audio.beat_phase

    # one frame
    def render_frame(self):
        t0 = time.perf_counter()
        self.clock.tick()
        snap = self.bus.snapshot(**self.clock.fields())
        # rig: tempo/tap/record events, MIDI clock, then parameters and their bindings
        if self.rig is not None:
            self.rig.frame(self, snap)
        self.patches.params.frame(snap)
        if self.follow_tempo:
            follow_audio(self.clock, snap)      # takes effect from the next frame
        if self.setlist is not None:
            scene = self.setlist.update(snap)
            if scene is not None:
                self.patches.switch(scene.patch)
        controls = self.patches.frame(snap)
        g0 = time.perf_counter()
        try:
            ws = self.runner.styles(z=controls.z, w=controls.w, ws=controls.ws, psi=controls.psi, c=controls.c,
                                    per_layer=controls.z is not None and np.ndim(controls.z) == 2)
            transform = None if controls.transform is None else self.runner.as_tensor(controls.transform)
            self._image = self.runner.image(ws, controls.noise, transform=transform)
            if self._gen_error is not None:
                self.patches.clear_error(self._gen_error)
                self._gen_error = None
        except Exception as e:  # noqa: BLE001 - wrong latent shape, device trouble: keep drawing
            msg = f"generator: {type(e).__name__}: {e}"
            if msg != self._gen_error:
                self.patches.report(msg)
                self._gen_error = msg
            if self._image is None:
                self._image = np.zeros((self.runner.info.resolution,) * 2 + (3,), np.uint8)
        gen_ms = (time.perf_counter() - g0) * 1000
        self.chain.upload(self._image)
        out = self.chain.render(controls.post, dt=snap.dt or 1.0 / self.fps)
        if self.recorder is not None:
            self._record()
        else:
            self.chain.ctx.finish()
        done = time.perf_counter()
        self.newest_input = snap.newest_input
        self.stats.tick(done, (done - t0) * 1000, gen_ms)
        return out

    def _record(self) -> None:
        from engine.outputs.recorder import RecorderError
        index = max(self._last_index + 1, int(round(self.clock.time * self.fps)))
        try:
            self.recorder.write(self.chain.read(), index)
        except RecorderError as e:
            # a full disk or a dead encoder ends the recording, never the show
            self.patches.report(f"recording stopped: {e}")
            try:
                self.recorder.close()
            except RecorderError:
                pass
            self.recorder = None
            return
        self._last_index = index

    def _present(self, out) -> None:
        if self.window is not None:
            self.window.present(out)
        if self.newest_input is not None and self.newest_input != self._latency_of:
            # input captured -> frame on screen (or ready, headless); measured on the frame that
            # first used that input, so a sparse input (an OSC fader at rest) does not read as lag
            self.stats.latency_ms = (time.monotonic() - self.newest_input) * 1000
            self._latency_of = self.newest_input
        if self.window is None:
            return
        self.window.poll()
        while self.window.cues:
            self.bus.emit(self.window.cues.pop(0))
        while self.window.taps:
            self.window.taps -= 1
            bpm = self.clock.tap()
            if bpm:
                log.info("tap tempo: %.1f bpm", bpm)

    def _update_hud(self) -> None:
        if self.window is None or self.hud is None or not self.window.show_hud:
            return
        from engine.render.hud import hud_lines
        msg = self.patches.last_message
        note = msg[1] if msg and time.monotonic() - msg[0] < 5.0 else None
        label = self.patches.name
        if self.setlist is not None:
            sl = self.setlist
            label = f"{label}  (scene {sl.index + 1}/{len(sl.scenes)} {sl.scene.name})"
        lines = hud_lines(self.stats, label, self.patches.last_error,
                          self.runner.info.name, self.chain.size, self.fps, note)
        if self.rig is not None:
            lines += self.rig.hud_lines()
        img = self.hud.render(lines)
        if img is not None:
            self.window.set_hud(img)

    # loops
    def run_live(self, frames: int | None = None, should_stop: Callable[[], bool] | None = None,
                 status_every: float = 5.0) -> FrameStats:
        period = 1.0 / self.fps
        if hasattr(self.clock, "restart"):
            self.clock.restart()
        next_t = time.monotonic()
        last_status = last_hud = next_t
        rendered = 0
        while frames is None or rendered < frames:
            if should_stop and should_stop() or self.window is not None and self.window.should_close:
                break
            now = time.monotonic()
            if now < next_t:
                _sleep_until(next_t)
            elif now - next_t >= period:
                missed = int((now - next_t) / period)
                self.stats.dropped += missed
                next_t += missed * period
            out = self.render_frame()
            rendered += 1
            self._present(out)
            next_t += period
            now = time.monotonic()
            if now - last_hud >= 0.25:
                self._update_hud()
                last_hud = now
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
            self.render_frame()
            if progress is not None:
                progress.update(1)
        return self.stats

    def _log_status(self) -> None:
        s = self.stats
        lat = f", input latency {s.latency_ms:.0f} ms" if s.latency_ms is not None else ""
        err = f", last error: {self.patches.last_error}" if self.patches.last_error else ""
        rig = f", {self.rig.status()}" if self.rig is not None and self.rig.status() else ""
        log.info("frame %d, %.1f fps, frame %.1f ms, generator %.1f ms, dropped %d, patch %s%s%s%s",
                 s.frame, s.fps, s.frame_ms, s.gen_ms, s.dropped, self.patches.name, lat, err, rig)


def _sleep_until(deadline: float) -> None:
    # time.sleep overshoots by up to a millisecond or so; sleep most of the way, spin the rest
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(left - 0.0015 if left > 0.002 else 0)
