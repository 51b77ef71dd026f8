"""Small stateful building blocks for patches: smoothers, envelopes, LFOs, mappings.

Each stateful op reads the frame's time step from the patch context it was made by
(``p.smooth(0.1)`` and friends), so its behaviour in seconds does not depend on the
frame rate. All of them accept plain floats or NumPy arrays.
"""
from __future__ import annotations

import math

import numpy as np


class FrameTime:
    """What ops need to know about the current frame; the patch host updates it."""

    dt: float = 0.0
    time: float = 0.0
    beat: float = 0.0
    bpm: float = 120.0
    beats_per_bar: int = 4


def _num(x):
    """Lists and tuples (a default like ``[0.0] * 12``) become arrays; the rest as is."""
    return np.asarray(x, dtype=np.float64) if isinstance(x, (list, tuple)) else x


def _alpha(dt: float, tau: float) -> float:
    return 1.0 if tau <= 0 else 1.0 - math.exp(-dt / tau)


class Smooth:
    """One-pole low-pass: moves towards the input with time constant ``tau`` seconds."""

    def __init__(self, ft: FrameTime, tau: float, initial=None):
        self.ft, self.tau, self.value = ft, float(tau), initial

    def __call__(self, x):
        x = _num(x)
        if self.value is None:
            self.value = x
        else:
            self.value = self.value + (x - self.value) * _alpha(self.ft.dt, self.tau)
        return self.value


class AttackRelease:
    """Follows rises with time constant ``attack`` and falls with ``release`` (seconds)."""

    def __init__(self, ft: FrameTime, attack: float, release: float, initial=0.0):
        self.ft, self.attack, self.release, self.value = ft, float(attack), float(release), initial

    def __call__(self, x):
        x = _num(x)
        up = np.asarray(x) > np.asarray(self.value)
        a_up, a_down = _alpha(self.ft.dt, self.attack), _alpha(self.ft.dt, self.release)
        a = np.where(up, a_up, a_down) if np.ndim(up) else (a_up if up else a_down)
        self.value = self.value + (x - self.value) * a
        return self.value


class Envelope:
    """Attack/decay envelope fired by events: ``env(s.fired("audio.onset"))`` each frame.

    A trigger value above 0 (True counts as 1) starts the attack towards that level;
    afterwards it decays exponentially with time constant ``decay``."""

    def __init__(self, ft: FrameTime, attack: float = 0.005, decay: float = 0.3):
        self.ft, self.attack, self.decay = ft, float(attack), float(decay)
        self.value, self.target, self.rising = 0.0, 0.0, False

    def trigger(self, level: float = 1.0) -> None:
        self.target, self.rising = float(level), True

    def __call__(self, trigger=None) -> float:
        if trigger:
            self.trigger(1.0 if trigger is True else float(trigger))
        dt = self.ft.dt
        if self.rising:
            step = dt / self.attack if self.attack > 0 else 1.0
            self.value = min(self.target, self.value + step * self.target)
            if self.value >= self.target:
                self.rising = False
        else:
            self.value *= math.exp(-dt / self.decay) if self.decay > 0 else 0.0
        return self.value


def _hash01(n: int, seed: int) -> float:
    return float(np.random.default_rng((seed, n)).random())


LFO_SHAPES = ("sine", "saw", "square", "triangle", "random")


class LFO:
    """A 0..1 oscillator locked to the beat (``beats=``) or to seconds (``seconds=``).

    ``random`` is a smooth random walk: a new random level every period, eased
    between with a cosine, the same sequence for the same seed."""

    def __init__(self, ft: FrameTime, shape: str = "sine", beats: float | None = None,
                 seconds: float | None = None, phase: float = 0.0, seed: int = 0):
        if shape not in LFO_SHAPES:
            raise ValueError(f"unknown LFO shape {shape!r}; choose from {', '.join(LFO_SHAPES)}")
        if beats is not None and seconds is not None:
            raise ValueError("give an LFO either beats= or seconds=, not both")
        if beats is None and seconds is None:
            beats = 4.0
        self.ft, self.shape, self.beats, self.seconds = ft, shape, beats, seconds
        self.phase0, self.seed = float(phase), int(seed)

    def position(self) -> float:
        if self.beats is not None:
            return self.ft.beat / self.beats + self.phase0
        return self.ft.time / self.seconds + self.phase0

    def __call__(self) -> float:
        pos = self.position()
        ph = pos % 1.0
        if self.shape == "sine":
            return 0.5 - 0.5 * math.cos(2.0 * math.pi * ph)
        if self.shape == "saw":
            return ph
        if self.shape == "square":
            return 1.0 if ph < 0.5 else 0.0
        if self.shape == "triangle":
            return 1.0 - abs(2.0 * ph - 1.0)
        n = math.floor(pos)
        a, b = _hash01(n, self.seed), _hash01(n + 1, self.seed)
        t = 0.5 - 0.5 * math.cos(math.pi * ph)
        return a + (b - a) * t


CURVES = {
    "linear": lambda x: x,
    "exp": lambda x: x * x,
    "log": lambda x: np.sqrt(x),
    "smooth": lambda x: x * x * (3 - 2 * x),
    "cubic": lambda x: x * x * x,
}


def curve(x, shape: str | float = "linear"):
    """Shape a 0..1 value: a named curve, or a number used as an exponent (gamma)."""
    x = np.clip(x, 0.0, 1.0)
    if isinstance(shape, (int, float)):
        return np.power(x, float(shape))
    return CURVES[shape](x)


def remap(x, in_lo: float = 0.0, in_hi: float = 1.0, out_lo: float = 0.0, out_hi: float = 1.0,
          shape: str | float = "linear", clamp: bool = True):
    """Map ``x`` from [in_lo, in_hi] to [out_lo, out_hi] through a curve. Curves other
    than linear are defined on 0..1, so they always clamp; ``clamp=False`` lets a
    linear map extrapolate."""
    span = in_hi - in_lo
    u = (x - in_lo) / span if span else x * 0.0
    if clamp or shape != "linear":
        u = curve(u, shape)
    out = out_lo + (out_hi - out_lo) * u
    return float(out) if np.ndim(out) == 0 else out
