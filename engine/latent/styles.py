"""Per-layer styles (ws [num_ws, w_dim]): style mixing and truncation on NumPy arrays, for
patches (the generator's own tensor versions live in engine/generators/base.py).

StyleGAN's early layers set the coarse shape (pose, layout), the middle ones features and the
late ones colour and texture, so taking some layers from another latent transfers just that
aspect. Truncation pulls a latent towards a centre: the model's average style tames wild
samples; any other latent (a bookmark) as the centre is a leash that keeps the picture near it.
"""
from __future__ import annotations

import numpy as np


def as_ws(x, num_ws: int) -> np.ndarray:
    """``x`` as ws [num_ws, w_dim]: a single w is repeated for every layer."""
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        return np.broadcast_to(a, (int(num_ws), a.shape[0])).copy()
    if a.ndim == 2 and a.shape[0] == int(num_ws):
        return a.copy()
    raise ValueError(f"expected w [w_dim] or ws [{num_ws}, w_dim], got shape {a.shape}")


def layer_index(layers, crossover: int | None, num_ws: int) -> np.ndarray:
    """The layers (indices, coarse first) chosen by ``layers`` (a slice, range or list of
    indices, negative counting from the end) or ``crossover`` (layers k and up)."""
    if (layers is None) == (crossover is None):
        raise ValueError("give layers= (a slice, range or list) or crossover= (a layer index), one of them")
    all_layers = np.arange(int(num_ws))
    if crossover is not None:
        k = int(crossover)
        if not 0 <= k <= num_ws:
            raise ValueError(f"crossover must be 0..{num_ws}, got {k}")
        return all_layers[k:]
    if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
        raise ValueError(f"layers={layers} is ambiguous: write [{layers}] for one layer or crossover={layers}")
    if isinstance(layers, slice):
        return all_layers[layers]
    idx = np.asarray(list(layers), dtype=np.int64).reshape(-1)
    if np.any(idx >= num_ws) or np.any(idx < -num_ws):
        raise ValueError(f"layers {idx.tolist()} outside 0..{num_ws - 1}")
    return all_layers[idx]


def mix(a, b, layers=None, crossover: int | None = None, amount: float = 1.0, num_ws: int | None = None) -> np.ndarray:
    """``a`` with the chosen layers taken from ``b`` (``amount`` < 1 goes only part way, for a
    fade). ``a`` and ``b`` are ws [num_ws, w_dim] or w [w_dim] (repeated per layer; then
    ``num_ws`` says how many layers when neither is a ws)."""
    arrays = [np.asarray(x, dtype=np.float32) for x in (a, b)]
    if num_ws is None:
        two_d = [x.shape[0] for x in arrays if x.ndim == 2]
        if not two_d:
            raise ValueError("mix: give num_ws when both latents are single w")
        num_ws = two_d[0]
    a, b = as_ws(arrays[0], num_ws), as_ws(arrays[1], num_ws)
    if a.shape != b.shape:
        raise ValueError(f"mix: shapes {a.shape} and {b.shape} differ")
    idx = layer_index(layers, crossover, num_ws)
    amount = float(amount)
    if amount == 1.0:
        a[idx] = b[idx]
    else:
        a[idx] = a[idx] + amount * (b[idx] - a[idx])
    return a


def truncate(ws, psi: float, toward, layers=None) -> np.ndarray:
    """``toward + psi * (ws - toward)``: psi 1 leaves ``ws`` alone, 0 gives ``toward`` exactly,
    in between pulls towards it, above 1 exaggerates away from it. ``toward`` is the average
    style or any w / ws; ``layers`` (a slice or list) limits it to those layers of a ws."""
    x = np.asarray(ws, dtype=np.float32)
    t = np.asarray(toward, dtype=np.float32)
    if np.broadcast_shapes(t.shape, x.shape) != x.shape:
        raise ValueError(f"truncate: a centre of shape {t.shape} does not fit a latent of shape {x.shape}")
    psi = float(psi)
    if psi == 1.0:
        return x.copy()  # exactly as given: t + (x - t) can differ from x in the last bit
    t = np.broadcast_to(t, x.shape)
    out = t + np.float32(psi) * (x - t)
    if layers is not None:
        if x.ndim != 2:
            raise ValueError("truncate: layers= needs a ws [num_ws, w_dim]")
        keep = np.ones(x.shape[0], dtype=bool)
        keep[layer_index(layers, None, x.shape[0])] = False
        out[keep] = x[keep]
    return out.astype(np.float32)
