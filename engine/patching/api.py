"""What a patch sees: the context ``p`` (helpers and the patch's own state) and the
``Controls`` it returns each frame. docs/patches.md is the user's guide to this."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.latent import paths, seeds
from engine.patching import ops
from engine.patching.params import ParamSet


@dataclass
class Controls:
    """Everything the generator and the shader chain need for one frame.

    Give one latent: ``z`` (input latent), ``w`` (one style for every layer) or
    ``ws`` (per-layer styles, [num_ws, w_dim]). ``post`` holds shader uniforms by name
    (``feedback``, ``hue``, ``kaleido``, ...; see engine/render/post.py)."""

    z: Any = None
    w: Any = None
    ws: Any = None
    psi: float = 1.0
    noise: Any = "const"
    c: Any = None
    transform: Any = None  # StyleGAN3 input transform, 3x3 (see p.transform)
    post: dict = field(default_factory=dict)

    def check(self) -> None:
        """Raise ValueError on anything the generator cannot take (missing or non-finite)."""
        if self.z is None and self.w is None and self.ws is None:
            raise ValueError("frame() returned no latent (give z=, w= or ws=)")
        for name in ("z", "w", "ws", "c", "transform"):
            v = getattr(self, name)
            if v is not None and not np.all(np.isfinite(np.asarray(v, dtype=np.float64))):
                raise ValueError(f"frame() returned a non-finite {name} (NaN or inf)")
        if not math.isfinite(float(self.psi)):
            raise ValueError("frame() returned a non-finite psi")
        for k, v in self.post.items():
            try:
                x = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"frame() returned {k}={v!r}; shader settings are single numbers") from None
            if not math.isfinite(x):
                raise ValueError(f"frame() returned a non-finite {k}")


def as_controls(out) -> Controls:
    if isinstance(out, Controls):
        return out
    if isinstance(out, dict):
        out = dict(out)
        known = {k: out.pop(k) for k in ("z", "w", "ws", "psi", "noise", "c", "transform") if k in out}
        return Controls(**known, post=out)
    if out is None:
        raise ValueError("frame() returned nothing; return p.controls(...) or a latent")
    return Controls(z=np.asarray(out, dtype=np.float32))


class PatchContext:
    """The ``p`` handed to ``setup(p)`` and ``frame(p, s)``.

    Attributes a patch sets in ``setup`` (``p.keys = ...``) persist until the patch
    is reloaded."""

    def __init__(self, model_info, name: str = "patch", report=None, params=None):
        self._ft = ops.FrameTime()
        self._params = params if params is not None else ParamSet()
        self.model = model_info
        self.z_dim = model_info.z_dim
        self.name = name
        self.s = None
        self._report = report or (lambda msg: None)

    # time of the current frame
    @property
    def time(self) -> float:
        return self._ft.time

    @property
    def dt(self) -> float:
        return self._ft.dt

    @property
    def beat(self) -> float:
        return self._ft.beat

    def _begin(self, snapshot) -> None:
        self.s = snapshot
        ft = self._ft
        ft.dt, ft.time, ft.beat, ft.bpm = snapshot.dt, snapshot.time, snapshot.beat, snapshot.bpm

    # latents
    def seed(self, n: int) -> np.ndarray:
        return seeds.seed_z(n, self.z_dim)

    def seeds(self, ns) -> list[np.ndarray]:
        return seeds.seeds_z(ns, self.z_dim)

    def random(self) -> np.ndarray:
        return np.random.default_rng().standard_normal(self.z_dim).astype(np.float32)

    slerp = staticmethod(paths.slerp)

    def walk(self, keys, position: float, ease: str = "linear", closed: bool = True) -> np.ndarray:
        return paths.walk(keys, position, ease=ease, closed=closed)

    def mix(self, keys, weights, sharpness: float = 1.0) -> np.ndarray:
        """Keys blended by weights (``p.mix(p.keys, s["audio.chroma"])``), kept on the shell."""
        return paths.mix(keys, weights, sharpness)

    def loop(self, keys, beats: float | None = None, seconds: float | None = None,
             phase: float = 0.0, ease: str = "linear") -> np.ndarray:
        """A closed slerp loop through ``keys``, once around every ``beats`` beats
        (tempo-locked) or every ``seconds`` seconds. Default: 4 beats per key."""
        if beats is not None and seconds is not None:
            raise ValueError("loop takes beats= or seconds=, not both")
        if seconds is not None:
            pos = self._ft.time / seconds
        else:
            pos = self._ft.beat / (beats if beats is not None else 4.0 * len(keys))
        return paths.loop(keys, pos + phase, ease=ease)

    # signal shaping
    def smooth(self, tau: float, initial=None) -> ops.Smooth:
        return ops.Smooth(self._ft, tau, initial)

    def follow(self, attack: float, release: float, initial=0.0) -> ops.AttackRelease:
        return ops.AttackRelease(self._ft, attack, release, initial)

    def envelope(self, attack: float = 0.005, decay: float = 0.3) -> ops.Envelope:
        return ops.Envelope(self._ft, attack, decay)

    def lfo(self, shape: str = "sine", beats: float | None = None, seconds: float | None = None,
            phase: float = 0.0, seed: int = 0) -> ops.LFO:
        return ops.LFO(self._ft, shape, beats=beats, seconds=seconds, phase=phase, seed=seed)

    remap = staticmethod(ops.remap)
    curve = staticmethod(ops.curve)

    # parameters (engine/patching/params.py): live-settable from OSC, OSCQuery and MIDI
    def param(self, name: str, default: float = 0.5, lo: float = 0.0, hi: float = 1.0,
              smooth: float = 0.0, description: str = "") -> float:
        """The current value of the named parameter, in lo..hi: declared on first use,
        published as /vj/param/<name>, bindable to any signal in the mappings file."""
        return self._params.declare(name, default, lo, hi, smooth, description).value

    def age(self, name: str) -> float:
        """Seconds since the signal ``name`` was last updated (inf if never): for streams that stall."""
        t = self.s.times.get(name) if self.s is not None else None
        return float("inf") if t is None else max(0.0, time.monotonic() - t)

    # output
    def controls(self, z=None, w=None, ws=None, psi: float = 1.0, noise="const", c=None,
                 transform=None, **post) -> Controls:
        return Controls(z=z, w=w, ws=ws, psi=psi, noise=noise, c=c, transform=transform, post=post)

    @staticmethod
    def transform(translate=(0.0, 0.0), rotate: float = 0.0) -> np.ndarray:
        """StyleGAN3's input transform: move the picture by ``translate`` (image widths, x
        right, y down) and turn it by ``rotate`` radians; pass it as ``p.controls(transform=...)``.
        Other models ignore it."""
        from engine.generators.stylegan3 import make_transform
        return make_transform(translate, rotate).numpy()

    def log(self, message: str) -> None:
        """Show a message on the console and the HUD (once per distinct message)."""
        self._report(f"{self.name}: {message}")
