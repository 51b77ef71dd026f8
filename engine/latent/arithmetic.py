"""Latent arithmetic: ``smiling - neutral + other`` style edits.

Do it in w (or ws) space. The mapping network untangles z, so there a difference of two
latents is roughly one attribute and adds onto a third; in z a sum of Gaussians falls off
the shell and the edit tends to change everything at once. Get w from ``p.w(z)`` /
``p.ws(z)`` (engine/latent/space.py) and hand the result back as ``p.controls(w=...)`` or
``ws=...``.
"""
from __future__ import annotations

import numpy as np


def _arr(x, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"combine: {what} is not finite")
    return a


def combine(base, plus=(), minus=(), scale: float = 1.0) -> np.ndarray:
    """``base + scale * (sum(plus) - sum(minus))``, float32, in ``base``'s shape.

    ``plus`` and ``minus`` are one latent or a list of them; a w [w_dim] term may be added to
    a ws [num_ws, w_dim] base (it applies to every layer), not the other way round."""
    out = _arr(base, "base").copy()
    delta = np.zeros_like(out)
    for sign, terms, what in ((1.0, plus, "plus"), (-1.0, minus, "minus")):
        if isinstance(terms, np.ndarray) and terms.ndim == out.ndim and terms.shape == out.shape:
            terms = [terms]  # one latent, not a list of rows
        elif isinstance(terms, np.ndarray) and terms.ndim == 1:
            terms = [terms]
        for term in terms:
            t = _arr(term, what)
            try:
                if np.broadcast_shapes(t.shape, out.shape) != out.shape:
                    raise ValueError
            except ValueError:
                raise ValueError(f"combine: a {what} latent of shape {t.shape} does not fit "
                                 f"the base's {out.shape}") from None
            delta += sign * t
    out += float(scale) * delta
    return out.astype(np.float32)


def difference(a, b) -> np.ndarray:
    """``a - b`` as a reusable edit (e.g. ``p.save_direction("smile", difference(smiling, neutral))``)."""
    return (_arr(a, "a") - _arr(b, "b")).astype(np.float32)
