"""Set lists: an ordered list of scenes (a patch each) and how to move between them.

```toml
# sets/demo.toml
title = "demo"
bpm = 120            # optional: starting tempo, fps, size and model for `vj run SET`
fps = 30

[[scene]]
name = "drift"
patch = "patches/drift.py"   # relative to the set file, or to the project
bars = 16                    # optional: advance by itself after 16 bars (installations)

[[scene]]
name = "pulse"
patch = "pulse"
seconds = 90                 # or after a time
```

The whole file is checked when it is loaded, every scene, against ``OPTIONS`` and ``SCENE``:
a wrong type, a number out of range or a patch that is not there refuses the set before
the show starts, with the file, the scene and the key; an unknown key is a warning. The
rest of the engine trusts the values.

Cues come in as events on the signal bus (``cue.next``, ``cue.prev``, ``cue.goto`` with
the scene's number or name), all through the control plane's dispatcher: the window's arrow
keys, OSC, MIDI controls bound to ``/vj/cue/*``, and the set's own timeline (a scene's
``bars``/``seconds`` running out sends ``/vj/cue/next``), so everything moves the show the
same way. ``SetStage`` is the set's stage of a frame.
"""
from __future__ import annotations

import argparse
import difflib
import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path

from engine import paths
from engine.limits import BPM, FPS, Number, parse_size, shown
from engine.control.namespace import MAX_STRING

log = logging.getLogger("vj")


class SetError(Exception):
    """The set file cannot be used; one line per problem, each naming the file and the place."""


@dataclass
class Scene:
    name: str
    patch: Path
    bars: int | None = None
    seconds: float | None = None


class Text:
    """A string of ``1..max_len`` characters (printable ones only with ``printable``)."""

    def __init__(self, max_len: int, printable: bool = False, what: str = "a string"):
        self.max_len, self.printable, self.what = max_len, printable, what

    def describe(self) -> str:
        return f"{self.what} of 1..{self.max_len} {'printable ' if self.printable else ''}characters"

    def check(self, value) -> str:
        if not isinstance(value, str) or not 1 <= len(value) <= self.max_len \
                or self.printable and not value.isprintable():
            raise ValueError(f"expected {self.describe()}, got {shown(value)}")
        return value


class Size:
    """``"WxH"``, as ``--size`` takes it."""

    def describe(self) -> str:
        return 'a size like "1280x720", each side 16..8192'

    def check(self, value) -> tuple[int, int]:
        if isinstance(value, str):
            try:
                return parse_size(value)
            except argparse.ArgumentTypeError:
                pass
        raise ValueError(f"expected {self.describe()}, got {shown(value)}")


# The set's own options: those of `vj run` take the command line's checks, so a set cannot
# ask for what --fps or --bpm would refuse.
OPTIONS = {
    "title": Text(200),
    "bpm": BPM,
    "fps": FPS,
    "size": Size(),
    "model": Text(4096, what="a registry name or model file"),
}
# A scene's name must be reachable by `/vj/scene name` (at most MAX_STRING printable
# characters). Timed scenes switch on the bar grid, so bars are whole; a scene shorter than
# a tenth of a second would be a flicker, not a scene.
SCENE = {
    "name": Text(MAX_STRING, printable=True, what="a name"),
    "patch": Text(4096, what="a patch file or name"),
    "bars": Number(1, 100_000, integer=True),
    "seconds": Number(0.1, 86_400),
}


def _find_patch(spec: str, base: Path) -> Path:
    for candidate in (base / spec, Path(spec), paths.PATCHES / spec, paths.PATCHES / f"{spec}.py"):
        try:
            if candidate.is_file():
                return candidate.resolve()
        except (OSError, ValueError):  # a name too long, or a NUL, for this file system
            continue
    raise ValueError(f"{shown(spec)} not found (looked beside the set and in {paths.PATCHES})")


def _unknown(key: str, schema: dict) -> str:
    close = difflib.get_close_matches(key, schema, n=1)
    hint = f" (did you mean {shown(close[0])}?)" if close else ""
    return f"unknown key {shown(key)} ignored{hint}"


def _checked(table: dict, schema: dict, where: str, errors: list[str]) -> dict:
    """The values of ``table`` that pass ``schema``; the rest become lines of ``errors``,
    unknown keys warnings, each starting with ``where``."""
    values = {}
    for key, value in table.items():
        spec = schema.get(key)
        if spec is None:
            log.warning("set list: %s: %s", where, _unknown(key, schema))
            continue
        try:
            values[key] = spec.check(value)
        except ValueError as e:
            errors.append(f"{where}: {key}: {e}")
    return values


