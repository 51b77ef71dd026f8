"""The recording stage of a frame: ``--record`` / ``vj render --out``, and takes started over OSC.

Nothing here waits for the GPU or the encoder on the render thread. Each frame's output is
copied into a pixel buffer and taken a frame later (``render/readback.py``), and handed to
the recorder's encoder thread. Live, a full encoder queue drops the frame and counts it (the
HUD and the closing log say how many); ``vj render`` (``live=False``) waits instead, so an
offline render keeps every frame.

A recorder given at start (``recorder``) records every frame on the clock's timeline (frame
k at k/fps, so dropped frames leave gaps and the video keeps real time). ``record.start``
events (``/vj/record/start [name]``) open a take in ``record_dir`` (a name that exists gets a
numbered suffix: a take never replaces another), whose first frame is time 0 of its file; ``record.stop`` closes it, off the render thread (draining the encoder takes
a while). A full disk or a dead encoder ends that recording, never the show.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

from engine.outputs.recorder import Recorder, RecorderError
from engine.paths import unused_path

log = logging.getLogger("vj")


LIVE_PRESET = "superfast"        # x264 at 1280x720 on this 2-core CI machine: 18 ms of CPU a frame (veryfast: 28)
QUEUE_BYTES = 192 * 1024 * 1024  # frames waiting for a live encoder, at most


OFFLINE_X264 = {"qp": "18", "x264-params": "scenecut=0"}


def recorder_options(size: tuple[int, int], fps: float, live: bool) -> dict:
    """How a recording is encoded. Live, the encoder shares the machine with the show: a
    lighter x264 preset (twice the file size of ``veryfast``, a third less CPU) and about a
    second of frames queued to ride out a slow patch of encoding before one is dropped.
    Offline (``vj render``), time is free: the default preset and queue."""
    if not live:
        # a constant quantiser and a fixed keyframe every second: how a frame is encoded then
        # depends only on the frames since its keyframe, so a render split into chunks on
        # keyframes (engine/render/chunks.py) encodes to the same bytes as one made whole
        return {"x264": dict(OFFLINE_X264)}
    frames = max(4, min(round(fps), QUEUE_BYTES // (size[0] * size[1] * 4)))
    return {"preset": LIVE_PRESET, "queue_frames": frames}


class RecordStage:
    name = "record"

    def __init__(self, readback, size: tuple[int, int], fps: float, recorder: Recorder | None = None,
                 record_dir="recordings", report=None, live: bool = True):
        self.readback = readback              # render/readback.py PixelReadback: push(texture, tag), drain()
        self.size, self.fps = size, float(fps)
        self.live = live
        self.recorder = recorder
        self.record_dir = Path(record_dir)
        self.take: Recorder | None = None
        self.take_path: Path | None = None
        self._take_base: int | None = None
        self._last_index = -1
        self._closing: list[threading.Thread] = []
        self._report = report or (lambda msg: log.error("%s", msg))
        self.messages: list[tuple[float, str]] = []

    def _say(self, msg: str, level=logging.INFO) -> None:
        log.log(level, "%s", msg)
        self.messages.append((time.monotonic(), msg))
        del self.messages[:-6]

    @property
    def recording(self) -> bool:
        return self.recorder is not None or self.take is not None

    @property
    def dropped(self) -> int:
        """Frames the encoders could not keep up with, in the recordings now open."""
        return sum(r.dropped for r in (self.recorder, self.take) if r is not None)

    def run(self, frame) -> None:
        ev = frame.snap.events
        for e in ev.get("record.start", ()):
            self._start(e.value)
        if ev.get("record.stop"):
            if self.take is not None:
                self._write_pending()
                self._close_take()
            else:
                self._say("record stop: not recording from OSC")
        if self.recording and frame.texture is not None:
            # live, a frame's place is its time (a dropped frame leaves a gap: the video keeps real
            # time); offline every frame is the next (a replayed show's times are the live wall
            # clock's, and a render in chunks needs each chunk's frames to follow on)
            index = self._last_index + 1 if not self.live else \
                max(self._last_index + 1, int(round(frame.snap.time * self.fps)))
            targets = []
            if self.recorder is not None:
                targets.append((self.recorder, index))
            if self.take is not None:
                if self._take_base is None:
                    self._take_base = index
                targets.append((self.take, index - self._take_base))
            self._deliver(self.readback.push(frame.texture, targets))
            self._last_index = index
        elif not self.recording:
            self._write_pending()
        frame.status["recording"] = 1.0 if self.recording else 0.0

    def _deliver(self, done) -> None:
        """The frame read back a tick ago goes to the recordings it was taken for (still open)."""
        if done is None:
            return
        rgb, targets = done
        for rec, index in targets:
            if rec is self.recorder:
                self.recorder = self._write(rec, rgb, index)
            elif rec is self.take:
                self.take = self._write(rec, rgb, index)

    def _write_pending(self) -> None:
        self._deliver(self.readback.drain())

    def _write(self, rec: Recorder, rgb, index: int) -> Recorder | None:
        try:
            rec.write(rgb, index, wait=not self.live, owned=True)
            return rec
        except RecorderError as e:
            self._report(f"recording stopped: {e}")
            try:
                rec.close()
            except RecorderError:
                pass
            return None

    def _start(self, name) -> None:
        if self.take is not None or self.recorder is not None:
            self._say("record start: already recording")
            return
        stem = Path(str(name)).name if name else time.strftime("vj-%Y%m%d-%H%M%S")
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem) or "take"
        path = unused_path(self.record_dir / (stem if stem.endswith(".mp4") else stem + ".mp4"))
        try:
            rec = Recorder(path, *self.size, self.fps, **recorder_options(self.size, self.fps, self.live))
        except (RecorderError, OSError, ValueError) as e:
            self._say(f"record start: {e}", logging.ERROR)
            return
        self.take, self.take_path, self._take_base = rec, path, None
        self._say(f"recording to {path}")

    def _close_take(self, wait: bool = False) -> None:
        rec, path = self.take, self.take_path
        self.take = None

        def close():
            try:
                rec.close()
                log.info("recording closed: %s (%s)", path, _count(rec))
            except Exception as e:  # noqa: BLE001
                log.error("recording %s: %s", path, e)
        if wait:
            close()
        else:
            t = threading.Thread(target=close, name="record-close")
            t.start()
            self._closing = [x for x in self._closing if x.is_alive()] + [t]

    def close(self) -> None:
        """Finish every recording (the Session calls this on the way out)."""
        self._write_pending()
        if self.take is not None:
            self._close_take(wait=True)
        for t in self._closing:
            t.join()
        if self.recorder is not None:
            rec, self.recorder = self.recorder, None
            rec.close()
            log.info("recording closed: %s (%s)", rec.path, _count(rec))


def _count(rec: Recorder) -> str:
    dropped = f", {rec.dropped} dropped: the encoder could not keep up" if rec.dropped else ""
    return f"{rec.frames_written} frames{dropped}"
