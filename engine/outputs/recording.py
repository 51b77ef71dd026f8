"""The recording stage of a frame: ``--record`` / ``vj render --out``, and takes started over OSC.

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


class RecordStage:
    name = "record"

    def __init__(self, read_pixels, size: tuple[int, int], fps: float, recorder: Recorder | None = None,
                 record_dir="recordings", report=None):
        self.read_pixels = read_pixels        # () -> uint8 RGB of the finished frame
        self.size, self.fps = size, float(fps)
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

    def run(self, frame) -> None:
        ev = frame.snap.events
        for e in ev.get("record.start", ()):
            self._start(e.value)
        if ev.get("record.stop"):
            if self.take is not None:
                self._close_take()
            else:
                self._say("record stop: not recording from OSC")
        if self.recording and frame.texture is not None:
            rgb = self.read_pixels()
            index = max(self._last_index + 1, int(round(frame.snap.time * self.fps)))
            if self.recorder is not None:
                self.recorder = self._write(self.recorder, rgb, index)
            if self.take is not None:
                if self._take_base is None:
                    self._take_base = index
                self.take = self._write(self.take, rgb, index - self._take_base)
            self._last_index = index
        frame.status["recording"] = 1.0 if self.recording else 0.0

    def _write(self, rec: Recorder, rgb, index: int) -> Recorder | None:
        try:
            rec.write(rgb, index)
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
            rec = Recorder(path, *self.size, self.fps)
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
                log.info("recording closed: %s (%d frames)", path, rec.frames_written)
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
        if self.take is not None:
            self._close_take(wait=True)
        for t in self._closing:
            t.join()
        if self.recorder is not None:
            rec, self.recorder = self.recorder, None
            rec.close()
            log.info("recording closed: %s (%d frames)", rec.path, rec.frames_written)
