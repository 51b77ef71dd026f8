"""Splitting an offline render into chunks that render apart and join frame-exact.

Frames are not independent: a patch carries state from frame to frame, and the feedback pass
keeps the previous output. So a chunk starting at frame ``s`` is rendered in three steps:

1. **fast-forward** frames ``0 .. s - w - 1`` through the front stages only (clock,
   parameters, set, patch: ``Engine.fast_forward``), which is cheap;
2. **warm up** frames ``s - w .. s - 1`` in full, not recorded, so the feedback pass holds
   what it would hold in a single-process render;
3. render and record ``s .. e - 1``.

The warm-up ``w`` is computed, not guessed: the feedback pass keeps ``amount`` of its history
each frame, so after the frames before ``s`` the history of frame ``s - w - 1`` is weighted
by the product of their amounts. ``warmup`` walks back from ``s`` until that product is below
``RESIDUAL`` (1/512: under half a level of 8-bit colour), over the amounts a patch-only pass
found (``feedback_amount``). A frame without feedback leaves the history untouched, so it
neither counts nor ends the walk. Without feedback a chunk needs no warm-up at all.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

RESIDUAL = 1.0 / 512
MAX_WARMUP = 1800          # frames (a minute at 30 fps): beyond it the residual is reported instead
TARGET_OVERHEAD = 0.05     # of the work: warm-up frames rendered twice


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int        # first frame recorded
    end: int          # one past the last
    warmup: int       # frames rendered before ``start`` and not kept

    @property
    def frames(self) -> int:
        return self.end - self.start

    @property
    def name(self) -> str:
        return f"chunk-{self.start:07d}-{self.end:07d}"


def feedback_amount(posts, dt: float) -> float:
    """What one frame keeps of the feedback history: the shader chain's own arithmetic
    (engine/render/post.py), the largest over the frame's layers."""
    best = 0.0
    k = min(max(dt, 0.0), 0.5) * 30.0 or 1.0
    for post in posts:
        fb = float(post.get("feedback", 0.0))
        if fb > 0.0:
            best = max(best, min(fb, 0.999) ** k)
    return best


def warmup(amounts: list[float], start: int, residual: float = RESIDUAL, cap: int = MAX_WARMUP) -> int:
    """Frames to render before ``start`` so the feedback history matches a whole render's."""
    left, seen = 1.0, False
    for j in range(start - 1, max(-1, start - 1 - cap), -1):
        a = amounts[j]
        if a <= 0.0:
            continue
        seen = True
        left *= a
        if left < residual:
            return start - j
    return min(start, cap) if seen else 0   # no feedback before the chunk: its history is black either way


def residual_after(amounts: list[float], start: int, w: int) -> float:
    """The weight the history before the warm-up keeps at ``start`` (0 when the warm-up reaches frame 0)."""
    if w >= start:
        return 0.0
    return math.prod(a for a in amounts[start - w:start] if a > 0.0)


def plan(n_frames: int, workers: int, amounts: list[float], per_worker: int = 2,
         keyframes: int = 1) -> tuple[list[Chunk], float]:
    """Chunks for ``workers``, and the warm-up overhead (warm-up frames over recorded ones).

    Starts with ``per_worker`` chunks per worker (a retried chunk then costs half a worker's
    share, not all of it) and merges down to one chunk per worker while the warm-up would
    cost more than TARGET_OVERHEAD of the work. Chunks start on multiples of ``keyframes``
    (the encoder's keyframe interval), so each chunk's video is made of whole groups of
    pictures and encodes as it would in one piece."""
    workers = max(1, int(workers))
    k = max(1, int(keyframes))
    chunks = []
    for count in range(max(1, workers * per_worker), 0, -1):
        count = max(1, min(count, n_frames // k))
        bounds = sorted({min(n_frames, k * round(i * n_frames / count / k)) for i in range(count)} | {n_frames})
        if bounds[0] != 0:
            bounds.insert(0, 0)
        count = len(bounds) - 1
        chunks = [Chunk(i, bounds[i], bounds[i + 1], warmup(amounts, bounds[i]) if bounds[i] else 0)
                  for i in range(count)]
        overhead = sum(c.warmup for c in chunks) / max(1, n_frames)
        if overhead <= TARGET_OVERHEAD or count <= workers:
            return chunks, overhead
    return chunks, sum(c.warmup for c in chunks) / max(1, n_frames)
