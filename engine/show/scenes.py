"""Playing a set: every scene's patch loaded before the show, cues and transitions on the frame.

Each scene has its own patch host, loaded (and hot-reloaded) from the start, so a cue never
waits for a file to compile: the cued frame already draws the new scene. A scene left and
entered again carries on where it was. The set's models are all loaded before the show too
(``engine/show/models.py`` checks that they fit), so a crossfade between two models never
loads anything.

Pictures are shaded in **slots** (a shader chain and a frame source each; two of them when
the set has crossfades or wipes): the scene on screen owns one, an incoming scene of a
crossfade or a wipe takes the other, and keeps it when the transition ends. A morph keeps
one slot (and its feedback trails) across the two scenes.

``SetStage`` is the set's stage of a frame, in place of the single patch's stage: cues from
the bus (engine/show/sets.py), the timeline, then the patches of the scene on screen and of
the incoming one, into ``frame.controls`` and ``frame.layers`` (engine/render/stages.py).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from engine.patching.loader import shown_path
from engine.render.stages import Layer
from engine.show.transition import Transition, TransitionSpec

log = logging.getLogger("vj")


@dataclass
class Slot:
    chain: Any
    source: Any


def blend_post(a: dict, b: dict, k: float) -> dict:
    """Shader settings part of the way from ``a`` to ``b`` (a setting only one side has
    moves from, or to, its default)."""
    from engine.render.post import POST_DEFAULTS
    out = {}
    for key in set(a) | set(b):
        d = POST_DEFAULTS.get(key, 0.0)
        va, vb = float(a.get(key, d)), float(b.get(key, d))
        out[key] = va + (vb - va) * k
    return out


class SetStage:
    """Cues and the timeline choose the scene; the scenes' patches make the frame's layers.

    ``hosts[i]`` is scene i's PatchHost, ``runners[i]`` its GeneratorRunner (shared by scenes of
    one model), ``slots`` one or two Slots. ``on_enter(index, scene)`` runs on the cued frame
    (parameters, bookmarks: the caller's), ``dispatch`` is the control plane's (the timeline
    asks for the next scene through it, like any controller)."""

    name = "set"

    def __init__(self, setlist, hosts: list, runners: list, slots: list[Slot], dispatch,
                 on_enter: Callable[[int, Any], None] | None = None, fps: float = 30.0):
        self.setlist, self.hosts, self.runners, self.slots = setlist, hosts, runners, list(slots)
        self.dispatch, self.on_enter, self.fps = dispatch, on_enter, fps
        self.live = setlist.index            # the scene on screen (the outgoing one during a transition)
        self.transition: Transition | None = None
        self.frames = 0
        self._asked = False
        self.cues: list[tuple[int, int, str]] = []   # (frame, scene index, transition) for the log and tests

    @property
    def host(self):
        """The patch host of the scene the show is in (the incoming one during a transition)."""
        return self.hosts[self.setlist.index]

    def _spec(self, source: int, target: int) -> TransitionSpec:
        sl = self.setlist
        spec = sl.scenes[target].transition or sl.transition
        if spec.kind == "morph" and self.runners[source] is not self.runners[target]:
            spec = TransitionSpec("crossfade", spec.seconds, spec.beats)  # two models: no shared latent space
        if spec.kind in ("crossfade", "wipe") and len(self.slots) < 2:
            spec = TransitionSpec()
        return spec

    def _cue(self, target: int, snap) -> None:
        if self.transition is not None:  # a cue during a transition: the one under way ends now
            self._finish()
        source = self.live
        spec = self._spec(source, target)
        n = spec.frames(snap.bpm, self.fps)
        sc = self.setlist.scenes[target]
        self.cues.append((self.frames, target, spec.describe()))
        log.info("scene %d/%d: %s (%s; frame %d, %s)", target + 1, len(self.setlist.scenes), sc.name,
                 shown_path(sc.patch), self.frames, spec.describe())
        if self.on_enter is not None:
            self.on_enter(target, sc)
        if spec.kind == "cut" or n <= 1 or target == source:
            self.live = target
            return
        self.transition = Transition(spec, source, target, n, self.frames)

    def _finish(self) -> None:
        tr, self.transition = self.transition, None
        if tr.kind in ("crossfade", "wipe"):
            self.slots = [self.slots[1], self.slots[0]]   # the incoming scene keeps its slot
        self.live = tr.target

    def _controls(self, i: int, snap):
        c = self.hosts[i].frame(snap)
        post = dict(c.post)
        post.update(self.setlist.scenes[i].post)  # the scene's look over the patch's
        return c, post

    def run(self, frame) -> None:
        sl, snap = self.setlist, frame.snap
        if self.frames == 0 and self.on_enter is not None:
            self.on_enter(self.live, sl.scenes[self.live])
        scene = sl.update(snap)
        if scene is not None:
            self._cue(sl.index, snap)
            self._asked = False
        elif not self._asked and sl.due(snap, ahead=snap.dt):
            # one frame ahead: a command reaches the next frame's snapshot, so the switch lands
            # on the first frame at or past the scene's end, on the bar grid
            self._asked = bool(self.dispatch("/vj/cue/next", (), None, source="set"))
        tr = self.transition
        a, post_a = self._controls(self.live, snap)
        if tr is None:
            frame.controls = a
            frame.layers = [Layer(self.runners[self.live], a, post_a, self.slots[0])]
        else:
            b, post_b = self._controls(tr.target, snap)
            k = tr.amount
            frame.controls = b
            if tr.kind == "morph":
                frame.layers = [Layer(self.runners[self.live], a, blend_post(post_a, post_b, k), self.slots[0],
                                      toward=(b, k))]
            else:
                frame.layers = [Layer(self.runners[self.live], a, post_a, self.slots[0]),
                                Layer(self.runners[tr.target], b, post_b, self.slots[1])]
                frame.mix = (k, tr.kind)
            if tr.last:
                self._finish()
            else:
                tr.step()
        self.frames += 1
        frame.status.update(scene=sl.index + 1, scenes=len(sl.scenes), scene_names=[s.name for s in sl.scenes],
                            transition=0.0 if tr is None else tr.amount)


class ShowPatches:
    """The patch hosts of a set, seen as the one host of the scene the show is in: what the
    HUD, the status line and the stages' error reports read."""

    def __init__(self, hosts: list, setlist):
        self.hosts, self.setlist = hosts, setlist

    @property
    def _host(self):
        return self.hosts[self.setlist.index]

    @property
    def name(self) -> str:
        return self._host.name

    @property
    def path(self):
        return self._host.path

    @property
    def last_error(self):
        return self._host.last_error

    @property
    def last_message(self):
        return self._host.last_message

    @property
    def ready(self) -> bool:
        return self._host.ready

    @property
    def errors(self) -> int:
        return sum(h.errors for h in self.hosts)

    def report(self, message: str, level=logging.ERROR) -> None:
        self._host.report(message, level)

    def clear_error(self, message: str) -> None:
        for h in self.hosts:
            h.clear_error(message)
