"""Show recordings: every frame's signal snapshot written to a file, and replayed frame-exact.

A live show can be rendered again offline (a better model, a bigger size, another frame rate)
from what its frames saw: the file holds each frame's clock, channels and events, so a replay
rebuilds equal :class:`~engine.signals.bus.Snapshot` objects and the patches do the same thing.

File format (``*.vjsig.gz``): gzip'd JSON lines, like the hand recordings (one reader,
:mod:`engine.signals.jsonl`, guards both). The first line is the header::

    {"format": "vj-signals", "version": 1, "created": "<UTC ISO time>", ...caller's fields}

(fps, size, model, patch or set path, bpm: whatever the session gives; the three fixed keys
win over the caller's). Then one compact JSON object per recorded frame::

    {"f": frame, "t": time, "dt": dt, "bpm": bpm, "b": beat, "bpb": beats_per_bar,
     "ni": newest_input, "n": now,                      capture-time encoded, see below
     "v": {name: [value, time], ...},                   channels new or changed since the last record
     "x": [name, ...],                                  channels gone since the last record
     "e": {name: [[value, time, source], ...], ...},    every event of the frame, in order
     "notes": [[kind, data], ...],                      what the engine wants replayed (patch source, cues)
     "k": 1,                                            a keyframe: "v" is the whole state
     "lost": n}                                         records the writer dropped just before this one

and, when the recorder was closed (not killed), a last line ``{"end": 1, "lost": n, "frames": n}``
(the drops no later record could announce).

Why each choice:

- **JSON lines, gzip'd**: readable with standard tools, nothing executable (no pickle, no eval),
  and a file cut by a crash is readable up to its last whole line. The writer flushes the gzip
  stream (Z_SYNC_FLUSH) about once a second: a crash loses at most ~1 s.
- **Channels delta-encoded**: most channels keep their value for many frames (a fader at rest);
  a channel is written only when its value object or its capture time changes. The bus hands out
  the same value object until a producer publishes again, so an identity test finds the changes
  without comparing arrays. Every ``KEYFRAME_EVERY`` records, and after any record the writer
  had to drop, a keyframe restates the whole state: a lost or damaged record spoils the frames up
  to the next keyframe (counted as ``inexact_frames``), never the rest of the show.
- **Values keep their type**: JSON numbers for Python floats (``repr`` round-trips exactly; NaN
  and infinities use Python's JSON extension), ints, bools, strings, null; tagged objects for the
  rest: ``{"nd": dtype, "s": shape, "d": base64}`` for numpy arrays (the bytes: exact, any shape,
  replayed read-only as the bus hands them out), ``{"np": dtype, "d": base64}`` for numpy scalars,
  ``{"tu": [...]}`` for tuples (an event value like ``("name", 0.5, "norm")`` stays a tuple),
  ``{"map": [[key, value], ...]}`` for dicts; lists are JSON lists. Dtypes are whitelisted (plain
  numbers and bools: never object arrays).
- **Capture times without the machine's uptime**: inputs stamp ``time.monotonic()``. The recorder
  takes a base ``A`` = the first record's newest input time rounded down to whole seconds and
  stores ``t - A``. Because ``A`` is an integer, ``t - A`` is an exact float for every ``t >= A/2``
  (every input of the session in practice), so differences and equality between times replay
  exactly; ``A`` itself is not stored (only the sub-second phase of the uptime is in the file). A
  time for which ``t - A`` would round (stamped hours before the base, or in another time base) is
  stored as the pair ``[s, e]`` with ``s + e == t - A`` exactly. A replay adds its own
  ``time_base`` (default 0.0): with ``time_base=A`` (``SignalRecorder.time_base``) every time is
  bit-identical to the original; with 0.0 times are seconds since about the first record, with
  exact differences (pairs round to the nearest float).
- **Clock fields as they were** (``time``, ``dt``, ``frame``, ``bpm``, ``beat``): clock-relative,
  already free of uptime. ``now`` (when the frame was recorded, capture-time encoded) lets a replay
  answer ``clock.input_now()`` for stages that age an input (tempo following).
- **Notes** (``(kind, data)``, data JSON, ≤ ``MAX_NOTE`` bytes each): what the engine did that is
  not a signal (a patch's source text when it changes, a cue, learned mappings); handed out with
  the replayed frame that consumes the recorded one, in ``Snapshot.extra["notes"]``.

Writing never stalls the render thread: :meth:`SignalRecorder.record` encodes (cheap) and puts
the line on a bounded queue (``QUEUE_SECONDS`` of frames); a writer thread compresses and writes.
A full queue or a failing disk drops the record and counts it (``dropped``): exact replay is then
lost for that frame's events and until the next keyframe, and ``stats`` says so.

Reading (:func:`read_signal_file`, :func:`iter_signal_file`) is bounded and hostile-file safe: not
gzip, a bad header, another format or version, more than ``max_bytes`` decompressed (a gzip bomb)
or more than ``max_frames`` frames raise :class:`SignalFileError` naming the file; over-long lines,
bad JSON and bad records (wrong types, names outside ``[A-Za-z0-9_.:/\\[\\]-]{1,200}``,
non-finite clock fields, removals of channels that do not exist, frame numbers or times going
backwards) are skipped and counted (``bad_lines``, ``bad.<reason>``).

Replaying (:class:`SignalReplay`, :class:`ReplayClock`, :class:`ReplayBus`): at the recorded
frame rate, output frame k is recorded frame k, exactly. At another rate F, output frame j at
``t_j = t_first + j / F`` sees the values of the newest recorded frame at or before ``t_j``, the
events of every recorded frame in ``(t_{j-1}, t_j]`` (each event exactly once, in order),
``time = t_j``, ``dt = 1/F``, ``frame = j``, the beat interpolated between the neighbouring
recorded frames' beats and the bpm and beats per bar of the newest one.
"""
from __future__ import annotations

