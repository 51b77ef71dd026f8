"""Paths through latent space: spherical interpolation, keyframe walks and loops.

Gaussian latents live near a sphere; linear blends between two of them pass close to
the origin, where images wash out. Slerp keeps to the shell.
"""
from __future__ import annotations

import math

import numpy as np

EASES = {
    "linear": lambda t: t,
    "smooth": lambda t: t * t * (3.0 - 2.0 * t),
    "cosine": lambda t: 0.5 - 0.5 * math.cos(math.pi * t),
}


def _ease(name: str):
    """The easing function called ``name``; a ValueError that lists the choices for any other
    (the patch API, engine/patching/api.py, adds a did-you-mean before it gets here)."""
    try:
        return EASES[name]
    except (KeyError, TypeError):
        raise ValueError(f"ease={name!r} is not a choice (choices: {', '.join(map(repr, EASES))})") from None


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < 1e-8 or nb < 1e-8:
        return (1.0 - t) * a + t * b
    cos = float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))
    omega = math.acos(cos)
    if omega < 1e-4:
        return (1.0 - t) * a + t * b
    s = math.sin(omega)
    return (math.sin((1.0 - t) * omega) / s) * a + (math.sin(t * omega) / s) * b


def walk(keys, position: float, ease: str = "linear", closed: bool = True) -> np.ndarray:
    """The point at ``position`` along the keyframes: 0 is keys[0], 1 is keys[1], and so on;
    a closed walk wraps from the last key back to the first."""
    n = len(keys)
    if n == 0:
        raise ValueError("walk needs at least one keyframe")
    if n == 1:
        return np.asarray(keys[0], dtype=np.float32)
    if closed:
        position %= n
    else:
        position = min(max(position, 0.0), n - 1.0)
    i = min(int(math.floor(position)), n - 1)
    j = (i + 1) % n if closed else min(i + 1, n - 1)
    frac = position - i
    return slerp(keys[i], keys[j], _ease(ease)(frac))


def loop(keys, phase: float, ease: str = "linear") -> np.ndarray:
    """A closed loop through all keys as ``phase`` goes 0..1 (and repeats)."""
    return walk(keys, (phase % 1.0) * len(keys), ease=ease, closed=True)


def mix(keys, weights, sharpness: float = 1.0) -> np.ndarray:
    """A blend of ``keys`` weighted by ``weights`` (e.g. 12 keyframes by ``audio.chroma``),
    rescaled to the keys' mean length so it stays on the shell where images are sharp.
    Weights are raised to ``sharpness`` first (> 1 favours the strongest); all-zero
    weights (silence) blend the keys equally."""
    keys = np.asarray(keys, dtype=np.float32)
    w = np.clip(np.asarray(weights, dtype=np.float64).reshape(-1), 0.0, None)
    if w.shape[0] != keys.shape[0]:
        raise ValueError(f"mix: {keys.shape[0]} keys but {w.shape[0]} weights")
    w = w ** sharpness
    total = w.sum()
    w = w / total if total > 1e-12 else np.full(len(w), 1.0 / len(w))
    out = np.tensordot(w, keys.astype(np.float64), axes=1)
    n = float(np.linalg.norm(out))
    target = float(np.mean(np.linalg.norm(keys.reshape(len(keys), -1), axis=1)))
    return (out * (target / n) if n > 1e-8 else out).astype(np.float32)


def _wrap01(phase: float) -> float:
    """``phase`` into [0, 1): 1.0, 2.0, -1.0 all become exactly 0.0. (Python's ``%`` maps a
    tiny negative number to 1.0 itself, which would break the loop's bit-exact seam.)"""
    phase = float(phase) % 1.0
    return 0.0 if phase >= 1.0 else phase


