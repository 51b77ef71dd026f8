"""Time for the render thread: seconds, frames, and a musical clock.

The beat count is integrated frame by frame, so a tempo change bends the future and
never makes the past jump: tempo-locked loops stay continuous while the bpm moves.
``LiveClock`` reads the monotonic wall clock; ``VirtualClock`` steps exactly
1/fps per frame for offline renders.
"""
from __future__ import annotations

import threading
import time


class Clock:
    def __init__(self, bpm: float = 120.0, beats_per_bar: int = 4):
        self._lock = threading.Lock()
        self.bpm = float(bpm)
        self.beats_per_bar = beats_per_bar
        self.time = 0.0
        self.dt = 0.0
        self.frame = -1
        self.beat = 0.0
        self.running = True  # False while an external transport (MIDI clock) is stopped: the beat holds
        self._taps: list[float] = []
        self._follow: float | None = None     # a beat phase to pull towards on the next tick
        self.follow_rate = 0.2                 # fraction of the phase error corrected per frame

    def set_tempo(self, bpm: float) -> None:
        if not (20.0 <= bpm <= 400.0):
            raise ValueError(f"tempo {bpm} bpm is outside 20..400")
        with self._lock:
            self.bpm = float(bpm)

    def set_beat(self, beat: float) -> None:
        """Put the beat count here (MIDI clock start/song position, phase correction)."""
        with self._lock:
            self.beat = float(beat)

    def tap(self, t: float | None = None) -> float | None:
        """Register a tap; from the second tap on, the tempo follows the median interval
        of the recent taps. A pause over two seconds starts a new tap sequence. Each tap
        after the first also snaps the beat phase to the tap."""
        t = time.monotonic() if t is None else t
        with self._lock:
            if self._taps and t - self._taps[-1] < 60.0 / 400.0:
                return None  # faster than 400 bpm (a bounce, or one bundle of taps): not a tap
            if self._taps and t - self._taps[-1] > 2.0:
                self._taps.clear()
            self._taps.append(t)
            self._taps = self._taps[-8:]
            if len(self._taps) < 2:
                return None
            intervals = sorted(b - a for a, b in zip(self._taps, self._taps[1:]))
            median = intervals[len(intervals) // 2]
            bpm = min(400.0, max(20.0, 60.0 / median))
            self.bpm = bpm
            self.beat = round(self.beat)
            return bpm

    def follow(self, bpm: float, phase: float | None = None) -> None:
        """Follow an outside tempo (the audio's): the tempo is taken at once; the beat
        is pulled towards ``phase`` (0..1, the outside beat phase now) on the next tick,
        by ``follow_rate`` of the difference, never by more than half that frame's step,
        so the beat never jumps and never runs backwards."""
        bpm = min(400.0, max(20.0, float(bpm)))
        with self._lock:
            self.bpm = bpm
            self._follow = None if phase is None else float(phase) % 1.0

    def input_now(self) -> float:
        """Now, in the time base that inputs stamp their values with."""
        return time.monotonic()

    def advance(self, t: float) -> None:
        with self._lock:
            self.dt = max(0.0, t - self.time) if self.frame >= 0 else 0.0
            self.time = t
            self.frame += 1
            step = self.dt * self.bpm / 60.0 if self.running else 0.0
            if self._follow is not None and step > 0:
                target = self._follow + step          # where the outside beat is by now
                err = (target - (self.beat + step) + 0.5) % 1.0 - 0.5
                step += max(-0.5 * step, min(0.5 * step, self.follow_rate * err))
            self._follow = None
            self.beat += step

    def fields(self) -> dict:
        """The clock part of a frame's snapshot."""
        with self._lock:
            return dict(time=self.time, dt=self.dt, frame=self.frame, bpm=self.bpm,
                        beat=self.beat, beats_per_bar=self.beats_per_bar)


class LiveClock(Clock):
    def __init__(self, bpm: float = 120.0, beats_per_bar: int = 4):
        super().__init__(bpm, beats_per_bar)
        self.start = time.monotonic()

    def restart(self) -> None:
        """Time 0 is now: called when frames start, after models and patches have loaded."""
        self.start = time.monotonic()
        self.time, self.frame = 0.0, -1

    def tick(self) -> None:
        self.advance(time.monotonic() - self.start)


class VirtualClock(Clock):
    def __init__(self, fps: float, bpm: float = 120.0, beats_per_bar: int = 4):
        super().__init__(bpm, beats_per_bar)
        self.fps = float(fps)

    def tick(self) -> None:
        self.advance((self.frame + 1) / self.fps)

    def input_now(self) -> float:
        return self.time            # vj render stamps frame k's features with k / fps


def follow_audio(clock: Clock, snap, min_confidence: float = 0.1) -> bool:
    """``--follow-audio-tempo``: after each snapshot, make the clock follow ``audio.bpm``
    and ``audio.beat_phase`` (moved on by their age) while the tracker is confident.
    Never blocks: it only reads the snapshot. Returns whether it followed."""
    bpm = float(snap.get("audio.bpm", 0.0))
    if bpm <= 0.0 or snap.get("audio.beat_confidence", 0.0) < min_confidence:
        return False
    t = snap.times.get("audio.beat_phase")
    age = max(0.0, clock.input_now() - t) if t is not None else 0.0
    clock.follow(bpm, snap.get("audio.beat_phase", 0.0) + age * bpm / 60.0)
    return True
