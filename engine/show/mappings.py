"""The mappings file: which signal drives which patch parameter, beside the set (or patch).

```toml
# sets/demo.mappings.toml
[[binding]]
source = "midi.ch1.cc.7"     # any signal: midi.ch1.cc14.1, osc./fader/1, audio.low, osc./xy[1]
param = "speed"
range = [0.0, 1.0]           # the part of the source used (MIDI and normalised OSC are 0..1)
curve = "linear"             # linear, exp, log, smooth, cubic, or an exponent
invert = false
smooth = 0.05                # seconds; replaces the parameter's own smoothing
takeover = "pickup"          # jump | pickup | scale (soft takeover)
mode = "absolute"            # or relative (two's complement encoders), relative-offset (63/65)
```

The file is read at start and re-read when it changes (edit it live). Every binding is checked
once, there: a bad one is skipped with a message naming the file, the binding and the key, and
the rest load. A file that is not TOML keeps the bindings it had.

MIDI/OSC learn adds to the file without losing anything already in it:

- the document is edited in place (``tomlkit``): comments, layout and the file's mode stay;
- a write goes to a temporary file beside it, is fsynced, read back and compared binding by
  binding, and only then replaces the file (``os.replace``): a crash leaves the old file or
  the new one, never half of one, and a write that would not read back is never made;
- if the file changed on disk since it was read (an edit the watcher has not loaded yet), or
  does not parse, the binding goes to ``NAME.mappings.learned.toml`` beside it instead, and
  stays there until the user merges it (learn keeps writing there while it exists). Both are
  read at start; a learned binding replaces the main file's with the same source and param;
- a binding that cannot be written (a full disk, a read-only folder, both files broken) is
  kept, live, and written when it can be; each problem is reported once.

Nothing here runs on the render thread except handing the learned binding over.
"""
from __future__ import annotations

import logging
import threading
import time
import tomllib
from pathlib import Path

import tomlkit
import tomlkit.exceptions

from engine import atomic
from engine.patching.params import Binding, BindingError, _show
from engine.paths import file_stamp
from engine.reporting import Once

log = logging.getLogger("vj")

HEADER = ("# vj mappings: signal -> patch parameter. Edit while vj runs; MIDI/OSC learn adds here.\n"
          "# Keys: source, param, range, curve, invert, smooth, takeover (jump|pickup|scale),\n"
          "#       mode (absolute|relative|relative-offset), step.\n")
LEARNED_HEADER = ("# vj: bindings learnt while {main} had edits vj had not read (or did not parse).\n"
                  "# They apply over {main}'s. Move them there when you like, then delete this file;\n"
                  "# while it exists, learn adds here.\n")
KEYS = ("source", "param", "range", "curve", "invert", "smooth", "takeover", "mode", "step")
RETRY_S = 5.0  # how often a binding that could not be written is tried again


class MappingsError(Exception):
    pass


def default_path(patch_or_set) -> Path:
    """``sets/demo.toml`` -> ``sets/demo.mappings.toml``; ``x/pulse.py`` -> ``x/pulse.mappings.toml``."""
    p = Path(patch_or_set)
    return p.with_name(p.stem + ".mappings.toml")


def learned_path(path) -> Path:
    """``demo.mappings.toml`` -> ``demo.mappings.learned.toml``: where learn writes when it must
    not touch the main file."""
    p = Path(path)
    stem = p.name[:-5] if p.name.endswith(".toml") else p.name
    return p.with_name(stem + ".learned.toml")


def _key(b: Binding) -> tuple[str, str]:
    return b.source, b.param


def binding(entry, where: str = "binding") -> Binding:
    """One ``[[binding]]`` table -> a Binding; BindingError (naming the key) if it cannot be used."""
    if not isinstance(entry, dict):
        raise BindingError("binding", f"{_show(entry)}: a [[binding]] table")
    unknown = sorted(k for k in entry if k not in KEYS)
    if unknown:
        raise BindingError(unknown[0], f"unknown key (the keys are {', '.join(KEYS)})")
    for k in ("source", "param"):
        if k not in entry:
            raise BindingError(k, "missing")
    return Binding(**entry)