def spline(keys, position: float, closed: bool = True, shell: bool = True) -> np.ndarray:
    """A smooth curve through the keyframes (uniform Catmull-Rom): 0 is keys[0], 1 is
    keys[1], ... exactly, with no corner at a key (unlike :func:`walk`, whose direction jumps
    at every key). Closed wraps from the last key to the first; open clamps to the ends.

    ``shell`` (for z): the curve is rescaled to a length blended between its two keys', so it
    stays on the Gaussian shell instead of cutting inwards. Turn it off for w / ws keys,
    where length has no such meaning."""
    n = len(keys)
    if n == 0:
        raise ValueError("spline needs at least one keyframe")
    position = float(position)
    if not math.isfinite(position):
        raise ValueError(f"spline position must be finite, got {position}")
    if n == 1:
        return np.asarray(keys[0], dtype=np.float32).copy()
    if closed:
        position %= n
        if position >= n:
            position = 0.0
    else:
        position = min(max(position, 0.0), n - 1.0)
    i = min(int(math.floor(position)), n - 1)
    t = position - i
    if t == 0.0:
        return np.asarray(keys[i], dtype=np.float32).copy()

    def key(j: int) -> np.ndarray:
        if closed:
            j %= n
        else:
            j = min(max(j, 0), n - 1)
        return np.asarray(keys[j], dtype=np.float64)

    p0, p1, p2, p3 = key(i - 1), key(i), key(i + 1), key(i + 2)
    t2, t3 = t * t, t * t * t
    out = 0.5 * (2.0 * p1 + (p2 - p0) * t + (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3) * t2
                 + (3.0 * p1 - p0 - 3.0 * p2 + p3) * t3)
    if shell:
        n_out = float(np.linalg.norm(out))
        target = (1.0 - t) * float(np.linalg.norm(p1)) + t * float(np.linalg.norm(p2))
        if n_out > 1e-8:
            out *= target / n_out
    return out.astype(np.float32)


def circle(a, b, phase: float) -> np.ndarray:
    """``a cos 2πφ + b sin 2πφ``: a closed loop that starts (φ = 0) at ``a``. With ``a`` and
    ``b`` independent standard normal latents, every point of it is standard normal too
    (cos² + sin² = 1), so the whole loop looks like ordinary samples: no dull stretch."""
    ang = 2.0 * math.pi * _wrap01(phase)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * math.cos(ang) + b * math.sin(ang)).astype(np.float32)


def _loop_basis(seed: int, dim: int, harmonics: int) -> np.ndarray:
    """[2 * harmonics, dim] standard normals; row 0 is ``seed_z(seed, dim)`` (the same draws),
    so a one-harmonic loop starts at ``p.seed(seed)``."""
    return np.random.default_rng(int(seed)).standard_normal((2 * harmonics, dim))


def noise_loop(seed: int, phase: float, dim: int, harmonics: int = 1, falloff: float = 0.5) -> np.ndarray:
    """An exactly periodic random path: ``z(phase)`` with ``z(0)`` and ``z(1)`` bit-identical.

    A sum of ``harmonics`` circles (:func:`circle`), the k-th turning k times per lap with
    weight ``falloff**(k-1)``; the weights are normalised so their squares sum to 1, which keeps
    every point standard normal. One harmonic is a plain circle through ``seed``'s latent;
    more harmonics wander further (more distinct pictures per lap) at the cost of speed."""
    harmonics = int(harmonics)
    if harmonics < 1:
        raise ValueError("noise_loop needs at least one harmonic")
    basis = _loop_basis(seed, int(dim), harmonics)
    weights = np.array([float(falloff) ** k for k in range(harmonics)], dtype=np.float64)
    norm = float(np.sqrt(np.sum(weights ** 2)))
    if not norm > 0 or not math.isfinite(norm):
        raise ValueError(f"noise_loop falloff must be a non-zero finite number, got {falloff}")
    weights /= norm
    ph = _wrap01(phase)
    out = np.zeros(int(dim), dtype=np.float64)
    for k in range(harmonics):
        # k * ph stays in [0, k): reduce it again so the angle of each harmonic is exact at the seam
        ang = 2.0 * math.pi * _wrap01((k + 1) * ph)
        out += weights[k] * (basis[2 * k] * math.cos(ang) + basis[2 * k + 1] * math.sin(ang))
    return out.astype(np.float32)
