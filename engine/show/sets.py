"""Set lists: an ordered list of scenes (a model, a patch and a look each) and how to move
between them.

```toml
# sets/demo.toml
title = "demo"
bpm = 120            # optional: starting tempo, fps, size and model for `vj run SET`
fps = 30
transition = { kind = "crossfade", beats = 4 }   # the way into every scene unless it says otherwise
memory_limit = 4096  # optional, MiB: refuse the set if its models need more (a shared machine)

[[scene]]
name = "drift"
patch = "patches/drift.py"   # relative to the set file, or to the project
model = "digiface64"         # optional: this scene's model (default: the set's)
params = { speed = 0.3 }     # the patch's parameters on entering the scene, in their own units
post = { fit = 1, kaleido = 6 }   # shader settings over the patch's own
bookmark = "sunrise"         # optional: start from this bookmark of the model
note = 36                    # optional: the MIDI note that cues it
bars = 16                    # optional: advance by itself after 16 bars (installations)

[[scene]]
name = "pulse"
patch = "pulse"
seconds = 90                 # or after a time
transition = { kind = "wipe", seconds = 2 }      # cut, crossfade, morph (same model) or wipe
```

The whole file is checked when it is loaded, every scene, against ``OPTIONS`` and ``SCENE``:
a wrong type, a number out of range or a patch that is not there refuses the set before
the show starts, with the file, the scene and the key; an unknown key is a warning. The
rest of the engine trusts the values.

Cues come in as events on the signal bus (``cue.next``, ``cue.prev``, ``cue.goto`` with
the scene's number or name), all through the control plane's dispatcher: the window's arrow
and number keys, OSC, MIDI controls bound to ``/vj/cue/*``, and the set's own timeline (a
scene's ``bars``/``seconds`` running out sends ``/vj/cue/next``), so everything moves the show
the same way. A MIDI program change ``n`` goes to scene ``n + 1`` and a scene's ``note``
cues it: those are read from the bus's MIDI events directly (the MIDI decoder has checked
them), on the frame they arrive. ``engine/show/scenes.py`` plays the set.
"""
from __future__ import annotations

import argparse
import difflib
import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from engine import paths
from engine.control.namespace import MAX_STRING
from engine.limits import BPM, FPS, NAME_RE, Number, parse_size, shown
from engine.show.transition import KINDS, MAX_BEATS, MAX_SECONDS, TransitionSpec

log = logging.getLogger("vj")


class SetError(Exception):
    """The set file cannot be used; one line per problem, each naming the file and the place."""


@dataclass
class Scene:
    name: str
    patch: Path
    bars: int | None = None
    seconds: float | None = None
    model: str | None = None              # None: the set's (or the command line's) model
    params: dict = field(default_factory=dict)
    post: dict = field(default_factory=dict)
    bookmark: str | None = None
    note: int | None = None
    transition: TransitionSpec | None = None   # None: the set's


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


class Table:
    """A table of ``name = number``: names that ``key`` accepts, numbers that ``value`` does."""

    def __init__(self, key, value: Number, what: str, max_items: int = 256):
        self.key, self.value, self.what, self.max_items = key, value, what, max_items

    def describe(self) -> str:
        return f"a table of {self.what}"

    def check(self, table) -> dict:
        if not isinstance(table, dict) or len(table) > self.max_items:
            raise ValueError(f"expected {self.describe()} (at most {self.max_items}), got {shown(table)}")
        out = {}
        for k, v in table.items():
            if not self.key(k):
                raise ValueError(f"{shown(k)} is not one of {self.what}")
            try:
                out[k] = self.value.check(v)
            except ValueError as e:
                raise ValueError(f"{k}: {e}") from None
        return out


class Transition:
    """``{ kind = "crossfade", beats = 4 }`` or ``seconds = 2``; a bare ``"cut"`` is a cut."""

    def describe(self) -> str:
        return f"{{ kind = {'|'.join(KINDS)}, beats = 0..{MAX_BEATS:g} or seconds = 0..{MAX_SECONDS:g} }}"

    def check(self, value) -> TransitionSpec:
        if value == "cut":
            return TransitionSpec()
        if not isinstance(value, dict) or set(value) - {"kind", "beats", "seconds"} \
                or value.get("kind") not in KINDS or "beats" in value and "seconds" in value:
            raise ValueError(f"expected {self.describe()}, got {shown(value)}")
        beats = Number(0, MAX_BEATS).check(value["beats"]) if "beats" in value else None
        seconds = Number(0, MAX_SECONDS).check(value["seconds"]) if "seconds" in value else None
        if value["kind"] != "cut" and beats is None and seconds is None:
            raise ValueError(f"a {value['kind']} needs beats or seconds")
        return TransitionSpec(value["kind"], seconds=seconds, beats=beats)


def _post_key(k) -> bool:
    from engine.render.post import POST_DEFAULTS
    return k in POST_DEFAULTS


# The set's own options: those of `vj run` take the command line's checks, so a set cannot
# ask for what --fps or --bpm would refuse.
OPTIONS = {
    "title": Text(200),
    "bpm": BPM,
    "fps": FPS,
    "size": Size(),
    "model": Text(4096, what="a registry name or model file"),
    "transition": Transition(),
    "memory_limit": Number(16, 16 * 1024 * 1024),   # MiB
}
PARAM_VALUE = Number(-1e9, 1e9)
# A scene's name must be reachable by `/vj/scene name` (at most MAX_STRING printable
# characters). Timed scenes switch on the bar grid, so bars are whole; a scene shorter than
# a tenth of a second would be a flicker, not a scene.
SCENE = {
    "name": Text(MAX_STRING, printable=True, what="a name"),
    "patch": Text(4096, what="a patch file or name"),
    "bars": Number(1, 100_000, integer=True),
    "seconds": Number(0.1, 86_400),
    "model": Text(4096, what="a registry name or model file"),
    "params": Table(lambda k: isinstance(k, str) and bool(NAME_RE.match(k)), PARAM_VALUE, "parameter names"),
    "post": Table(_post_key, Number(-1e6, 1e6), "shader settings (engine/render/post.py)"),
    "bookmark": Text(MAX_STRING, printable=True, what="a bookmark name"),
    "note": Number(0, 127, integer=True),
    "transition": Transition(),
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
        self.transition: TransitionSpec = self.options.pop("transition", TransitionSpec())
        self.memory_limit_mb: float | None = self.options.pop("memory_limit", None)
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
        for program in snapshot.events_of("midi.program"):
            if isinstance(program, int) and 0 <= program < len(self.scenes):
                return self._goto(program, snapshot)
        for i, sc in enumerate(self.scenes):
            if sc.note is not None and snapshot.fired(f"midi.note.{sc.note}"):
                return self._goto(i, snapshot)
        return None

    def models(self, default) -> list:
        """Every model the set uses (``default`` for scenes that name none), once each, in order."""
        out = []
        for sc in self.scenes:
            m = sc.model if sc.model is not None else default
            if m not in out:
                out.append(m)
        return out
