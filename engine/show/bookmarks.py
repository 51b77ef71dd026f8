"""Bookmarks: places in a model's latent space (its ``ws``) with the patch parameters of the
moment, saved by name and recalled (jumped to, or morphed to over a few beats).

The bookmarks of one model live in ``STATE/bookmarks/<model key>.json`` (see
:func:`engine.show.state.model_key`: the key follows the weights, so renaming or moving the model
file keeps its bookmarks, and other weights never get them). Each change is saved at once,
atomically, with the previous version kept as ``.json.prev``::

    {"vj": "bookmarks", "version": 1, "model": "ffhq-0123456789abcdef", "shape": [18, 512],
     "bookmarks": [{"name": "1", "created": 1764530000.0, "scene": "intro",
                    "params": {"speed": 0.5},
                    "ws": {"dtype": "<f4", "shape": [18, 512], "data": "<base64>"}}]}

``ws`` is stored as its little-endian float32 bytes, so a bookmark comes back bit for bit. On
load every bookmark is checked; one that cannot be used (another model's shape, a NaN, a bad
name, past the 1000th) is skipped with a message naming the file and the bookmark, and the rest
load. A skipped bookmark is not written back: it stays in ``.prev`` until the next change after.
"""
from __future__ import annotations

import base64
import binascii
import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.limits import NAME_RE, shown
from engine.show.state import StateFile, StateWriter

log = logging.getLogger("vj")

MAX_BOOKMARKS = 1000
MAX_NAME = 64
MAX_PARAMS = 512
MAX_SCENE = 256
VERSION = 1
_KEY_RE = re.compile(r"\A[A-Za-z0-9_-][A-Za-z0-9._-]{0,79}\Z")


class BookmarkError(ValueError):
    pass


def check_name(name) -> str:
    """A bookmark's name: printable text of 1..64 characters, not only spaces."""
    if not isinstance(name, str):
        raise BookmarkError(f"name {shown(name)}: a bookmark's name is text")
    if not 1 <= len(name) <= MAX_NAME or not name.isprintable() or not name.strip():
        raise BookmarkError(f"name {shown(name)}: 1..{MAX_NAME} printable characters, not only spaces")
    return name


def _check_params(params) -> dict[str, float]:
    if not isinstance(params, dict):
        raise BookmarkError("params: a table of name -> number")
    if len(params) > MAX_PARAMS:
        raise BookmarkError(f"params: {len(params)} of them, more than {MAX_PARAMS}")
    out = {}
    for k, v in params.items():
        if not isinstance(k, str) or not NAME_RE.match(k):
            raise BookmarkError(f"params: {shown(k)} is not a parameter name")
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise BookmarkError(f"params: {k} = {shown(v)}: not a number")
        try:
            f = float(v)
        except OverflowError:  # an integer of hundreds of digits
            f = math.inf
        if not math.isfinite(f):
            raise BookmarkError(f"params: {k} = {shown(v)}: not a finite number")
        out[k] = f
    return out


def _check_scene(scene):
    if scene is None:
        return None
    if not isinstance(scene, str) or len(scene) > MAX_SCENE or not scene.isprintable():
        raise BookmarkError(f"scene {shown(scene)}: printable text of at most {MAX_SCENE} characters, or none")
    return scene


