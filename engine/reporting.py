"""Reporting that input cannot grow without bound.

A patch whose error text changes every frame (it names the time, a counter, a value) would
otherwise print a line per frame and keep every distinct text for ever. :class:`Once` says
whether a message is new, remembering only the most recent ``size`` texts; :class:`Rate`
lets at most ``per_second`` lines through (with a burst), and says how many were held back
when it next lets one through.
"""
from __future__ import annotations

import time
from collections import OrderedDict


class Once:
    """A bounded memory of messages already reported (the least recently seen are forgotten)."""

    def __init__(self, size: int = 256):
        self.size = size
        self._seen: OrderedDict[str, None] = OrderedDict()

    def first(self, message: str) -> bool:
        """True the first time ``message`` is seen (or after it was forgotten or discarded)."""
        if message in self._seen:
            self._seen.move_to_end(message)
            return False
        self._seen[message] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True

    def discard(self, message: str) -> None:
        self._seen.pop(message, None)

    def clear(self) -> None:
        self._seen.clear()

    def __len__(self) -> int:
        return len(self._seen)


class Rate:
    """A token bucket: ``allow()`` is True for at most ``per_second`` calls a second after a
    burst of ``burst``; ``held`` counts the refused calls since the last allowed one."""

    def __init__(self, per_second: float = 2.0, burst: int = 10, clock=time.monotonic):
        self.per_second, self.burst, self._clock = float(per_second), int(burst), clock
        self._tokens = float(burst)
        self._at = clock()
        self.held = 0

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.held += 1
        return False

    def take_held(self) -> int:
        n, self.held = self.held, 0
        return n
