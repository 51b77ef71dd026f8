"""Hand recordings: write cleaned hand frames to a file, read them back, replay them live.

File format (``*.vjhands.gz``): gzip'd JSON lines. The first line is the header::

    {"format": "vj-hands", "version": 1, "created": "<UTC ISO time>", ...any extra fields}

then one compact JSON object per frame, in the hand-frame schema of :mod:`engine.signals.hands`
with ``t`` in seconds relative to the first frame (rounded to 1e-4 s), positions and velocities
rounded to 0.1 mm (mm/s), unit vectors, strengths and times to 1e-3, and optional fields that are
None left out. The recorder flushes the gzip stream after each frame (a crash loses at most the
frame being written; the reader tolerates a missing gzip trailer and a truncated last line) and
never overwrites a file (:func:`engine.paths.unused_path`, opened exclusively).

Reading streams the file with bounded memory: lines over ``MAX_LINE`` bytes, lines that are not
JSON or not a valid hand frame, and frames out of time order are skipped and counted; more than
``max_bytes`` of decompressed data or ``max_frames`` frames is refused (:class:`HandFileError`).
"""
from __future__ import annotations

import gzip
import json
import math
import threading
import time
from collections import Counter
from pathlib import Path

from engine.paths import unused_path
from engine.signals.jsonl import GzipLines, check_header, utc_stamp
from engine.signals.hands import HandFrameError, check_frame

FORMAT = "vj-hands"
VERSION = 1
MAX_LINE = 64 * 1024
MAX_BYTES = 256 * 1024 * 1024      # decompressed
MAX_FRAMES = 100_000               # read_hand_file keeps them all in memory
MAX_BAD = 10_000                   # bad lines before a file is refused as hostile


class HandFileError(ValueError):
    """A hand file that cannot be read (not gzip, bad header, over the limits)."""


def _rv(v, digits: int):
    return None if v is None else [round(x, digits) for x in v]


def encode_frame(frame: dict, t0: float) -> dict:
    """A cleaned frame as stored: relative time, rounded, None fields left out."""
    hands = []
    for h in frame["hands"]:
        out = {"id": h["id"], "type": h["type"], "palm": _rv(h["palm"], 1),
               "velocity": _rv(h["velocity"], 1), "normal": _rv(h["normal"], 3),
               "direction": _rv(h["direction"], 3),
               "grab": None if h["grab"] is None else round(h["grab"], 3),
               "pinch": None if h["pinch"] is None else round(h["pinch"], 3),
               "tips": None if h["tips"] is None else [_rv(p, 1) for p in h["tips"]],
               "extended": None if h["extended"] is None else [int(e) for e in h["extended"]],
               "time_visible": None if h["time_visible"] is None else round(h["time_visible"], 3)}
        hands.append({k: v for k, v in out.items() if v is not None})
    rec = {"t": round(frame["t"] - t0, 4), "hands": hands}
    if frame.get("box") is not None:
        rec["box"] = {"center": _rv(frame["box"]["center"], 1), "size": _rv(frame["box"]["size"], 1)}
    return rec


class HandRecorder:
    """Writes hand frames to a new file (never over an existing one: ``self.path`` is where it
    went). ``push(frame)`` / ``write(frame)`` validate (a bad frame is counted in ``stats`` and
    skipped); usable as a replay or tracker sink. Thread-safe; ``close()`` or a ``with`` block."""

    def __init__(self, path, header: dict | None = None):
        self.path = unused_path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._raw = open(self.path, "xb")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6, mtime=0)
        self._lock = threading.Lock()
        self._t0 = None
        self.stats = Counter()
        head = dict(header or {})
        head.update({"format": FORMAT, "version": VERSION,
                     "created": utc_stamp()})
        self._line(head)

    def _line(self, obj) -> None:
        self._gz.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        self._gz.flush()        # Z_SYNC_FLUSH: everything so far is readable after a crash
        self._raw.flush()

    def write(self, frame, source: str = "") -> bool:
        try:
            clean = check_frame(frame)
        except HandFrameError as e:
            self.stats["rejected"] += 1
            self.stats[f"rejected.{e.reason}"] += 1
            return False
        with self._lock:
            if self._gz is None:
                self.stats["closed"] += 1
                return False
            if self._t0 is None:
                self._t0 = clean["t"]
            self._line(encode_frame(clean, self._t0))
            self.stats["frames"] += 1
        return True

    push = write

    def close(self) -> None:
        with self._lock:
            if self._gz is None:
                return
            self._gz.close()
            self._raw.close()
            self._gz = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def iter_hand_file(path, max_frames: int = 10 ** 7, max_bytes: int = MAX_BYTES, stats: Counter | None = None,
                   header_out: dict | None = None):
    """Stream the frames of a hand file (cleaned dicts, ``t`` relative to the first frame).
    Counts go into ``stats``; the header into ``header_out`` (a dict to fill). Raises
    :class:`HandFileError` for a bad header or a file over the limits."""
    stats = Counter() if stats is None else stats
    lines = iter(GzipLines(path, max_bytes, stats, MAX_LINE, HandFileError, "hand"))
    head = check_header(next(lines, None), FORMAT, VERSION, HandFileError)
    if header_out is not None:
        header_out.update(head)
    last_t = -math.inf
    n = 0
    for line in lines:
        stats["lines"] += 1
        if stats["bad_lines"] >= MAX_BAD:
            raise HandFileError(f"over {MAX_BAD} bad lines")
        if line is None:
            stats["bad_lines"] += 1
            continue
        try:
            frame = check_frame(json.loads(line))
        except HandFrameError as e:
            stats["bad_lines"] += 1
            stats[f"bad.{e.reason}"] += 1
            continue
        except (ValueError, UnicodeDecodeError, RecursionError, TypeError):
            stats["bad_lines"] += 1
            stats["bad.json"] += 1
            continue
        if frame["t"] < last_t or frame["t"] < 0:
            stats["bad_lines"] += 1
            stats["bad.out_of_order"] += 1
            continue
        last_t = frame["t"]
        n += 1
        if n > max_frames:
            raise HandFileError(f"over {max_frames} frames")
        stats["frames"] += 1
        yield frame