class SetList:
    def __init__(self, path):
        self.path = Path(path)
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:  # TOMLDecodeError, bad UTF-8, an integer of 4300+ digits
            raise SetError(f"{self.path}: {e}") from e
        except RecursionError:  # tomllib recurses into nested arrays and tables
            raise SetError(f"{self.path}: nested too deeply to be a set list") from None
        errors: list[str] = []
        self.options = _checked({k: v for k, v in data.items() if k != "scene"}, OPTIONS, str(self.path), errors)
        self.title = self.options.pop("title", self.path.stem)
        self.scenes = self._scenes(data.get("scene", []), errors)
        if errors:
            raise SetError("\n".join(errors))
        self.index = 0
        self._entered_time = 0.0
        self._entered_beat = 0.0

    def _scenes(self, tables, errors: list[str]) -> list[Scene]:
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            errors.append(f"{self.path}: scene: expected [[scene]] tables, got {shown(tables)}")
            return []
        if not tables:
            errors.append(f"{self.path}: no [[scene]] entries")
        scenes, seen = [], {}
        for i, table in enumerate(tables, start=1):
            name = table.get("name")
            where = f"{self.path}: scene {i}" + (f" {shown(name)}" if isinstance(name, str) else "")
            n = len(errors)
            values = _checked(table, SCENE, where, errors)
            if "patch" in values:
                try:
                    values["patch"] = _find_patch(values["patch"], self.path.parent)
                except ValueError as e:
                    errors.append(f"{where}: patch: {e}")
            elif "patch" not in table:
                errors.append(f"{where}: names no patch")
            if len(errors) > n:
                continue
            values.setdefault("name", f"scene {i}")
            if values["name"] in seen:
                log.warning("set list: %s: the name is scene %d's too; cues by name reach only that one",
                            where, seen[values["name"]])
            seen.setdefault(values["name"], i)
            scenes.append(Scene(**values))
        return scenes

    @property
    def scene(self) -> Scene:
        return self.scenes[self.index]

    def _goto(self, index: int, snapshot) -> Scene:
        self.index = index % len(self.scenes)
        self._entered_time, self._entered_beat = snapshot.time, snapshot.beat
        log.info("scene %d/%d: %s", self.index + 1, len(self.scenes), self.scene.name)
        return self.scene

    def _resolve(self, target) -> int | None:
        if isinstance(target, str) and not target.strip().lstrip("-").isdigit():
            names = [s.name for s in self.scenes]
            return names.index(target) if target in names else None
        try:
            return int(float(target)) - 1  # scenes are numbered from 1 for people
        except (TypeError, ValueError):
            return None

    def due(self, snapshot, ahead: float = 0.0) -> bool:
        """Will the current scene's time (``bars`` or ``seconds``) have run out ``ahead`` seconds
        after this snapshot, at the current tempo?"""
        sc, eps = self.scene, 1e-6
        beat = snapshot.beat + ahead * snapshot.bpm / 60.0
        bars_done = (beat - self._entered_beat) / snapshot.beats_per_bar
        return sc.bars is not None and bars_done >= sc.bars - eps or \
            sc.seconds is not None and snapshot.time + ahead - self._entered_time >= sc.seconds - eps

    def update(self, snapshot) -> Scene | None:
        """The scene the cue events of this frame switch to, if any."""
        for _ in snapshot.events_of("cue.next"):
            return self._goto(self.index + 1, snapshot)
        for _ in snapshot.events_of("cue.prev"):
            return self._goto(self.index - 1, snapshot)
        for target in snapshot.events_of("cue.goto"):
            i = self._resolve(target)
            if i is None or not 0 <= i < len(self.scenes):
                log.warning("cue.goto %r: no such scene in %s", target, self.path.name)
                continue
            return self._goto(i, snapshot)
        return None


class SetStage:
    """Cues switch the patch; a scene whose time runs out asks for the next one through the
    dispatcher (``/vj/cue/next`` from the source ``set``), once, like any other controller. It
    asks one frame ahead (a command reaches the next frame's snapshot), so the switch lands on
    the first frame at or past the scene's end, on the bar grid."""

    name = "set"

    def __init__(self, setlist: SetList, host, dispatch):
        self.setlist, self.host, self.dispatch = setlist, host, dispatch
        self._asked = False

    def run(self, frame) -> None:
        sl, snap = self.setlist, frame.snap
        scene = sl.update(snap)
        if scene is not None:
            self.host.switch(scene.patch)
            self._asked = False
        elif not self._asked and sl.due(snap, ahead=snap.dt):
            self._asked = bool(self.dispatch("/vj/cue/next", (), None, source="set"))
        frame.status.update(scene=sl.index + 1, scenes=len(sl.scenes), scene_names=[s.name for s in sl.scenes])