def _check_ws(ws, shape: tuple[int, int]) -> np.ndarray:
    """``ws`` as a read-only float32 [num_ws, w_dim] copy; a batch of one is taken as it."""
    a = np.asarray(ws)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if tuple(a.shape) != tuple(shape):
        raise BookmarkError(f"ws of shape {list(a.shape)}, this model's is {list(shape)}")
    if not np.issubdtype(a.dtype, np.floating):
        raise BookmarkError(f"ws of {a.dtype}, not floating point")
    a = np.array(a, dtype=np.float32, copy=True)
    if not np.isfinite(a).all():
        raise BookmarkError("ws holds NaN or infinity")
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)  # eq would compare arrays element-wise
class Bookmark:
    name: str
    ws: np.ndarray                    # float32 [num_ws, w_dim], read-only
    params: dict = field(default_factory=dict)
    created: float = 0.0              # unix time
    scene: str | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "created": self.created, "scene": self.scene,
                "params": dict(self.params),
                "ws": {"dtype": "<f4", "shape": list(self.ws.shape),
                       "data": base64.b64encode(self.ws.astype("<f4").tobytes()).decode("ascii")}}

    @classmethod
    def from_json(cls, entry, shape: tuple[int, int]) -> "Bookmark":
        """A bookmark from its JSON; BookmarkError saying what is wrong."""
        if not isinstance(entry, dict):
            raise BookmarkError("not a table")
        name = check_name(entry.get("name"))
        created = entry.get("created")
        if isinstance(created, bool) or not isinstance(created, (int, float)) or not -1e12 < created < 1e12:
            raise BookmarkError(f"created {shown(created)}: not a time")  # (the bounds refuse nan too)
        w = entry.get("ws")
        if not isinstance(w, dict) or w.get("dtype") != "<f4" or not isinstance(w.get("data"), str):
            raise BookmarkError("ws: not {dtype: \"<f4\", shape, data}")
        if w.get("shape") != list(shape):
            raise BookmarkError(f"ws of shape {shown(w.get('shape'))}, this model's is {list(shape)}")
        data = w["data"]
        need = int(np.prod(shape)) * 4
        if len(data) > 4 * (need // 3 + 1):  # before decoding: never decode something huge
            raise BookmarkError("ws: more data than its shape holds")
        try:
            raw = base64.b64decode(data.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as e:
            raise BookmarkError(f"ws: not base64 ({e})") from e
        if len(raw) != need:
            raise BookmarkError(f"ws: {len(raw)} bytes, its shape needs {need}")
        ws = np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)
        if not np.isfinite(ws).all():
            raise BookmarkError("ws holds NaN or infinity")
        ws.flags.writeable = False
        return cls(name, ws, _check_params(entry.get("params", {})), float(created),
                   _check_scene(entry.get("scene")))


def _check_document(data) -> None:
    """What makes a file a bookmarks file at all (else the previous copy is used instead); single
    bookmarks are checked one by one at load."""
    if not isinstance(data, dict) or data.get("vj") != "bookmarks":
        raise ValueError("not a vj bookmarks file")
    if data.get("version") != VERSION:
        raise ValueError(f"version {shown(data.get('version'))}, this vj reads {VERSION}")
    if not isinstance(data.get("bookmarks"), list):
        raise ValueError("bookmarks: not a list")


class BookmarkBook:
    """The bookmarks of one model: ``folder/bookmarks/<model_key>.json``.

    Every change is saved at once: through ``writer`` (a StateWriter) when given, so the caller
    never waits for the disk, else here. A save that fails is reported once and the change kept
    in memory; it is saved with the next change (or ``flush``)."""

    def __init__(self, folder, model_key: str, shape, writer: StateWriter | None = None):
        if not isinstance(model_key, str) or not _KEY_RE.match(model_key):
            raise ValueError(f"model key {shown(model_key)}: not a safe file name (see state.model_key)")
        num_ws, w_dim = (int(n) for n in shape)
        if num_ws < 1 or w_dim < 1:
            raise ValueError(f"shape {list(shape)}: not a [num_ws, w_dim]")
        self.shape = (num_ws, w_dim)
        self.model_key = model_key
        self.path = Path(folder) / "bookmarks" / f"{model_key}.json"
        self.file = StateFile(self.path, check=_check_document)
        self.writer = writer
        self._lock = threading.RLock()
        self._marks: dict[str, Bookmark] = {}
        self._dirty = False            # a change not saved (only without a writer)
        self._error_said: str | None = None
        self.error: str | None = None
        self.problems: list[str] = []  # what the last load skipped or fell back from
        self.load()

    # --- reading
    def load(self) -> None:
        """(Re)read the file; what cannot be used is skipped and reported."""
        data, note = self.file.load()
        problems = [note] if note else []
        marks: dict[str, Bookmark] = {}
        for i, entry in enumerate(data["bookmarks"] if data is not None else []):
            label = (f"bookmark {shown(entry.get('name'))}" if isinstance(entry, dict) and "name" in entry
                     else f"bookmark {i + 1}")
            if len(marks) >= MAX_BOOKMARKS:
                problems.append(f"{self.path}: {len(data['bookmarks']) - i} bookmarks past the "
                                f"{MAX_BOOKMARKS}th skipped")
                break
            try:
                b = Bookmark.from_json(entry, self.shape)
                if b.name in marks:
                    raise BookmarkError("a second bookmark of that name")
            except BookmarkError as e:
                problems.append(f"{self.path}: {label}: {e}; skipped")
                continue
            marks[b.name] = b
        for p in problems:
            log.warning("bookmarks: %s", p)
        with self._lock:
            self._marks = marks
            self.problems = problems

    def names(self) -> list[str]:
        with self._lock:
            return list(self._marks)

    def get(self, name: str) -> Bookmark:
        """The bookmark (KeyError if there is none of that name)."""
        with self._lock:
            return self._marks[name]

    def __contains__(self, name) -> bool:
        with self._lock:
            return name in self._marks

    def __len__(self) -> int:
        with self._lock:
            return len(self._marks)

    # --- changing
    def _free_name(self) -> str:
        n = 1
        while str(n) in self._marks:
            n += 1
        return str(n)

    def save(self, ws, params=None, name: str | None = None, scene: str | None = None) -> str:
        """Bookmark ``ws`` (float32 [num_ws, w_dim], finite) with ``params``; its name (the first
        unused of "1", "2", ... when None). An existing name is replaced, in its place."""
        ws = _check_ws(ws, self.shape)
        params = _check_params(params or {})
        scene = _check_scene(scene)
        with self._lock:
            name = self._free_name() if name is None else check_name(name)
            if name not in self._marks and len(self._marks) >= MAX_BOOKMARKS:
                raise BookmarkError(f"{MAX_BOOKMARKS} bookmarks already; delete one first")
            self._marks[name] = Bookmark(name, ws, params, time.time(), scene)
            self._persist()
        return name

    def rename(self, old: str, new: str) -> None:
        new = check_name(new)
        with self._lock:
            if old not in self._marks:
                raise KeyError(old)
            if new == old:
                return
            if new in self._marks:
                raise BookmarkError(f"a bookmark named {shown(new)} exists already")
            marks = {}
            for k, b in self._marks.items():  # keep its place in the order
                if k == old:
                    b = Bookmark(new, b.ws, b.params, b.created, b.scene)
                marks[b.name] = b
            self._marks = marks
            self._persist()

    def delete(self, name: str) -> None:
        with self._lock:
            del self._marks[name]  # KeyError if there is none
            self._persist()

    def document(self) -> dict:
        with self._lock:
            return {"vj": "bookmarks", "version": VERSION, "model": self.model_key,
                    "shape": list(self.shape), "bookmarks": [b.to_json() for b in self._marks.values()]}

    def _persist(self) -> None:
        doc = self.document()
        if self.writer is not None:
            self.writer.put(self.file, doc)
            return
        self._dirty = True
        self._write(doc)

    def _write(self, doc) -> bool:
        try:
            self.file.save(doc)
        except (OSError, ValueError) as e:
            msg = f"bookmarks not saved, kept in memory until the next change: {e}"
            self.error = msg
            if msg != self._error_said:
                self._error_said = msg
                log.error("%s", msg)
            return False
        self._dirty = False
        if self._error_said is not None:
            log.info("bookmarks saved now: %s", self.path)
        self.error = self._error_said = None
        return True

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Everything changed so far is on disk (True), or could not be written (False)."""
        if self.writer is not None:
            return self.writer.flush(timeout)
        with self._lock:
            return self._write(self.document()) if self._dirty else True


def ease(u: float) -> float:
    """Smoothstep on 0..1: starts and ends at rest, exactly 0 and 1 at the ends."""
    if u <= 0.0:
        return 0.0
    if u >= 1.0:
        return 1.0
    return u * u * (3.0 - 2.0 * u)


class Morph:
    """From ``start_ws`` to ``target_ws`` over ``seconds`` (the caller turns beats into seconds),
    eased; 0 seconds is a jump. Works on numpy arrays and on torch tensors alike."""

    def __init__(self, start_ws, target_ws, seconds: float):
        if tuple(start_ws.shape) != tuple(target_ws.shape):
            raise ValueError(f"morph from shape {list(start_ws.shape)} to {list(target_ws.shape)}")
        seconds = float(seconds)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"morph of {seconds} seconds: a finite duration >= 0")
        self.start, self.target, self.seconds = start_ws, target_ws, seconds
        self._delta = target_ws - start_ws

    def done(self, elapsed: float) -> bool:
        return elapsed >= self.seconds

    def at(self, elapsed: float):
        """The ws ``elapsed`` seconds in: exactly the start at 0 (and before), exactly the target
        from ``seconds`` on; a new array each time."""
        if self.done(elapsed):
            return _copy(self.target)
        s = ease(elapsed / self.seconds)
        if s == 0.0:
            return _copy(self.start)
        return self.start + self._delta * s


def _copy(x):
    return x.clone() if hasattr(x, "clone") else x.copy()
