"""What a show leaves behind for the next start: the scene it was in and each scene's
parameter values, in ``STATE/shows/<set or patch key>.json``.

Saved after every change (at most four times a second while a fader moves, so the disk is
not written 30 times a second; the newest values always reach it) through the state
writer, off the render thread, atomically with the previous good copy kept
(engine/show/state.py). Restored on start: the set opens in the scene it was in, and every
scene entered gets the values it had when it was left. A damaged file is reported and the
previous copy used. The show's own folder is the key, so two sets never share a file.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from pathlib import Path

from engine.limits import NAME_RE
from engine.show.state import StateFile, _sanitise

log = logging.getLogger("vj")

VERSION = 1
MIN_INTERVAL = 0.25   # s between two saves of a moving value
MAX_SCENES = 1000


def _check(data) -> None:
    if not isinstance(data, dict) or data.get("vj") != "show" or data.get("version") != VERSION:
        raise ValueError("not a vj show state")
    scene = data.get("scene")
    if scene is not None and not isinstance(scene, str):
        raise ValueError("scene is not a name")
    scenes = data.get("params", {})
    if not isinstance(scenes, dict) or len(scenes) > MAX_SCENES:
        raise ValueError("params is not a table of scenes")
    for name, values in scenes.items():
        if not isinstance(values, dict) or len(values) > 512:
            raise ValueError(f"params of {name!r} is not a table")
        for k, v in values.items():
            if not NAME_RE.match(k) or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"params of {name!r}: {k!r} = {v!r}")


def show_key(path) -> str:
    p = Path(path).resolve()
    return f"{_sanitise(p.stem, 60)}-{hashlib.sha256(str(p).encode()).hexdigest()[:12]}"


class ShowState:
    """The state of one show (a set, or a single patch: its one "scene" is ``""``)."""

    def __init__(self, folder, show_path, writer, report=None):
        self.file = StateFile(Path(folder) / "shows" / f"{show_key(show_path)}.json", check=_check)
        self.writer = writer
        data, note = self.file.load()
        if note:
            (report or log.warning)(f"show state: {note}")
        self.scene: str | None = data.get("scene") if data else None
        self.params: dict[str, dict[str, float]] = dict(data.get("params", {})) if data else {}
        self._saved_at = 0.0
        self._dirty = note is not None and data is not None   # a damaged file is replaced by the good copy soon

    def document(self) -> dict:
        return {"vj": "show", "version": VERSION, "scene": self.scene,
                "params": {k: dict(v) for k, v in self.params.items()}}

    def note(self, scene: str, values: dict[str, float]) -> None:
        """The frame's scene and parameter values; saved if they changed (throttled)."""
        if scene != self.scene or self.params.get(scene) != values:
            self.scene = scene
            self.params[scene] = dict(values)
            self._dirty = True
        now = time.monotonic()
        if self._dirty and now - self._saved_at >= MIN_INTERVAL:
            self.save(now)

    def save(self, now: float | None = None) -> None:
        self._saved_at = time.monotonic() if now is None else now
        self._dirty = False
        self.writer.put(self.file, self.document())

    def close(self) -> None:
        if self._dirty:
            self.save()


class ShowStateStage:
    """Notes the scene and the parameters every frame (after the patch has declared them)."""

    name = "show state"

    def __init__(self, state: ShowState, params, setlist=None):
        self.state, self.params, self.setlist = state, params, setlist

    def run(self, frame) -> None:
        scene = self.setlist.scene.name if self.setlist is not None else ""
        self.state.note(scene, self.params.targets())
