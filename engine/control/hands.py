"""The hands stage of a frame (``vj run --hands``): the hand tracker's settings from the
control plane, its dropout clock, and its status for OSC out and OSCQuery.

``/vj/hands/filter/min_cutoff`` and ``/vj/hands/filter/beta`` (the One Euro filter's two
parameters, ``namespace.py``) arrive as ``hands.filter.*`` events and are applied here, on
the render thread, between frames. Each frame also ticks the tracker, so a hand that left
the sensor is held, then eased to rest, even when no hand frames come at all.
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger("vj")


class HandTee:
    """One sink for every hand source: the tracker, and the ``--record-hands`` file (frames the
    tracker accepted). Callable (the Leap client) and with ``push`` (replay, OSC)."""

    def __init__(self, tracker, recorder=None):
        self.tracker, self.recorder = tracker, recorder

    def push(self, frame, source: str = "hands") -> bool:
        ok = self.tracker.push(frame, source=source)
        if ok and self.recorder is not None:
            self.recorder.write(frame)
        return ok

    def __call__(self, frame) -> bool:
        return self.push(frame, source="leap")


class HandsStage:
    name = "hands"

    def __init__(self, tracker, sources=()):
        self.tracker = tracker
        self.sources = list(sources)
        self._unstarted = [s for s in self.sources if not getattr(s, "running", True)]

    def run(self, frame) -> None:
        for src in self._unstarted:  # replays: their time 0 is the show's first frame
            src.start()
        self._unstarted = []
        for e in frame.snap.events.get("hands.filter.min_cutoff", ()):
            self.tracker.min_cutoff = e.value
            log.info("hands: One Euro min_cutoff %g", e.value)
        for e in frame.snap.events.get("hands.filter.beta", ()):
            self.tracker.beta = e.value
            log.info("hands: One Euro beta %g", e.value)
        self.tracker.tick(time.monotonic())
        frame.status["hands_min_cutoff"] = self.tracker.min_cutoff
        frame.status["hands_beta"] = self.tracker.beta

    def summary(self) -> str:
        parts = [self.tracker.stats.summary()]
        parts += [s.summary() for s in self.sources if hasattr(s, "summary")]
        return ", ".join(parts)