class HandFile:
    """What :func:`read_hand_file` returns: ``header``, ``frames`` (list), ``stats`` (Counter:
    frames, lines, bad_lines, bad.<reason>, long_lines, truncated, corrupt)."""

    def __init__(self, header: dict, frames: list, stats: Counter):
        self.header, self.frames, self.stats = header, frames, stats

    @property
    def duration(self) -> float:
        return self.frames[-1]["t"] if self.frames else 0.0

    def __len__(self) -> int:
        return len(self.frames)


def read_hand_file(path, max_frames: int = MAX_FRAMES, max_bytes: int = MAX_BYTES) -> HandFile:
    """Read a whole hand file (bounded: see the module docstring)."""
    stats, header = Counter(), {}
    frames = list(iter_hand_file(path, max_frames=max_frames, max_bytes=max_bytes, stats=stats,
                                 header_out=header))
    return HandFile(header, frames, stats)


class HandReplay:
    """Replays a hand file into ``sink`` (a :class:`~engine.signals.hands.HandTracker`, anything
    with ``push(frame, source)``, or a callable taking a frame) at its recorded pace divided by
    ``speed``, each frame stamped with ``time.monotonic()`` when it is sent. ``start()`` runs it
    on a daemon thread, ``stop()`` ends it; :meth:`frames` is the same frames without a thread or
    waiting. The file is streamed (``loop`` reopens it), so memory stays bounded."""

    def __init__(self, sink, path, loop: bool = False, speed: float = 1.0, source: str = "replay",
                 max_bytes: int = MAX_BYTES):
        speed = float(speed)
        if not (math.isfinite(speed) and 0.01 <= speed <= 100.0):
            raise ValueError("speed must be within 0.01..100")
        self.sink, self.path, self.loop, self.speed, self.source = sink, Path(path), loop, speed, source
        self.max_bytes = max_bytes
        self.stats = Counter()
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # refuse a bad file now, not on the thread
        next(iter_hand_file(self.path, max_bytes=max_bytes, stats=Counter()), None)

    def _send(self, frame) -> None:
        push = getattr(self.sink, "push", None)
        if push is not None:
            push(frame, source=self.source)
        else:
            self.sink(frame)

    def frames(self, start: float = 0.0):
        """The file's frames, one pass, ``t`` = ``start`` + recorded time / speed; no waiting."""
        for f in iter_hand_file(self.path, max_bytes=self.max_bytes, stats=self.stats):
            f["t"] = start + f["t"] / self.speed
            yield f

    def start(self) -> "HandReplay":
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="hand-replay", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                t0 = time.monotonic()
                for f in iter_hand_file(self.path, max_bytes=self.max_bytes, stats=self.stats):
                    due = t0 + f["t"] / self.speed
                    wait = due - time.monotonic()
                    if wait > 0 and self._stop.wait(wait):
                        return
                    if self._stop.is_set():
                        return
                    f["t"] = time.monotonic()
                    self._send(f)
                    self.stats["sent"] += 1
                if not self.loop:
                    return
                self.stats["loops"] += 1
                if self.stats["sent"] == 0:   # an empty file: do not spin
                    self._stop.wait(0.5)
        except HandFileError as e:
            self.error = str(e)
        except Exception as e:   # a sink that raises must not kill the process quietly
            self.error = f"{type(e).__name__}: {e}"
