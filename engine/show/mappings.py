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

The file is read at start, re-read when it changes (edit it live), and written when MIDI/OSC
learn adds a binding. Writes are atomic (a temporary file, fsync, then ``os.replace``), so a
crash or a pulled plug leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading
import tomllib
from pathlib import Path

from engine.patching.params import Binding
from engine.paths import file_stamp

log = logging.getLogger("vj")

HEADER = ("# vj mappings: signal -> patch parameter. Edit while vj runs; MIDI/OSC learn adds here.\n"
          "# Keys: source, param, range, curve, invert, smooth, takeover (jump|pickup|scale),\n"
          "#       mode (absolute|relative|relative-offset), step.\n")


class MappingsError(Exception):
    pass


def default_path(patch_or_set) -> Path:
    """``sets/demo.toml`` -> ``sets/demo.mappings.toml``; ``x/pulse.py`` -> ``x/pulse.mappings.toml``."""
    p = Path(patch_or_set)
    return p.with_name(p.stem + ".mappings.toml")


def parse(text: str, name: str = "mappings") -> list[Binding]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise MappingsError(f"{name}: {e}") from e
    out = []
    for i, entry in enumerate(data.get("binding", [])):
        try:
            kw = dict(entry)
            if "range" in kw:
                kw["range"] = tuple(float(x) for x in kw["range"])
                if len(kw["range"]) != 2:
                    raise ValueError("range is [low, high]")
            unknown = set(kw) - {"source", "param", "range", "curve", "invert", "smooth", "takeover",
                                 "mode", "step"}
            if unknown:
                raise ValueError(f"unknown keys {', '.join(sorted(unknown))}")
            out.append(Binding(**kw))
        except (TypeError, ValueError) as e:
            raise MappingsError(f"{name}: binding {i + 1}: {e}") from e
    return out


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(float(v)) if isinstance(v, float) else str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def dumps(bindings) -> str:
    parts = [HEADER]
    for b in bindings:
        parts.append("\n[[binding]]\n")
        for k, v in b.saved().items():
            parts.append(f"{k} = {_toml_value(v)}\n")
    return "".join(parts)


def save(path, bindings) -> None:
    """Atomically replace ``path`` with these bindings."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(dumps(bindings))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


class MappingsFile:
    """The live mappings file of a run: load, watch for edits, save what learn adds."""

    def __init__(self, path, params):
        self.path = Path(path)
        self.params = params
        self._stat = None
        self._lock = threading.Lock()
        self.error: str | None = None
        params.on_learned = self.save_async

    def _st(self):
        return file_stamp(self.path)

    def load(self) -> bool:
        """Read the file (a missing file is no bindings); a bad file keeps the previous bindings."""
        st = self._st()
        self._stat = st
        if st is None:
            return False
        try:
            bindings = parse(self.path.read_text(), self.path.name)
        except (OSError, UnicodeDecodeError, MappingsError) as e:
            self.error = str(e)
            log.error("mappings not loaded, keeping the previous ones: %s", e)
            return False
        self.error = None
        self.params.set_bindings(bindings)
        log.info("mappings: %d binding%s from %s", len(bindings), "" if len(bindings) == 1 else "s",
                 self.path)
        return True

    def check(self) -> bool:
        """Reload if the file changed since we last read or wrote it."""
        with self._lock:
            if self._st() == self._stat:
                return False
            return self.load()

    def save(self, bindings) -> None:
        with self._lock:
            save(self.path, bindings)
            self._stat = self._st()
        log.info("mappings saved: %s", self.path)

    def save_async(self, bindings) -> None:
        """Called on the render thread by learn: write off it."""
        def run():
            try:
                self.save(bindings)
            except OSError as e:
                self.error = f"mappings not saved: {e}"
                log.error("%s", self.error)
        threading.Thread(target=run, name="mappings-save", daemon=True).start()