def _describe(i: int, entry) -> str:
    if isinstance(entry, dict):
        return f"binding {i + 1} ({_show(entry.get('source'), 50)} -> {_show(entry.get('param'), 50)})"
    return f"binding {i + 1}"


def _tables(text: str, name: str) -> list:
    """The file's ``binding`` entries, parsed as vj reads them (tomllib)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise MappingsError(f"{name}: not TOML: {e}") from e
    entries = data.get("binding", [])
    if not isinstance(entries, list):
        raise MappingsError(f"{name}: binding: write each one as a [[binding]] table")
    return entries


def parse(text: str, name: str = "mappings", problems: list | None = None) -> list[Binding]:
    """The bindings in a mappings file's text. A file that is not TOML raises MappingsError. A bad
    binding raises too, unless ``problems`` is a list: then it is skipped and the message added."""
    out = []
    for i, entry in enumerate(_tables(text, name)):
        try:
            out.append(binding(entry))
        except (TypeError, ValueError) as e:
            msg = f"{name}: {_describe(i, entry)}: {e}"
            if problems is None:
                raise MappingsError(msg) from e
            problems.append(msg + "; skipped")
    if problems is not None:
        try:
            extra = sorted(k for k in tomllib.loads(text) if k != "binding")
        except tomllib.TOMLDecodeError:
            extra = []
        if extra:
            problems.append(f"{name}: {', '.join(map(_show, extra))}: not used (bindings are [[binding]] tables)")
    return out


def overlay(base: list[Binding], top: list[Binding]) -> list[Binding]:
    """``top`` applied over ``base``: a binding in ``top`` replaces those of ``base`` with the same
    source and param."""
    keys = {_key(b) for b in top}
    return [b for b in base if _key(b) not in keys] + list(top)


def _table(b: Binding):
    t = tomlkit.table()
    for k, v in b.saved().items():
        t.add(k, v)
    t.trivia.indent = "\n"  # a blank line before each [[binding]]
    return t


def _put(doc, bindings: list[Binding]) -> None:
    """Add ``bindings`` to a tomlkit document in place. One with the same source and param as a
    table already there rewrites that table's keys, so the comments around it stay."""
    if "binding" not in doc:
        doc.add("binding", tomlkit.aot())
    aot = doc["binding"]
    if not isinstance(aot, tomlkit.items.AoT):
        raise MappingsError("binding is not a list of [[binding]] tables")
    for b in bindings:
        same = [i for i, t in enumerate(aot) if isinstance(t, dict)
                and t.get("source") == b.source and t.get("param") == b.param]
        if not same:
            aot.append(_table(b))
            continue
        for i in reversed(same[1:]):
            del aot[i]
        t = aot[same[0]]
        saved = b.saved()
        for k in [k for k in t if k not in saved]:
            del t[k]
        for k, v in saved.items():
            t[k] = v


def dumps(bindings, header: str = HEADER) -> str:
    doc = tomlkit.parse(header)
    _put(doc, list(bindings))
    return doc.as_string()


def write_checked(path, text: str, expected: list[Binding]) -> None:
    """Atomically replace ``path`` with ``text``, once it has been read back from the disk and its
    bindings compared with ``expected`` (engine/atomic.py). Keeps the file's mode (a new one gets
    0666 less the umask); through a symlink, the file it points at is replaced."""
    name = Path(path).name

    def same_bindings(back: bytes) -> None:
        got = parse(back.decode("utf-8"), name, problems=[])
        if [b.saved() for b in got] != [b.saved() for b in expected]:
            raise MappingsError(f"{name}: the bindings written read back different; not replaced")

    try:
        atomic.replace(path, text.encode("utf-8"), check=same_bindings)
    except OSError as e:
        if e.errno == 0:   # read back different: as the bindings check would say it
            raise MappingsError(str(e.strerror)) from None
        raise


def save(path, bindings) -> None:
    """Replace ``path`` with these bindings (checked, atomic)."""
    bindings = list(bindings)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_checked(path, dumps(bindings), bindings)


