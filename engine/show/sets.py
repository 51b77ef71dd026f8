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

Cues come in as events on the signal bus (``cue.next``, ``cue.prev``, ``cue.goto`` with
the scene's number or name), all through the control plane's dispatcher: the window's arrow
keys, OSC, MIDI controls bound to ``/vj/cue/*``, and the set's own timeline (a scene's
``bars``/``seconds`` running out sends ``/vj/cue/next``), so everything moves the show the
same way. ``SetStage`` is the set's stage of a frame.
"""
from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path

from engine import paths

log = logging.getLogger("vj")


class SetError(Exception):
    pass


@dataclass
class Scene:
    name: str
    patch: Path
    bars: float | None = None
    seconds: float | None = None


def _find_patch(spec: str, base: Path) -> Path:
    for candidate in (base / spec, Path(spec), paths.PATCHES / spec, paths.PATCHES / f"{spec}.py"):
        if candidate.is_file():
            return candidate.resolve()
    raise SetError(f"patch {spec!r} not found (looked beside the set and in {paths.PATCHES})")


class SetList:
    def __init__(self, path):
        self.path = Path(path)
        try:
            data = tomllib.loads(self.path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise SetError(f"{self.path.name}: {e}") from e
        self.title = data.get("title", self.path.stem)
        self.options = {k: data[k] for k in ("bpm", "fps", "size", "model") if k in data}
        self.scenes: list[Scene] = []
        for i, sc in enumerate(data.get("scene", [])):
            if "patch" not in sc:
                raise SetError(f"{self.path.name}: scene {i + 1} names no patch")
            self.scenes.append(Scene(name=str(sc.get("name", f"scene {i + 1}")),
                                     patch=_find_patch(sc["patch"], self.path.parent),
                                     bars=sc.get("bars"), seconds=sc.get("seconds")))
        if not self.scenes:
            raise SetError(f"{self.path.name}: no [[scene]] entries")
        self.index = 0
        self._entered_time = 0.0
        self._entered_beat = 0.0

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
