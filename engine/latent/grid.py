"""Seed grids: a 2-D map of seeds that a position (a hand, an XY pad, two knobs) walks over.

A fractional position blends the four seeds around it bilinearly. A plain weighted sum
of Gaussian latents is shorter than the latents themselves (their directions partly cancel),
which reads as a washed-out picture in the middle of every cell, so the blend is rescaled to
the weighted mean length of the four corners, the same cure as :func:`engine.latent.paths.mix`.
Because that target length is itself bilinear, the result is continuous across cell edges
and lands exactly on a seed's latent at integer positions.
"""
from __future__ import annotations

import math

import numpy as np

from engine.latent.seeds import seed_z


class SeedGrid:
    """``rows`` x ``cols`` seeds, filled row by row from ``seeds``; ``at(x, y)`` with x
    along a row (0..cols-1) and y down the columns (0..rows-1). Without ``wrap`` a position
    outside the grid is clamped to its edge; with ``wrap`` the grid tiles the plane, so the
    last column blends into the first (x = cols is x = 0 again)."""

    def __init__(self, seeds, cols: int, dim: int, wrap: bool = False):
        seeds = [int(s) for s in seeds]
        cols = int(cols)
        if cols < 1 or not seeds:
            raise ValueError("a seed grid needs at least one seed and one column")
        if len(seeds) % cols:
            raise ValueError(f"{len(seeds)} seeds do not fill rows of {cols}; give rows x cols seeds")
        self.seeds = seeds
        self.cols = cols
        self.rows = len(seeds) // cols
        self.dim = int(dim)
        self.wrap = bool(wrap)
        z = np.stack([seed_z(s, self.dim) for s in seeds]).reshape(self.rows, self.cols, self.dim)
        z.setflags(write=False)  # handed out by at(): a patch must not edit the grid through it
        self.z = z
        self._norms = np.linalg.norm(z.astype(np.float64), axis=2)

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.cols

    def _axis(self, v: float, n: int) -> tuple[int, int, float]:
        """The two neighbouring indices along one axis and the weight of the second."""
        v = float(v)
        if not math.isfinite(v):
            raise ValueError(f"grid position must be finite, got {v}")
        if self.wrap:
            v %= n
            if v >= n:  # a tiny negative v wraps to exactly n in floating point
                v = 0.0
        else:
            v = min(max(v, 0.0), n - 1.0)
        i = min(int(math.floor(v)), n - 1)
        f = v - i
        j = (i + 1) % n if self.wrap else min(i + 1, n - 1)
        return i, j, f

    def at(self, x: float, y: float) -> np.ndarray:
        """The latent at column ``x``, row ``y`` (fractions blend the four neighbours)."""
        c0, c1, fx = self._axis(x, self.cols)
        r0, r1, fy = self._axis(y, self.rows)
        if fx == 0.0 and fy == 0.0:
            return self.z[r0, c0].copy()
        corners = ((r0, c0, (1 - fx) * (1 - fy)), (r0, c1, fx * (1 - fy)),
                   (r1, c0, (1 - fx) * fy), (r1, c1, fx * fy))
        out = np.zeros(self.dim, dtype=np.float64)
        target = 0.0
        for r, c, wgt in corners:
            if wgt:
                out += wgt * self.z[r, c].astype(np.float64)
                target += wgt * self._norms[r, c]
        n = float(np.linalg.norm(out))
        if n > 1e-8:
            out *= target / n
        return out.astype(np.float32)

    __call__ = at


def grid_at(grid: SeedGrid, x: float, y: float) -> np.ndarray:
    return grid.at(x, y)
