"""The signal bus: input threads write named channels and events; the render thread
takes one immutable snapshot per frame.

Channels hold the latest value (a float or a small numpy vector) with the monotonic
time it was captured. Events (``audio.onset``, ``midi.note.36``) queue up between
snapshots and are handed out once, to the first snapshot taken after they arrive.

One input message (an audio block, an OSC or MIDI message) is written with one
:meth:`SignalBus.publish` call: all its channels and events under one lock, so a
snapshot holds all of it or none of it, never half of one block and half of the next.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import numpy as np

now = time.monotonic


@dataclass(frozen=True)
class Event:
    """One event: its name, value, capture time and the kind of input that sent it
    (``"audio"``, ``"osc"``, ``"midi"``, ...; ``""`` when the producer did not say)."""

    name: str
    value: Any
    t: float
    source: str = ""


@dataclass(frozen=True)
class Snapshot:
    """What one frame sees: channel values, the events since the previous frame, and
    the clock. Missing float channels read as 0.0 so a patch runs on silence."""

    values: Mapping[str, Any]
    times: Mapping[str, float]
    events: Mapping[str, tuple]
    time: float = 0.0
    dt: float = 0.0
    frame: int = 0
    bpm: float = 120.0
    beat: float = 0.0
    beats_per_bar: int = 4
    newest_input: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str):
        return self.values.get(name, 0.0)

    def get(self, name: str, default=0.0):
        return self.values.get(name, default)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def fired(self, name: str) -> bool:
        """True if the event ``name`` arrived since the previous frame."""
        return name in self.events

    def events_of(self, name: str) -> tuple:
        """The values of every ``name`` event since the previous frame, oldest first."""
        return tuple(e.value for e in self.events.get(name, ()))

    @property
    def beat_phase(self) -> float:
        return self.beat % 1.0

    @property
    def bar(self) -> float:
        return self.beat / self.beats_per_bar

    @property
    def bar_phase(self) -> float:
        return self.bar % 1.0

    def beats(self, n: float = 1.0) -> float:
        """Seconds that ``n`` beats last at the current tempo."""
        return 60.0 * n / self.bpm

    def bars(self, n: float = 1.0) -> float:
        """Seconds that ``n`` bars last at the current tempo."""
        return self.beats(n * self.beats_per_bar)


def _frozen(value):
    """A channel value as stored: lists and tuples become float32 arrays, arrays are
    copied and made read-only (a later write by the producer never reaches a snapshot)."""
    if isinstance(value, (list, tuple)):
        value = np.asarray(value, dtype=np.float32)
    if isinstance(value, np.ndarray):
        value = value.copy()
        value.setflags(write=False)
    return value


class SignalBus:
    """Thread-safe latest-value store plus an event queue.

    Every write goes through :meth:`publish`, which takes the lock once; ``set``,
    ``update`` and ``emit`` are its one-channel, channels-only and one-event forms."""

    def __init__(self):
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {}
        self._times: dict[str, float] = {}
        self._events: dict[str, list[Event]] = {}
        self._newest = None

    def publish(self, values: Mapping[str, Any] | None = None,
                events: Iterable[tuple[str, Any]] | Mapping[str, Any] = (),
                t: float | None = None, source: str = "") -> None:
        """Write one input message atomically: every channel in ``values`` and every
        ``(name, value)`` in ``events`` (pairs, or a mapping name -> value), all stamped
        with capture time ``t`` (now when None), the events tagged with ``source``.
        A snapshot sees all of it or none of it; events keep their order."""
        t = now() if t is None else t
        items = [(name, _frozen(value)) for name, value in values.items()] if values else ()
        if isinstance(events, Mapping):
            events = events.items()
        evs = [Event(name, value, t, source) for name, value in events]
        if not items and not evs:
            return
        with self._lock:
            for name, value in items:
                self._values[name] = value
                self._times[name] = t
            for ev in evs:
                queue = self._events.get(ev.name)
                if queue is None:
                    self._events[ev.name] = [ev]
                else:
                    queue.append(ev)
            if self._newest is None or t > self._newest:
                self._newest = t

    def set(self, name: str, value, t: float | None = None) -> None:
        """Set one channel."""
        self.publish({name: value}, t=t)

    def update(self, values: Mapping[str, Any], t: float | None = None) -> None:
        """Set several channels captured at the same instant, atomically."""
        self.publish(values, t=t)

    def emit(self, name: str, value: Any = 1.0, t: float | None = None, source: str = "") -> None:
        """Queue one event for the next snapshot."""
        self.publish(None, ((name, value),), t=t, source=source)

    def forget(self, name: str) -> None:
        """Drop a channel (a table that evicts its stalest input keeps the bus bounded too)."""
        with self._lock:
            self._values.pop(name, None)
            self._times.pop(name, None)

    def peek(self, name: str, default=None):
        with self._lock:
            return self._values.get(name, default)

    def snapshot(self, **clock) -> Snapshot:
        with self._lock:
            values = dict(self._values)
            times = dict(self._times)
            events = {k: tuple(v) for k, v in self._events.items()}
            self._events.clear()
            newest = self._newest
        return Snapshot(
            values=MappingProxyType(values),
            times=MappingProxyType(times),
            events=MappingProxyType(events),
            newest_input=newest,
            **clock,
        )