def _read(path: Path) -> str | None:
    """The file's text, None if there is none; OSError/UnicodeDecodeError if it cannot be read."""
    try:
        return path.read_bytes().decode("utf-8")
    except (FileNotFoundError, NotADirectoryError):  # nothing there (yet): the folder may come
        return None


class MappingsFile:
    """The live mappings file of a run (and its ``.learned.toml``): load, watch for edits, add
    what learn binds."""

    def __init__(self, path, params):
        self.path = Path(path)
        self.learned_path = learned_path(self.path)
        self.params = params
        self._lock = threading.Lock()          # the files: load, check and writes, off the render thread
        self._pending_lock = threading.Lock()  # the render thread only ever waits for this one
        self._pending: list[Binding] = []      # learnt and not on disk yet
        self._main: list[Binding] = []         # the main file's good bindings, last read
        self._main_text: str | None = None     # its text as last read or written (None: no file)
        self._main_ok = True                   # did it parse, last read?
        self._learned: list[Binding] = []
        self._stamps = (None, None)
        self._said = Once(64)
        self._last_try = 0.0
        self.error: str | None = None
        self.problems: list[str] = []          # the bindings skipped at the last load
        params.on_learned = self.add_async

    def _report(self, msg: str) -> None:
        self.error = msg
        if self._said.first(msg):  # once: a retry that fails the same way says nothing new
            log.error("%s", msg)

    def _stamp(self):
        return file_stamp(self.path), file_stamp(self.learned_path)

    # --- reading
    def load(self) -> bool:
        """Read both files and hand the bindings over (taken at the next frame). A missing file is
        no bindings; a file that cannot be read or parsed keeps what it gave before. True if the
        main file was read."""
        with self._lock:
            return self._load()

    def _load(self) -> bool:
        self._stamps = self._stamp()
        ok = self._read_main()
        self._read_learned()
        with self._pending_lock:
            pending = list(self._pending)
        self.params.set_bindings(overlay(overlay(self._main, self._learned), pending))
        return ok

    def _read_one(self, path: Path):
        """(text, bindings, problems); text None if there is no file, bindings None if it cannot be
        read or parsed (problems then says why)."""
        try:
            text = _read(path)
        except (OSError, UnicodeDecodeError) as e:
            return None, None, [f"{path.name}: cannot be read: {e}"]
        if text is None:
            return None, [], []
        problems: list[str] = []
        try:
            return text, parse(text, path.name, problems), problems
        except MappingsError as e:
            return text, None, [str(e)]

    def _read_main(self) -> bool:
        text, bindings, problems = self._read_one(self.path)
        self._main_text = text
        self._main_ok = bindings is not None
        if bindings is None:
            self.error = problems[0]
            log.error("mappings not loaded, keeping the previous ones: %s", problems[0])
            return False
        self._main, self.problems = bindings, problems
        self.error = "; ".join(problems) or None
        for p in problems:
            log.error("mappings: %s", p)
        if text is None:
            return False
        log.info("mappings: %d binding%s from %s", len(bindings), "" if len(bindings) == 1 else "s", self.path)
        return True

    def _read_learned(self) -> None:
        text, bindings, problems = self._read_one(self.learned_path)
        if bindings is None:
            self.error = problems[0]
            log.error("learned mappings not loaded, keeping the previous ones: %s", problems[0])
            return
        self._learned = bindings
        for p in problems:
            log.error("mappings: %s", p)
        self.problems += problems
        if text is not None:
            log.info("mappings: %d learnt binding%s from %s, over those of %s", len(bindings),
                     "" if len(bindings) == 1 else "s", self.learned_path, self.path.name)

    def check(self) -> bool:
        """Reload if either file changed since we last read or wrote it, and try again to write
        what learn bound and could not be written. Runs on the housekeeping thread."""
        with self._lock:
            changed = self._stamp() != self._stamps
            reloaded = self._load() if changed else False
            with self._pending_lock:
                waiting = bool(self._pending)
            if waiting and (changed or time.monotonic() - self._last_try >= RETRY_S):
                self._flush()
            return reloaded

    # --- writing what learn binds
    def add(self, b: Binding) -> None:
        """Write a learnt binding now (on this thread)."""
        with self._pending_lock:
            self._pending = overlay(self._pending, [b])
        with self._lock:
            self._flush()

    def add_async(self, b: Binding) -> None:
        """Called on the render thread by learn: never waits for a file."""
        with self._pending_lock:
            self._pending = overlay(self._pending, [b])

        def run():
            with self._lock:
                self._flush()
        threading.Thread(target=run, name="mappings-save", daemon=True).start()

    def save(self, b: Binding) -> None:
        self.add(b)

    def _flush(self) -> None:
        """Write the pending bindings: into the main file if it is as we last read it, else into
        the learned file. Never raises: a failure is reported once and they stay pending."""
        with self._pending_lock:
            todo = list(self._pending)
        if not todo:
            return
        self._last_try = time.monotonic()
        what = ", ".join(f"{b.source} -> {b.param}" for b in todo)
        try:
            reason = self._why_not_main()
            if reason is None:
                self._main_text, self._main = self._write(self.path, todo, HEADER)
                where = self.path
            else:
                header = LEARNED_HEADER.format(main=self.path.name)
                _, self._learned = self._write(self.learned_path, todo, header)
                where = self.learned_path
                log.warning("mappings: learnt %s written to %s, not %s: %s", what, self.learned_path,
                            self.path, reason)
        except (OSError, UnicodeDecodeError, MappingsError, tomlkit.exceptions.TOMLKitError) as e:
            self._report(f"mappings: learnt {what} not saved (kept while vj runs; tried again "
                         f"every {RETRY_S:g} s and when a file changes): {e}")
            return
        self._stamps = self._stamp()
        with self._pending_lock:
            self._pending = [b for b in self._pending if not any(b is x for x in todo)]
        self._said.clear()
        self.error = None
        log.info("mappings saved: %s (%s)", where, what)

    def _why_not_main(self) -> str | None:
        """Why learn must not edit the main file now, or None if it may."""
        if self.learned_path.exists():
            return f"{self.learned_path.name} exists (learn adds there until you merge it and delete it)"
        try:
            now = _read(self.path)
        except (OSError, UnicodeDecodeError) as e:
            return f"{self.path.name} cannot be read ({e})"
        if now != self._main_text:
            return f"{self.path.name} changed on disk since vj read it"
        if not self._main_ok:
            return f"{self.path.name} does not parse"
        if now is not None:
            try:
                tomlkit.parse(now)
            except tomlkit.exceptions.TOMLKitError as e:
                return f"{self.path.name} cannot be edited in place ({e})"
        return None

    def _write(self, path: Path, todo: list[Binding], header: str) -> tuple[str, list[Binding]]:
        """Add ``todo`` to the file at ``path`` (created if missing), in place; (text, bindings)."""
        text = _read(path)
        if text is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            text = header
        entries = _tables(text, path.name)  # raises if it is not TOML: then nothing is written
        doc = tomlkit.parse(text)
        _put(doc, todo)
        new = doc.as_string()
        # what the file must hold, worked out from the old text as vj reads it (tomllib) and the
        # bindings in memory, never from the new text: the read-back is compared with this.
        # Same rule as _put: the first table with the same source and param is rewritten, later
        # ones dropped, the rest appended; a table the user got wrong stays wrong (skipped).
        mine = {_key(b): b for b in todo}
        expected, placed = [], set()
        for e in entries:
            k = (e.get("source"), e.get("param")) if isinstance(e, dict) else None
            if k is not None and all(isinstance(x, str) for x in k) and k in mine:
                if k not in placed:
                    expected.append(mine[k])
                    placed.add(k)
                continue
            try:
                expected.append(binding(e))
            except (TypeError, ValueError):
                pass
        expected += [b for k, b in mine.items() if k not in placed]
        write_checked(path, new, expected)
        return new, expected
