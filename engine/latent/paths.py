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
    return slerp(keys[i], keys[j], EASES[ease](frac))


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