import base64
import binascii
import bisect
import dataclasses
import gzip
import json
import math
import queue
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import numpy as np

from engine.paths import unused_path
from engine.signals.bus import Event, Snapshot
from engine.signals.clock import Clock
from engine.signals.jsonl import GzipLines, check_header, utc_stamp

FORMAT = "vj-signals"
VERSION = 1
SUFFIX = ".vjsig.gz"
MAX_LINE = 4 * 1024 * 1024          # one frame's record; a longer one is skipped by the reader
MAX_NOTE = 1024 * 1024              # one note's data, encoded
MAX_BYTES = 2 * 1024 ** 3           # decompressed; about what read_signal_file holds in memory at most
MAX_FRAMES = 500_000                # over two hours at 60 fps; read_signal_file keeps them all
MAX_BAD = 10_000                    # bad lines before a file is refused as hostile
KEYFRAME_EVERY = 600                # records between full restatements of the channels
QUEUE_SECONDS = 10.0                # frames the writer may fall behind before records are dropped
QUEUE_BYTES = 256 * 1024 * 1024     # and bytes, so a run of huge records cannot exhaust memory
FLUSH_EVERY = 1.0                   # seconds: what a crash may lose
_DEPTH = 4                          # nesting of tuples/lists/dicts inside one value

_NAME = re.compile(r"[A-Za-z0-9_.:/\[\]-]{1,200}\Z")
_DTYPES = frozenset(np.dtype(t).newbyteorder(o).str
                    for t in ("i2", "i4", "i8", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16")
                    for o in "<>") | frozenset(np.dtype(t).str for t in ("b1", "i1", "u1"))
_SEP = (",", ":")


class SignalFileError(ValueError):
    """A signal file that cannot be read (not gzip, bad header, over the limits)."""


class _Unencodable(Exception):
    pass


class _Bad(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# -- values -----------------------------------------------------------------------------------

def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _enc_value(v, depth: int = 0):
    if v is None or type(v) in (bool, str, int, float):
        return v
    if isinstance(v, np.ndarray):
        if v.dtype.str not in _DTYPES:
            raise _Unencodable(f"dtype {v.dtype}")
        return {"nd": v.dtype.str, "s": list(v.shape), "d": _b64(v.tobytes())}
    if isinstance(v, np.generic):
        if v.dtype.str not in _DTYPES:
            raise _Unencodable(f"dtype {v.dtype}")
        return {"np": v.dtype.str, "d": _b64(v.tobytes())}
    if depth < _DEPTH:
        if isinstance(v, tuple):
            return {"tu": [_enc_value(x, depth + 1) for x in v]}
        if isinstance(v, list):
            return [_enc_value(x, depth + 1) for x in v]
        if isinstance(v, dict) and all(type(k) is str for k in v):
            return {"map": [[k, _enc_value(x, depth + 1)] for k, x in v.items()]}
    for t in (bool, int, float, str):       # subclasses (IntEnum ...): their plain value
        if isinstance(v, t):
            return t(v)
    raise _Unencodable(type(v).__name__)


def _b64_data(x) -> bytes:
    if not isinstance(x, str):
        raise _Bad("value")
    try:
        return base64.b64decode(x, validate=True)
    except (binascii.Error, ValueError):
        raise _Bad("value") from None


def _dec_value(x, depth: int = 0):
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    # containers as deep as the writer nests them (arrays and scalars may sit one level deeper)
    container = isinstance(x, list) or (isinstance(x, dict) and ("tu" in x or "map" in x))
    if container and depth >= _DEPTH:
        raise _Bad("value")
    if isinstance(x, list):
        return [_dec_value(i, depth + 1) for i in x]
    if not isinstance(x, dict) or len(x) > 3:
        raise _Bad("value")
    if "nd" in x:
        dtype, shape = x.get("nd"), x.get("s")
        if dtype not in _DTYPES or not isinstance(shape, list) or len(shape) > 8 or len(x) != 3:
            raise _Bad("array")
        if not all(type(n) is int and 0 <= n <= MAX_LINE for n in shape):
            raise _Bad("array")
        raw = _b64_data(x.get("d"))
        dt = np.dtype(dtype)
        if math.prod(shape) * dt.itemsize != len(raw):
            raise _Bad("array")
        return np.frombuffer(raw, dtype=dt).reshape(shape)    # read-only, as the bus hands them out
    if "np" in x:
        dtype = x.get("np")
        if dtype not in _DTYPES or len(x) != 2:
            raise _Bad("array")
        raw = _b64_data(x.get("d"))
        if len(raw) != np.dtype(dtype).itemsize:
            raise _Bad("array")
        return np.frombuffer(raw, dtype=np.dtype(dtype))[0]
    if "tu" in x and len(x) == 1 and isinstance(x["tu"], list):
        return tuple(_dec_value(i, depth + 1) for i in x["tu"])
    if "map" in x and len(x) == 1 and isinstance(x["map"], list):
        out = {}
        for pair in x["map"]:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                raise _Bad("value")
            out[pair[0]] = _dec_value(pair[1], depth + 1)
        return out
    raise _Bad("value")


# -- capture times ----------------------------------------------------------------------------

def _enc_time(t, base: float):
    """``t - base`` as one float when that is exact, else the exact pair ``[s, e]``."""
    if type(t) is not float:
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            raise _Unencodable("time")
        t = float(t)
    if not math.isfinite(t):
        return t
    s = t - base
    # TwoSum: e is what rounding took off s, exactly
    bb = s - t
    e = (t - (s - bb)) + (-base - bb)
    return s if e == 0.0 else [s, e]


def _dec_time(x):
    """A stored time offset, checked: a float, or a finite pair kept as a tuple."""
    if isinstance(x, bool):
        raise _Bad("time")
    if isinstance(x, (int, float)):
        return float(x)
    if (isinstance(x, list) and len(x) == 2 and all(type(i) is float and math.isfinite(i) for i in x)):
        return (x[0], x[1])
    raise _Bad("time")


def _at(base: float, off) -> float:
    if type(off) is tuple:
        return math.fsum((base, off[0], off[1]))
    return base + off if base else off


def _time_base(snapshot, now: float) -> float:
    c = snapshot.newest_input if snapshot.newest_input is not None else now
    try:
        c = float(c)
    except (TypeError, ValueError):
        return 0.0
    # an integer base keeps t - base exact (every float below 2**52 is a multiple of 1's ulp share)
    return float(math.floor(c)) if math.isfinite(c) and 0.0 <= c < 2.0 ** 52 else 0.0


# -- writing ----------------------------------------------------------------------------------

def _new_file(path):
    """``path`` opened exclusively, or the first free ``NAME-2.vjsig.gz`` ... beside it: a recording
    never overwrites anything, even one another process creates meanwhile. (``unused_path`` numbers
    before the last suffix only, which would give ``show.vjsig-2.gz``.)"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem, suffix = (path.name[:-len(SUFFIX)], SUFFIX) if path.name.endswith(SUFFIX) else (path.stem, path.suffix)
    candidate, n = unused_path(path) if not path.name.endswith(SUFFIX) else path, 1
    while True:
        try:
            return candidate, open(candidate, "xb")
        except FileExistsError:
            n += 1
            candidate = path.with_name(f"{stem}-{n}{suffix}")


class SignalRecorder:
    """Writes one record per frame to a new ``*.vjsig.gz`` file (never over an existing one:
    ``self.path`` is where it went). ``record(snapshot, notes)`` from the render thread never
    blocks; ``close()`` (or a ``with`` block) drains the queue and ends the file.

    ``stats`` counts ``frames`` (queued), ``written``, ``dropped`` (queue full, oversize record or
    disk error: that frame's events and exactness until the next keyframe are lost),
    ``keyframes``, ``unencodable`` (a channel or event value of a type the format does not hold:
    left out), ``bad_names``, ``notes_dropped``. ``error`` is the writer's error, if any."""

    def __init__(self, path, header: Mapping[str, Any] | None = None):
        head = dict(header or {})
        head.update({"format": FORMAT, "version": VERSION, "created": utc_stamp()})
        try:
            first = json.dumps(head, separators=_SEP, allow_nan=False).encode() + b"\n"
        except (TypeError, ValueError) as e:
            raise ValueError(f"signal file header is not JSON-safe: {e}") from None
        self.path, self._raw = _new_file(path)
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6, mtime=0)
        self._gz.write(first)
        self._gz.flush()
        self._raw.flush()
        fps = head.get("fps")
        fps = float(fps) if isinstance(fps, (int, float)) and not isinstance(fps, bool) and 0 < fps < 1000 else 60.0
        self._q: queue.Queue = queue.Queue(maxsize=max(64, int(fps * QUEUE_SECONDS)))
        self._queued_bytes = 0
        self._lock = threading.Lock()
        self.stats: Counter = Counter()
        self.error: str | None = None
        self.time_base: float | None = None     # A: replay with time_base=A for bit-identical times
        self._prev: dict[str, tuple[Any, Any]] = {}
        self._since_key = KEYFRAME_EVERY        # the first record is a keyframe
        self._lost = 0                          # drops since the last record that went out
        self._closed = False
        self._thread = threading.Thread(target=self._write_loop, name="signal-writer", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        return self.stats["dropped"]

    def _names_ok(self, name) -> bool:
        if type(name) is str and _NAME.match(name):
            return True
        self.stats["bad_names"] += 1
        return False

    def _encode(self, snap: Snapshot, notes: Iterable, now: float) -> tuple[dict, dict]:
        base = self.time_base
        rec: dict[str, Any] = {"f": snap.frame, "t": snap.time, "dt": snap.dt, "bpm": snap.bpm,
                               "b": snap.beat, "bpb": snap.beats_per_bar,
                               "ni": None if snap.newest_input is None else _enc_time(snap.newest_input, base),
                               "n": _enc_time(now, base)}
        key = self._since_key >= KEYFRAME_EVERY
        prev, cur, changed = self._prev, {}, {}
        times = snap.times
        for name, value in snap.values.items():
            if not self._names_ok(name):
                continue
            t = times.get(name)
            old = prev.get(name)
            if not key and old is not None and old[0] is value and old[1] == t:
                cur[name] = old
                continue
            try:
                changed[name] = [_enc_value(value), None if t is None else _enc_time(t, base)]
            except _Unencodable:
                self.stats["unencodable"] += 1
                continue
            cur[name] = (value, t)
        if changed:
            rec["v"] = changed
        gone = [name for name in prev if name not in cur]
        if gone and not key:
            rec["x"] = gone
        events = {}
        for name, evs in snap.events.items():
            if not self._names_ok(name):
                continue
            out = []
            for ev in evs:
                try:
                    src = ev.source if type(ev.source) is str and len(ev.source) <= 200 else ""
                    out.append([_enc_value(ev.value), _enc_time(ev.t, base), src])
                except _Unencodable:
                    self.stats["unencodable"] += 1
            if out:
                events[name] = out
        if events:
            rec["e"] = events
        kept = []
        for note in notes or ():
            try:
                kind, data = note
                size = len(json.dumps(data, separators=_SEP, allow_nan=False))
            except (TypeError, ValueError, RecursionError):
                self.stats["notes_dropped"] += 1
                continue
            if type(kind) is not str or not _NAME.match(kind) or size > MAX_NOTE:
                self.stats["notes_dropped"] += 1
                continue
            kept.append([kind, data])
        if kept:
            rec["notes"] = kept
        if key:
            rec["k"] = 1
        if self._lost:
            rec["lost"] = self._lost        # so the reader can say the file is not exact
        return rec, cur

    def record(self, snapshot: Snapshot, notes: Iterable[tuple[str, Any]] = (), now: float | None = None) -> bool:
        """Queue one frame's record: its snapshot exactly as the frame saw it, plus ``notes``
        (``(kind, data)`` pairs to replay with it). ``now``: when the frame was taken, in the
        inputs' time base (``clock.input_now()``); the monotonic clock when None. Never blocks;
        returns False when the record was dropped (counted)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._closed:
                self.stats["closed"] += 1
                return False
            if self.time_base is None:
                self.time_base = _time_base(snapshot, now)
            try:
                rec, cur = self._encode(snapshot, notes, now)
                line = json.dumps(rec, separators=_SEP).encode() + b"\n"
            except (_Unencodable, TypeError, ValueError, RecursionError):
                line = None        # a clock field the format cannot hold: this record is lost
            if line is None or len(line) > MAX_LINE or self.error is not None \
                    or self._queued_bytes + len(line) > QUEUE_BYTES:
                return self._drop()
            try:
                self._q.put_nowait(line)
            except queue.Full:
                return self._drop()
            self._queued_bytes += len(line)
            self._prev = cur
            self._lost = 0
            self._since_key = 0 if "k" in rec else self._since_key + 1
            self.stats["frames"] += 1
            self.stats["keyframes"] += "k" in rec
            return True

    def _drop(self) -> bool:
        # the reader's state now misses this record's changes: restate everything next time
        self.stats["dropped"] += 1
        self._lost += 1
        self._since_key = KEYFRAME_EVERY
        return False

    def _write_loop(self) -> None:
        last_flush = time.monotonic()
        dirty = False
        while True:
            try:
                line = self._q.get(timeout=0.25)
            except queue.Empty:
                line = b""
            if line is None:
                break
            if line:
                with self._lock:
                    self._queued_bytes -= len(line)
                try:
                    if self.error is not None:
                        raise OSError(self.error)
                    self._gz.write(line)
                    self.stats["written"] += line.startswith(b'{"f"')      # records, not the end line
                    dirty = True
                except (OSError, ValueError) as e:
                    # a failing disk: what is queued is lost, counted; record() drops from now on
                    self.error = self.error or f"{type(e).__name__}: {e}"
                    with self._lock:
                        self.stats["dropped"] += 1
            if dirty and time.monotonic() - last_flush >= FLUSH_EVERY and self.error is None:
                try:
                    self._gz.flush()         # Z_SYNC_FLUSH: everything so far is readable after a crash
                    self._raw.flush()
                except (OSError, ValueError) as e:
                    self.error = f"{type(e).__name__}: {e}"
                last_flush, dirty = time.monotonic(), False
        try:
            self._gz.close()
        except (OSError, ValueError) as e:
            self.error = self.error or f"{type(e).__name__}: {e}"
        finally:
            self._raw.close()

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued and end the file (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            end = {"end": 1, "lost": self._lost, "frames": self.stats["frames"]}
        try:
            self._q.put(json.dumps(end, separators=_SEP).encode() + b"\n", timeout=timeout)
            # after the queued records; may wait for the writer, never at frame time
            self._q.put(None, timeout=timeout)
        except queue.Full:
            return              # a hung disk: the daemon writer thread is left to it
        self._thread.join(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- reading ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class FrameRecord:
    """One recorded frame, decoded and checked. Times (``newest_input``, ``now``, those in
    ``changed`` and ``events``) are offsets from the recording's base: a float, or an exact
    ``(s, e)`` pair. ``removed`` names every channel gone since the previous record (for a
    keyframe: every channel it does not restate). ``exact`` is False while a skipped record
    before it (up to the next keyframe) may have left its channels wrong."""

    frame: int
    time: float
    dt: float
    bpm: float
    beat: float
    beats_per_bar: int
    newest_input: Any
    now: Any
    changed: Mapping[str, tuple]          # name -> (value, time offset or None)
    removed: tuple
    events: Mapping[str, tuple]           # name -> ((value, time offset, source), ...)
    notes: tuple                          # ((kind, data), ...)
    key: bool
    exact: bool = True
    lost: int = 0                         # records the writer dropped just before this one


def _finite(x, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise _Bad(what)
    return x


def _name(x, what: str = "name") -> str:
    if type(x) is not str or not _NAME.match(x):
        raise _Bad(what)
    return x


def _decode_record(rec, names: set, lenient: bool) -> FrameRecord:
    if not isinstance(rec, dict):
        raise _Bad("record")
    frame = rec.get("f")
    if type(frame) is not int or frame < -1:
        raise _Bad("frame")
    t, dt, beat = (_finite(rec.get(k), "clock") for k in ("t", "dt", "b"))
    bpm = _finite(rec.get("bpm"), "clock")
    bpb = rec.get("bpb")
    if bpm <= 0 or dt < 0 or type(bpb) is not int or not 1 <= bpb <= 1000:
        raise _Bad("clock")
    ni = rec.get("ni")
    ni = None if ni is None else _dec_time(ni)
    now = _dec_time(rec.get("n"))
    key = rec.get("k", 0) == 1
    changed = {}
    v = rec.get("v", {})
    if not isinstance(v, dict):
        raise _Bad("values")
    for name, pair in v.items():
        _name(name)
        if not (isinstance(pair, list) and len(pair) == 2):
            raise _Bad("values")
        changed[name] = (_dec_value(pair[0]), None if pair[1] is None else _dec_time(pair[1]))
    x = rec.get("x", [])
    if not isinstance(x, list) or (key and x):
        raise _Bad("removed")
    removed = []
    for name in x:
        _name(name)
        if name not in names or name in changed:
            if not lenient:
                raise _Bad("unknown_channel")     # a delta referencing nothing
            continue
        removed.append(name)
    if key:
        removed = [name for name in names if name not in changed]
    events = {}
    e = rec.get("e", {})
    if not isinstance(e, dict):
        raise _Bad("events")
    for name, evs in e.items():
        _name(name)
        if not isinstance(evs, list) or not evs:
            raise _Bad("events")
        out = []
        for ev in evs:
            if not (isinstance(ev, list) and len(ev) == 3 and type(ev[2]) is str and len(ev[2]) <= 200):
                raise _Bad("events")
            out.append((_dec_value(ev[0]), _dec_time(ev[1]), ev[2]))
        events[name] = tuple(out)
    notes = rec.get("notes", [])
    if not isinstance(notes, list):
        raise _Bad("notes")
    for n in notes:
        if not (isinstance(n, list) and len(n) == 2):
            raise _Bad("notes")
        _name(n[0], "notes")
    lost = rec.get("lost", 0)
    if type(lost) is not int or not 0 <= lost <= 2 ** 31:
        raise _Bad("record")
    return FrameRecord(frame, t, dt, bpm, beat, bpb, ni, now, MappingProxyType(changed), tuple(removed),
                       MappingProxyType(events), tuple((k, d) for k, d in notes), key, lost=lost)


def iter_signal_file(path, max_frames: int = MAX_FRAMES, max_bytes: int = MAX_BYTES,
                     stats: Counter | None = None, header_out: dict | None = None):
    """Stream the records of a signal file (:class:`FrameRecord`). Counts go into ``stats``
    (frames, lines, bad_lines, bad.<reason>, long_lines, truncated, corrupt, inexact_frames,
    recorder_dropped, frame_gaps);
    the header into ``header_out``. Raises :class:`SignalFileError` (naming the file) for a bad
    header or a file over the limits."""
    stats = Counter() if stats is None else stats
    name = Path(path).name
    try:
        lines = iter(GzipLines(path, max_bytes, stats, MAX_LINE, SignalFileError, "signal"))
        head = check_header(next(lines, None), FORMAT, VERSION, SignalFileError)
        if header_out is not None:
            header_out.update(head)
        names: set[str] = set()
        last_f, last_t = None, -math.inf
        dirty = False
        n = 0
        for line in lines:
            stats["lines"] += 1
            if stats["bad_lines"] >= MAX_BAD:
                raise SignalFileError(f"over {MAX_BAD} bad lines")
            try:
                if line is None:
                    raise _Bad("long_line")
                try:
                    rec = json.loads(line)
                except (ValueError, UnicodeDecodeError, RecursionError):
                    raise _Bad("json") from None
                if isinstance(rec, dict) and "end" in rec:
                    lost = rec.get("lost")
                    if type(lost) is not int or not 0 <= lost <= 2 ** 31:
                        raise _Bad("record")
                    stats["recorder_dropped"] += lost
                    stats["ended"] += 1
                    continue
                fr = _decode_record(rec, names, lenient=dirty)
                if last_f is not None and (fr.frame <= last_f or fr.time < last_t):
                    raise _Bad("out_of_order")
            except _Bad as e:
                stats["bad_lines"] += 1
                stats[f"bad.{e.reason}"] += 1
                dirty = True       # its channel changes are lost until the next keyframe
                continue
            except RecursionError:
                stats["bad_lines"] += 1
                stats["bad.value"] += 1
                dirty = True
                continue
            stats["recorder_dropped"] += fr.lost
            if last_f is not None and fr.frame != last_f + 1:
                stats["frame_gaps"] += 1       # frames the recording did not see (or dropped)
            if fr.key:
                dirty = False
            elif dirty:
                fr = dataclasses.replace(fr, exact=False)
                stats["inexact_frames"] += 1
            names.difference_update(fr.removed)
            names.update(fr.changed)
            last_f, last_t = fr.frame, fr.time
            n += 1
            if n > max_frames:
                raise SignalFileError(f"over {max_frames} frames")
            stats["frames"] += 1
            yield fr
    except SignalFileError as e:
        raise SignalFileError(f"{name}: {e}") from None


class SignalFile:
    """What :func:`read_signal_file` returns: ``header`` (dict), ``frames`` (list of
    :class:`FrameRecord`), ``stats`` (Counter, see :func:`iter_signal_file`)."""

    def __init__(self, header: dict, frames: list, stats: Counter):
        self.header, self.frames, self.stats = header, frames, stats

    @property
    def fps(self) -> float | None:
        fps = self.header.get("fps")
        return float(fps) if isinstance(fps, (int, float)) and not isinstance(fps, bool) and fps > 0 else None

    @property
    def duration(self) -> float:
        return self.frames[-1].time - self.frames[0].time if self.frames else 0.0

    @property
    def exact(self) -> bool:
        """True when every record written was read back and the writer dropped none."""
        return not (self.stats["bad_lines"] or self.stats["corrupt"] or self.stats["recorder_dropped"])

    def __len__(self) -> int:
        return len(self.frames)


def read_signal_file(path, max_bytes: int = MAX_BYTES, max_frames: int = MAX_FRAMES) -> SignalFile:
    """Read a whole signal file (bounded: see the module docstring). Only the decoded deltas are
    kept in memory, not a snapshot per frame."""
    stats, header = Counter(), {}
    frames = list(iter_signal_file(path, max_frames=max_frames, max_bytes=max_bytes, stats=stats,
                                   header_out=header))
    return SignalFile(header, frames, stats)


# -- replaying --------------------------------------------------------------------------------

class SignalReplay:
    """Rebuilds the recorded frames' snapshots. ``snapshot(k)`` is recorded frame k (exact);
    ``output_snapshot(j, fps)`` is output frame j of a render at ``fps`` (see the module
    docstring: exact at the recorded fps, resampled otherwise). Capture times are
    ``time_base`` + the recorded offset (``SignalRecorder.time_base`` gives the originals).
    Walking forward is incremental; a step back restarts from the nearest keyframe."""

    def __init__(self, signal_file: SignalFile, time_base: float = 0.0):
        if not signal_file.frames:
            raise SignalFileError("the signal file has no frames to replay")
        self.file = signal_file
        self.frames = signal_file.frames
        self.time_base = float(time_base)
        self._t = [fr.time for fr in self.frames]
        self._keys = [k for k, fr in enumerate(self.frames) if fr.key]
        self._values: dict[str, Any] = {}
        self._times: dict[str, float] = {}
        self._pos = -1

    def __len__(self) -> int:
        return len(self.frames)

    # state
    def _seek(self, k: int) -> None:
        if not 0 <= k < len(self.frames):
            raise IndexError(f"recorded frame {k} of {len(self.frames)}")
        if k < self._pos:
            i = bisect.bisect_right(self._keys, k) - 1
            start = self._keys[i] if i >= 0 else 0
            self._values, self._times, self._pos = {}, {}, start - 1
        base = self.time_base
        for fr in self.frames[self._pos + 1:k + 1]:
            if fr.key:
                # a keyframe restates everything: the state (its order too) is the same
                # whichever way the replay reached it
                self._values, self._times = {}, {}
            for name in fr.removed:
                self._values.pop(name, None)
                self._times.pop(name, None)
            for name, (value, t) in fr.changed.items():
                # a channel that was never stamped keeps no time, as on the bus
                self._values[name] = value
                if t is None:
                    self._times.pop(name, None)
                else:
                    self._times[name] = _at(base, t)
        self._pos = k

    def _events(self, records) -> Mapping[str, tuple]:
        base = self.time_base
        out: dict[str, list] = {}
        for fr in records:
            for name, evs in fr.events.items():
                out.setdefault(name, []).extend(Event(name, v, _at(base, t), src) for v, t, src in evs)
        return MappingProxyType({name: tuple(evs) for name, evs in out.items()})

    def _snap(self, k: int, events, notes, clock: dict) -> Snapshot:
        self._seek(k)
        fr = self.frames[k]
        ni = None if fr.newest_input is None else _at(self.time_base, fr.newest_input)
        extra = {"extra": MappingProxyType({"notes": notes})} if notes else {}
        fields = dict(time=fr.time, dt=fr.dt, frame=fr.frame, bpm=fr.bpm, beat=fr.beat,
                      beats_per_bar=fr.beats_per_bar)
        fields.update(clock)
        return Snapshot(values=MappingProxyType(dict(self._values)), times=MappingProxyType(dict(self._times)),
                        events=events, newest_input=ni, **fields, **extra)

    def snapshot(self, k: int) -> Snapshot:
        """Recorded frame k's snapshot, equal to the original (times with this ``time_base``);
        its notes, if any, in ``extra["notes"]``."""
        if not 0 <= k < len(self.frames):
            raise IndexError(f"recorded frame {k} of {len(self.frames)}")
        return self._snap(k, self._events((self.frames[k],)), self.frames[k].notes, {})

    # output frames
    def same_rate(self, fps: float | None) -> bool:
        """Whether a render at ``fps`` replays recorded frame k as output frame k (None: yes)."""
        return fps is None or (self.file.fps is not None and float(fps) == self.file.fps)

    def _tj(self, j: int, fps: float) -> float:
        return self._t[0] + j / fps

    def frame_count(self, fps: float | None = None) -> int:
        """Output frames that cover the whole recording at ``fps`` (every recorded frame is
        consumed by exactly one of them)."""
        if self.same_rate(fps):
            return len(self.frames)
        fps = float(fps)
        last = self._t[-1]
        j = max(0, math.ceil((last - self._t[0]) * fps))
        while self._tj(j, fps) < last:
            j += 1
        while j > 0 and self._tj(j - 1, fps) >= last:
            j -= 1
        return j + 1

    def _span(self, j: int, fps: float) -> tuple[int, int]:
        """(first, last) recorded frames consumed by output frame j: those in (t_{j-1}, t_j]."""
        k = bisect.bisect_right(self._t, self._tj(j, fps)) - 1
        first = 0 if j == 0 else bisect.bisect_right(self._t, self._tj(j - 1, fps))
        return first, k

    def clock_fields(self, j: int, fps: float | None = None) -> dict:
        """Output frame j's clock fields (the recorded ones at the recorded rate)."""
        if self.same_rate(fps):
            fr = self.frames[j]
            return dict(time=fr.time, dt=fr.dt, frame=fr.frame, bpm=fr.bpm, beat=fr.beat,
                        beats_per_bar=fr.beats_per_bar)
        fps = float(fps)
        tj = self._tj(j, fps)
        k = max(0, bisect.bisect_right(self._t, tj) - 1)
        fr = self.frames[k]
        if k + 1 < len(self.frames) and self._t[k + 1] > fr.time:
            nxt = self.frames[k + 1]
            beat = fr.beat + (nxt.beat - fr.beat) * (tj - fr.time) / (nxt.time - fr.time)
        else:       # past the last recorded frame (by under one output frame): on at its tempo
            beat = fr.beat + (tj - fr.time) * fr.bpm / 60.0
        return dict(time=tj, dt=1.0 / fps, frame=j, bpm=fr.bpm, beat=beat, beats_per_bar=fr.beats_per_bar)

    def notes_for_frame(self, j: int, fps: float | None = None) -> tuple:
        """The notes of every recorded frame output frame j consumes, in order."""
        if self.same_rate(fps):
            return self.frames[j].notes
        first, k = self._span(j, float(fps))
        return tuple(n for fr in self.frames[first:k + 1] for n in fr.notes)

    def input_now(self, j: int, fps: float | None = None) -> float:
        """When output frame j was (or would have been) taken, in the inputs' time base."""
        if self.same_rate(fps):
            return _at(self.time_base, self.frames[j].now)
        tj = self._tj(j, float(fps))
        k = max(0, bisect.bisect_right(self._t, tj) - 1)
        return _at(self.time_base, self.frames[k].now) + (tj - self._t[k])

    def output_snapshot(self, j: int, fps: float | None = None, **clock) -> Snapshot:
        """Output frame j's snapshot at ``fps``; ``clock`` overrides its clock fields (a
        :class:`ReplayClock` hands over the same ones)."""
        n = self.frame_count(fps)
        if not 0 <= j < n:
            raise IndexError(f"output frame {j} of {n}")
        if self.same_rate(fps):
            fr = self.frames[j]
            return self._snap(j, self._events((fr,)), fr.notes, clock)
        first, k = self._span(j, float(fps))
        records = self.frames[first:k + 1]
        notes = tuple(n for fr in records for n in fr.notes)
        fields = self.clock_fields(j, fps)
        fields.update(clock)
        return self._snap(k, self._events(records), notes, fields)


class ReplayClock(Clock):
    """A clock for an offline render from a recording: ``tick()`` moves to the next output frame
    and ``fields()`` are that frame's (recorded, or resampled at another ``fps``). Tempo changes
    from stages (tap, follow, MIDI clock) are ignored and counted: the recorded beat already
    holds what they did live."""

    def __init__(self, replay: SignalReplay, fps: float | None = None):
        fr = replay.frames[0]
        super().__init__(fr.bpm, fr.beats_per_bar)
        self.replay = replay
        self.fps = replay.file.fps if fps is None else float(fps)
        self._rate = None if replay.same_rate(fps) else float(fps)
        self.ignored = 0
        self._j = -1

    @property
    def frame_count(self) -> int:
        return self.replay.frame_count(self._rate)

    def tick(self) -> None:
        j = self._j + 1
        if j >= self.frame_count:
            j = self.frame_count - 1        # past the end: the last frame again, not an error
        self._j = j
        f = self.replay.clock_fields(j, self._rate)
        self.time, self.dt, self.frame = f["time"], f["dt"], f["frame"]
        self.bpm, self.beat, self.beats_per_bar = f["bpm"], f["beat"], f["beats_per_bar"]

    def advance(self, t: float) -> None:
        self.tick()

    def fields(self) -> dict:
        return dict(time=self.time, dt=self.dt, frame=self.frame, bpm=self.bpm, beat=self.beat,
                    beats_per_bar=self.beats_per_bar)

    def input_now(self) -> float:
        return self.replay.input_now(max(0, self._j), self._rate)

    def _ignore(self, *args, **kwargs):
        self.ignored += 1
        return None

    set_tempo = set_beat = tap = follow = _ignore


class ReplayBus:
    """Stands in for the :class:`~engine.signals.bus.SignalBus`: each ``snapshot(**clock)`` is the
    next output frame's (clock fields as given). Writes (``publish``, ``set``, ``emit`` ...) are
    counted in ``ignored`` and dropped: what stages published live is in the recording already,
    and applying it again would double it. Past the last output frame the last values are held,
    with no events (``past_end``)."""

    def __init__(self, replay: SignalReplay, fps: float | None = None):
        self.replay = replay
        self._rate = None if replay.same_rate(fps) else float(fps)
        self._next = 0
        self.ignored = 0
        self.past_end = 0
        self.last: Snapshot | None = None

    @property
    def frame_count(self) -> int:
        return self.replay.frame_count(self._rate)

    def notes_for_frame(self, j: int) -> tuple:
        return self.replay.notes_for_frame(j, self._rate)

    def snapshot(self, **clock) -> Snapshot:
        j = self._next
        if j >= self.frame_count:
            self.past_end += 1
            last = self.last or self.replay.output_snapshot(self.frame_count - 1, self._rate)
            fields = {k: getattr(last, k) for k in ("time", "dt", "frame", "bpm", "beat", "beats_per_bar")}
            fields.update(clock)
            return Snapshot(values=last.values, times=last.times, events=MappingProxyType({}),
                            newest_input=last.newest_input, **fields)
        self._next += 1
        self.last = self.replay.output_snapshot(j, self._rate, **clock)
        return self.last

    def peek(self, name: str, default=None):
        return default if self.last is None else self.last.values.get(name, default)

    def _ignore(self, *args, **kwargs) -> None:
        self.ignored += 1

    publish = set = update = emit = forget = _ignore
