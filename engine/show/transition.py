"""How one scene gives way to the next: the kind of transition and its length, counted in frames.

A transition's length is given in seconds or beats and turned into a whole number of
frames when it is cued (at the tempo of that moment), so it lasts exactly that many frames
whatever the frame times do live, and a replay or an offline render draws the same frames.
Frame ``i`` of ``n`` (0-based, ``i = 0`` is the cued frame) shows the incoming scene with
weight ``(i + 1) / n``: the cued frame already moves, and the last one is the new scene
alone. A cut is a transition of one frame.

Kinds:

- ``cut``: the new scene from the cued frame on;
- ``crossfade``: the two scenes' finished pictures blended (each through its own shader
  chain, so each keeps its look);
- ``wipe``: the same two pictures, the new one uncovered by a soft edge moving across;
- ``morph``: one picture, the latents blended (per layer, in w space) and the shader
  settings interpolated. Only between scenes of the same model; between two models it
  becomes a crossfade.
"""
from __future__ import annotations

from dataclasses import dataclass

KINDS = ("cut", "crossfade", "morph", "wipe")
MAX_SECONDS = 600.0
MAX_BEATS = 1024.0


@dataclass(frozen=True)
class TransitionSpec:
    kind: str = "cut"
    seconds: float | None = None
    beats: float | None = None

    def frames(self, bpm: float, fps: float) -> int:
        """Whole frames at this tempo and frame rate; at least one (a cut)."""
        if self.kind == "cut":
            return 1
        if self.seconds is not None:
            s = self.seconds
        elif self.beats is not None:
            s = self.beats * 60.0 / max(bpm, 1e-6)
        else:
            s = 0.0
        return max(1, round(s * fps))

    def describe(self) -> str:
        if self.kind == "cut":
            return "cut"
        length = f"{self.seconds:g} s" if self.seconds is not None else f"{self.beats:g} beats"
        return f"{self.kind} over {length}"


class Transition:
    """One transition under way, from scene ``source`` to scene ``target`` (indices)."""

    def __init__(self, spec: TransitionSpec, source: int, target: int, n: int, start_frame: int):
        self.kind, self.source, self.target, self.n = spec.kind, source, target, max(1, int(n))
        self.start_frame = start_frame
        self.i = 0

    @property
    def amount(self) -> float:
        """The incoming scene's weight on the current frame."""
        return (self.i + 1) / self.n

    @property
    def last(self) -> bool:
        return self.i + 1 >= self.n

    def step(self) -> None:
        self.i += 1
