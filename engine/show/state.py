"""State that survives: small JSON documents (bookmarks, learnt things, caches) kept beside the
user's other state, written so that a crash, a SIGKILL or a power cut leaves a file vj can read.

- :class:`StateFile` saves one document atomically: a temporary file beside it, fsynced, read
  back and compared, then renamed over the current one. The current file, when it is good, is
  first kept as ``NAME.prev``, so a file damaged later (by a disk, an editor, a sync tool) still
  has a previous good copy; :meth:`StateFile.load` falls back to it and says so.
- :class:`StateWriter` does the saving on its own thread, so the render thread only hands the
  data over; a write that fails is kept and tried again, and reported once.
- :func:`model_key` names per-model state by the model file's content, so bookmarks follow the
  weights, not the file's name or place.

Only JSON is read: loading state never executes anything, and every read is bounded.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import stat
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

from engine import atomic
from engine.reporting import Once

log = logging.getLogger("vj")

MAX_BYTES = 8 * 1024 * 1024
RETRY_S = 3.0            # how often the writer tries again a file it could not write
STALE_TMP_S = 3600.0     # a temporary file this old is a crash's leftover, not a write in progress
KEY_MAX = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class StateError(OSError):
    """A state file could not be saved. The message names the file and the problem, and is the
    same each time the same problem recurs (no temporary names in it), so it is reported once."""


def default_state_dir() -> Path:
    """``$VJ_STATE``, else ``$XDG_STATE_HOME/vj``, else ``~/.local/state/vj``."""
    if os.environ.get("VJ_STATE"):
        return Path(os.environ["VJ_STATE"]).expanduser()
    if os.environ.get("XDG_STATE_HOME"):
        return Path(os.environ["XDG_STATE_HOME"]).expanduser() / "vj"
    return Path.home() / ".local" / "state" / "vj"


def _no_constant(name):
    # json.loads takes NaN and Infinity by default; save refuses them, so a file holding them
    # was not written by vj
    raise ValueError(f"{name} is not a JSON number")


def _why(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror  # without the file name: a temporary name differs every try
    return str(e) or type(e).__name__


class StateFile:
    """One JSON document at ``path``, saved atomically with the previous good copy kept as
    ``NAME.prev``.

    ``check(data)`` raises ValueError (with a message) for a document that parses but cannot be
    used; it is applied on load, on the current file before it is kept as the previous copy, and
    to what is about to be saved (so vj never writes a file it would refuse)."""

    def __init__(self, path, check: Callable[[Any], None] | None = None, max_bytes: int = MAX_BYTES):
        self.path = Path(path)
        self.prev_path = self.path.with_name(self.path.name + ".prev")
        self.check = check
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()  # one save at a time: the writer thread and a direct call

    def __repr__(self) -> str:
        return f"StateFile({str(self.path)!r})"

    # --- reading
    def _read(self, path: Path) -> Any:
        """The document in ``path``; FileNotFoundError if there is none, ValueError (saying what
        is wrong) if it cannot be used."""
        try:
            with open(path, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise ValueError("not a regular file")
                raw = f.read(self.max_bytes + 1)  # bounded, whatever the size says
        except (FileNotFoundError, NotADirectoryError) as e:  # nothing there (yet): the folder may come
            raise FileNotFoundError(str(path)) from e
        except OSError as e:
            raise ValueError(f"cannot be read ({_why(e)})") from e
        if len(raw) > self.max_bytes:
            raise ValueError(f"larger than {self.max_bytes} bytes")
        return self._parse(raw)

    def _parse(self, raw: bytes) -> Any:
        if not raw:
            raise ValueError("empty")
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        except UnicodeDecodeError as e:
            raise ValueError(f"not UTF-8 text ({e.reason} at byte {e.start})") from e
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON ({e.msg} at line {e.lineno} column {e.colno})") from e
        except RecursionError as e:  # thousands of nested brackets
            raise ValueError("not JSON vj reads (nested too deep)") from e
        if self.check is not None:
            try:
                self.check(data)
            except (TypeError, KeyError, IndexError) as e:  # a check that did not expect this shape
                raise ValueError(f"not what vj writes ({type(e).__name__}: {e})") from e
        return data

    def load(self) -> tuple[Any, str | None]:
        """``(data, note)``. ``data`` is the current file's document, or the previous good copy's
        when the current one is missing, unreadable, too large, not JSON or refused by ``check``;
        None when neither can be used. ``note`` is None when the current file was used (or there
        is no state at all yet), else it names the file, the problem and what was used instead.
        Nothing is logged: the caller reports the note."""
        self._sweep()
        try:
            return self._read(self.path), None
        except FileNotFoundError:
            problem = "missing"
        except ValueError as e:
            problem = str(e)
        try:
            data = self._read(self.prev_path)
        except FileNotFoundError:
            if problem == "missing":
                return None, None  # nothing saved yet: not a problem
            return None, f"{self.path}: {problem}; no previous copy ({self.prev_path.name}) to use instead"
        except ValueError as e:
            return None, (f"{self.path}: {problem}; the previous copy {self.prev_path.name} cannot be "
                          f"used either ({e})")
        return data, f"{self.path}: {problem}; using the previous good copy {self.prev_path.name}"

    def _sweep(self) -> None:
        """Remove temporary files left by a crash mid-save (old ones only: a live save of another
        process may be under way)."""
        prefixes = (self.path.name + ".tmp-", self.prev_path.name + ".tmp-")
        try:
            with os.scandir(self.path.parent) as it:
                for n, entry in enumerate(it):
                    if n > 10000:
                        break
                    if entry.name.startswith(prefixes):
                        try:
                            if time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_TMP_S:
                                os.unlink(entry.path)
                        except OSError:
                            pass
        except OSError:
            pass

    # --- writing
    def dumps(self, data) -> bytes:
        """The bytes ``save`` writes; ValueError if ``data`` is not JSON, too large or refused."""
        try:
            text = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError) as e:
            raise ValueError(f"{self.path}: cannot be written as JSON ({e})") from e
        raw = (text + "\n").encode("utf-8")
        if len(raw) > self.max_bytes:
            raise ValueError(f"{self.path}: {len(raw)} bytes, more than the {self.max_bytes} it may hold")
        if self.check is not None:
            try:
                self.check(json.loads(text))
            except (TypeError, ValueError, KeyError, IndexError) as e:
                raise ValueError(f"{self.path}: would not load back ({e})") from e
        return raw

    def save(self, data) -> None:
        """Replace the file with ``data`` atomically; the current file, if good, becomes
        ``NAME.prev``. At every moment a good current file exists (once one has been saved).
        Raises StateError (OSError underneath) or ValueError (data that cannot be saved)."""
        raw = self.dumps(data)
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._save(raw)
            except OSError as e:
                raise StateError(f"{self.path}: cannot be saved ({_why(e)})") from e

    def _tmp(self, target: Path) -> Path:
        return target.with_name(f"{target.name}.tmp-{secrets.token_hex(6)}")

    def _save(self, raw: bytes) -> None:
        atomic.replace(self.path, raw, before=self._keep_previous, temp=self._tmp)

    def _keep_previous(self) -> None:
        """Make the current file ``NAME.prev`` too, if it is good, without a moment where either
        name is missing: a new name for the same bytes (a hard link, else a copy) renamed over
        the old ``.prev``. A damaged current file leaves the old ``.prev`` as it is."""
        try:
            self._read(self.path)
        except (FileNotFoundError, ValueError):
            return
        tmp = self._tmp(self.prev_path)
        try:
            try:
                os.link(self.path, tmp)
            except OSError:  # a file system without hard links
                with open(self.path, "rb") as f:
                    atomic.write_new(tmp, f.read(self.max_bytes + 1))
            os.replace(tmp, self.prev_path)
        except BaseException:
            atomic.unlink_quietly(tmp)
            raise


class StateWriter:
    """Saves StateFiles on a thread of its own ("state writer"), so a caller (the render thread)
    never waits for a disk.

    ``put`` hands a document over and returns at once; the caller must not change that object
    afterwards. Only the newest document per file is written. A file that cannot be written is
    reported once per distinct problem (logger "vj"), kept in memory, and tried again at the
    next ``put`` or every ``retry_s`` seconds."""

    def __init__(self, retry_s: float = RETRY_S, name: str = "state writer"):
        self.retry_s = float(retry_s)
        self._cv = threading.Condition()
        self._pending: dict[Path, list] = {}   # path -> [state_file, data, first_seq, retry_at]
        self._busy: dict[Path, int] = {}       # path -> first_seq of the document being written
        self._seq = 0
        self._closed = False
        self._said = Once(64)
        self._failing: dict[Path, str] = {}    # path -> the problem last reported for it
        self.error: str | None = None          # the latest problem not yet resolved
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, state_file: StateFile, data) -> None:
        key = state_file.path
        with self._cv:
            if self._closed:
                closed = True
            else:
                closed = False
                self._seq += 1
                old = self._pending.get(key)
                first = old[2] if old is not None else self._seq
                self._pending[key] = [state_file, data, first, 0.0]
                for entry in self._pending.values():  # a new put is a reason to retry them all
                    entry[3] = 0.0
                self._cv.notify_all()
        if closed:  # after close nothing would write it: write it here rather than lose it
            self._write(state_file, data)

    def pending(self) -> int:
        """How many files have data not on disk yet."""
        with self._cv:
            return len(self._pending) + len(self._busy)

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything put before this call is on disk; False if that did not happen
        within ``timeout`` (a write failing, a slow disk)."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            target = self._seq

            def done():
                return (all(e[2] > target for e in self._pending.values())
                        and all(s > target for s in self._busy.values()))
            while not done():
                if not self._thread.is_alive():
                    return False
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(left)
            return True

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, then stop the thread. What still could not be written is reported (it is lost
        when the process ends). True if everything was written."""
        ok = self.flush(timeout)
        with self._cv:
            self._closed = True
            lost = sorted(str(p) for p in list(self._pending) + list(self._busy))
            self._cv.notify_all()
        self._thread.join(timeout=5.0)
        if lost:
            log.error("state not saved at exit: %s", ", ".join(lost))
        return ok and not lost

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _next(self):
        """The next (key, entry) due, or the seconds to wait for one (None: until notified)."""
        now = time.monotonic()
        soonest = None
        for key, entry in self._pending.items():
            if key in self._busy:
                continue
            if entry[3] <= now:
                return key, entry
            soonest = entry[3] if soonest is None else min(soonest, entry[3])
        return None, (None if soonest is None else soonest - now)

    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    key, entry = self._next()
                    if key is not None:
                        break
                    if self._closed:
                        return
                    self._cv.wait(entry)
                del self._pending[key]
                self._busy[key] = entry[2]
            ok = self._write(entry[0], entry[1])
            with self._cv:
                del self._busy[key]
                if not ok:
                    newer = self._pending.get(key)
                    if newer is None:
                        entry[3] = time.monotonic() + self.retry_s
                        self._pending[key] = entry
                    else:  # newer data came meanwhile: it replaces this, but flush still waits
                        newer[2] = min(newer[2], entry[2])
                self._cv.notify_all()

    def _write(self, state_file: StateFile, data) -> bool:
        try:
            state_file.save(data)
        except Exception as e:  # never let the thread die: whatever it is, keep the data and say so
            msg = (f"state not saved, kept in memory and tried again: {e}" if isinstance(e, (StateError, ValueError))
                   else f"state not saved, kept in memory and tried again: {state_file.path}: "
                        f"{type(e).__name__}: {e}")
            with self._cv:
                self._failing[state_file.path] = msg
                self.error = msg
            if self._said.first(msg):
                log.error("%s", msg)
            return False
        with self._cv:
            was = self._failing.pop(state_file.path, None)
            if was is not None:
                self._said.discard(was)  # the same problem later is news again
                if self.error == was:
                    self.error = next(iter(self._failing.values()), None)
        if was is not None:
            log.info("state saved now: %s", state_file.path)
        return True


