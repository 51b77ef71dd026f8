"""Seeded latents: the same seed gives the same z on every machine and every run."""
from __future__ import annotations

import numpy as np


def seed_z(seed: int, dim: int) -> np.ndarray:
    """Standard normal z from a seed (NumPy's PCG64, independent of torch and device)."""
    return np.random.default_rng(int(seed)).standard_normal(dim).astype(np.float32)


def seeds_z(seeds, dim: int) -> list[np.ndarray]:
    return [seed_z(s, dim) for s in seeds]
