"""The one way in: every command to the engine is validated here, once, and becomes bus events.

UDP OSC, OSC over the OSCQuery WebSocket, MIDI controls bound to an address, the window's
keys and a set's timeline all call ``Dispatcher.dispatch(address, args, t, source)``. The
address is looked up in the namespace table; the arguments must match one of its signatures
(type, count, finite, in range, short printable strings, one of the choices). Anything else
is counted by kind and dropped, with a message at most once a second per kind, and never
reaches a handler. What passes becomes the entry's channels and events, written to the bus in
one step and tagged with the source (the clock sync ranks tempo sources by it).
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter

from engine.control.namespace import F32_MAX, Entry, key_ok, lookup

log = logging.getLogger("vj.control")

PROBLEMS = ("unknown", "read_only", "bad_type", "not_finite", "out_of_range", "too_long", "no_such")


class Invalid(Exception):
    """An argument that does not fit; ``kind`` is one of PROBLEMS."""

    def __init__(self, kind: str, text: str):
        super().__init__(text)
        self.kind = kind


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _number(arg, v, status: dict, key: str, integer: bool):
    if isinstance(v, bool):
        v = int(v)
    if not isinstance(v, (int, float)):
        raise Invalid("bad_type", f"{_short(v)} is not a number")
    if isinstance(v, float) and not math.isfinite(v):
        raise Invalid("not_finite", f"{v} is not a finite number")
    if abs(v) > F32_MAX:
        raise Invalid("out_of_range", f"{_short(v)} is far out of range")
    if integer:
        if isinstance(v, float) and not v.is_integer():
            raise Invalid("bad_type", f"{v} is not a whole number")
        v = int(v)
    else:
        v = float(v)
    lo, hi = arg.range(status, key)
    if lo is not None and v < lo or hi is not None and v > hi:
        if not arg.clip:
            raise Invalid("out_of_range", f"{_short(v)} is outside {lo:g}..{hi:g}")
        v = min(hi, max(lo, v))
    return v


def _string(arg, v, status: dict):
    if not isinstance(v, str):
        raise Invalid("bad_type", f"{_short(v)} is not a string")
    if len(v) > arg.max_len:
        raise Invalid("too_long", f"a string of {len(v)} characters (at most {arg.max_len})")
    if not v.isprintable():
        raise Invalid("bad_type", f"{_short(v)} holds control characters")
    if arg.choices is not None:
        choices = arg.choices(status)
        if v not in choices:
            raise Invalid("no_such", f"{_short(v)} is not one of {', '.join(choices[:12]) or 'nothing yet'}")
    return v


def check(entry: Entry, args, status: dict, key: str = "") -> tuple:
    """The validated arguments for the first signature they fit; Invalid otherwise: the error
    of a signature with the same number of arguments, the one whose types fit best."""
    args = tuple(args)
    errors = []
    for sig in entry.signatures:
        if len(sig) != len(args):
            continue
        try:
            return tuple(_string(a, v, status) if a.type == "s" else _number(a, v, status, key, a.type == "i")
                         for a, v in zip(sig, args))
        except Invalid as e:
            errors.append(e)
    error = next((e for e in errors if e.kind != "bad_type"), errors[0] if errors else None)
    if error is None:
        counts = sorted({len(s) for s in entry.signatures})
        error = Invalid("bad_type", f"takes {' or '.join(map(str, counts))} argument(s), got {len(args)}")
    raise error


class Dispatcher:
    """Validates commands and writes them to the bus. ``status()`` is the frame's published
    status (scene count, parameters ...), read for the ranges that depend on the show."""

    def __init__(self, bus, status=dict, quiet_s: float = 1.0):
        self.bus = bus
        self.status = status
        self.quiet_s = quiet_s
        self.stats: Counter = Counter()
        self._lock = threading.Lock()
        self._said: dict[str, float] = {}
        self.last_problem: str | None = None

    def dispatch(self, address: str, args=(), t: float | None = None, source: str = "osc") -> bool:
        """True if the command was accepted (and is on the bus)."""
        entry, key = lookup(address)
        try:
            if entry is None:
                raise Invalid("unknown", "no such address")
            if not entry.writable:
                raise Invalid("read_only", "is read-only")
            status = self.status()
            if not key_ok(entry, key, status):
                raise Invalid("no_such", f"{key!r} does not exist")
            vals = check(entry, args, status, key)
            values, events = entry.does(key, vals)
        except Invalid as e:
            self._problem(e.kind, f"{source} {address[:80]}: {e}; dropped")
            return False
        self.bus.publish(values, events, t, source=source)
        with self._lock:
            self.stats["accepted"] += 1
        return True

    def control(self, address: str, u: float, prev: float | None, t: float | None = None,
                source: str = "midi") -> bool:
        """A bound control at ``u`` (0..1, previously ``prev``) -> a command: an address without
        arguments fires when the control goes past half way up; one with a number is set
        through its range (a whole number for ``i``)."""
        entry, _ = lookup(address)
        if entry is None or not entry.learn:
            self._problem("unknown", f"{source} binding to {address[:80]}: not a learnable address")
            return False
        sig = entry.first_signature()
        if not sig:
            return u >= 0.5 > (prev if prev is not None else 0.0) and self.dispatch(address, (), t, source)
        if u == prev:
            return False
        lo, hi = sig[0].range(self.status())
        v = lo + (hi - lo) * min(1.0, max(0.0, u))
        return self.dispatch(address, (round(v) if sig[0].type == "i" else v,), t, source)

    def _problem(self, kind: str, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.stats[kind] += 1
            self.last_problem = text
            if now - self._said.get(kind, -1e9) < self.quiet_s:
                return
            self._said[kind] = now
        log.warning("%s", text)

    def problems(self) -> int:
        return sum(self.stats[k] for k in PROBLEMS)

    def summary(self) -> str:
        bad = ", ".join(f"{self.stats[k]} {k.replace('_', ' ')}" for k in PROBLEMS if self.stats[k])
        return f"{self.stats['accepted']} commands" + (f" ({bad} dropped)" if bad else "")