# --- per-model keys
_hashes: OrderedDict[tuple, str] = OrderedDict()
_hashes_lock = threading.Lock()
CHUNK = 1024 * 1024


def _sanitise(text: str, limit: int) -> str:
    safe = _UNSAFE.sub("_", text).lstrip(".")[:limit]  # no hidden files, no "." or ".."
    return safe or "model"


def _content_hash(path: Path) -> str:
    st = path.stat()
    memo = (str(path), st.st_size, st.st_mtime_ns)
    with _hashes_lock:
        if memo in _hashes:
            _hashes.move_to_end(memo)
            return _hashes[memo]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):  # streamed: a model file may be gigabytes
            h.update(chunk)
    digest = h.hexdigest()[:16]
    with _hashes_lock:
        _hashes[memo] = digest
        while len(_hashes) > 64:
            _hashes.popitem(last=False)
    return digest


def model_key(spec) -> str:
    """A file name (only ``[A-Za-z0-9._-]``, at most 80 characters) for the state of one model.

    A model file (a Path, a string naming an existing file, or anything with a ``.file`` that is
    one, such as a registry entry) gives ``<stem>-<16 hex of the sha256 of its content>``: the
    same weights get the same key wherever the file lies, other weights another. A registry name
    gives the name (None, the default model, gives ``default``); a name that had to be changed to
    be safe gets 8 hex of its own hash too, so two names never share a key."""
    path = None
    if spec is None:
        name = "default"
    elif isinstance(spec, (str, os.PathLike)):
        p = Path(spec).expanduser()
        try:
            is_file = p.is_file()
        except (OSError, ValueError):  # too long a name, a NUL: not a file
            is_file = False
        if is_file:
            path = p.resolve()
        elif isinstance(spec, os.PathLike):
            raise FileNotFoundError(f"{spec}: no such model file")
        name = str(spec)
    elif getattr(spec, "file", None) is not None and Path(spec.file).is_file():
        path = Path(spec.file).resolve()
    else:
        name = str(getattr(spec, "name", spec))
    if path is not None:
        return f"{_sanitise(path.stem, KEY_MAX - 17)}-{_content_hash(path)}"
    safe = _sanitise(name, KEY_MAX)
    if safe != name:
        safe = f"{_sanitise(name, KEY_MAX - 9)}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    return safe
