"""``LatentSpace``: what patches may ask of the running model (w from z, the average style,
its principal directions) without touching the generator or the GPU themselves.

One per loaded model, shared by every version of a patch (it is an engine attribute of ``p``,
not patch state). Answers are NumPy float32 on the host: patches do arithmetic on them and
hand them back as controls. Principal directions are computed once, on first use, under a
lock (a patch's frame thread and a reload's setup thread may both ask), and cached on disk
under the caller's key, so the next run with the same model file only loads them.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from engine.latent import directions as dirs


class LatentSpace:
    """Built from a GeneratorRunner-like ``runner`` (``.info``, ``.styles(z=, w=, ws=, psi=)``
    returning [N, num_ws, w_dim]) and ``key``, a string that names the model's weights (e.g. a
    content hash of its file): directions computed for one key are never used for another."""

    def __init__(self, runner, key: str, cache_dir=None, samples: int = 10_000, batch: int = 1000,
                 seed: int = 0, on_message=None, saved_dir=None, bookmarks=None):
        if not isinstance(key, str) or not key:
            raise ValueError("LatentSpace needs a non-empty key naming the model's weights")
        self.runner = runner
        self.info = runner.info
        self.key = key
        self.cache_dir = Path(cache_dir) if cache_dir is not None else dirs.default_cache_dir()
        # what the user saves is theirs, not a cache's: the state folder when the session has one
        self.saved_dir = Path(saved_dir) if saved_dir is not None else None
        self.bookmarks = bookmarks   # name -> this model's bookmarked ws (engine/show/bookmark_stage.py), or None
        self.samples, self.batch, self.seed = int(samples), int(batch), int(seed)
        self._say = on_message or (lambda msg: None)
        self._lock = threading.Lock()
        self._principal: dirs.Principal | None = None
        self._w_avg: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.info.num_ws, self.info.w_dim

    def _styles(self, **kw) -> np.ndarray:
        with torch.no_grad():
            out = self.runner.styles(**kw)
        if torch.is_tensor(out):
            out = out.detach().float().cpu().numpy()
        return np.asarray(out, dtype=np.float32)

    def ws(self, z, psi: float = 1.0) -> np.ndarray:
        """The per-layer styles [num_ws, w_dim] of one z (truncated by ``psi`` towards w_avg)."""
        return self._styles(z=np.asarray(z, dtype=np.float32).reshape(1, -1), psi=psi)[0]

    def w(self, z, psi: float = 1.0) -> np.ndarray:
        """The style [w_dim] of one z: the mapping gives every layer the same w (layer 0's)."""
        return self.ws(z, psi)[0]

    @property
    def w_avg(self) -> np.ndarray:
        """The average style truncation pulls towards (the origin for models without a mapping)."""
        if self._w_avg is None:
            # psi = 0 is pure truncation: whatever w goes in, the average style comes out
            avg = self._styles(w=np.zeros(self.info.w_dim, dtype=np.float32), psi=0.0)[0, 0]
            avg.setflags(write=False)
            self._w_avg = avg
        return self._w_avg

    def _map_w(self, z: np.ndarray) -> np.ndarray:
        return self._styles(z=z)[:, 0]

    def principal(self) -> dirs.Principal:
        """All principal directions (loaded or computed on first use; see engine/latent/directions.py)."""
        if self._principal is None:
            with self._lock:
                if self._principal is None:
                    p = dirs.principal_directions(
                        self.key, self._map_w, self.info.z_dim, self.cache_dir, n=self.samples, seed=self.seed,
                        batch=self.batch,
                        on_compute=lambda path: self._say(f"computing principal directions "
                                                          f"({self.samples} samples) into {path}"))
                    for a in (p.directions, p.variances, p.mean):
                        a.setflags(write=False)
                    self._principal = p
        return self._principal

    prepare = principal  # e.g. from a background thread before the show

    def directions(self, k: int | None = None) -> np.ndarray:
        """The first ``k`` unit principal directions [k, w_dim], strongest first (all if None)."""
        return self.principal().top(k)

    def variances(self, k: int | None = None) -> np.ndarray:
        v = self.principal().variances
        return v if k is None else v[:k]

    def direction(self, i: int) -> np.ndarray:
        d = self.principal().directions
        if not -len(d) <= int(i) < len(d):
            raise IndexError(f"principal direction {i} out of range (this model has {len(d)})")
        return d[int(i)]

    def random_directions(self, k: int, seed: int = 0) -> np.ndarray:
        return dirs.random_directions(k, self.info.w_dim, seed)

    def _named_folder(self) -> Path:
        if self.saved_dir is not None:
            return self.saved_dir
        return self.cache_dir / "named" / dirs._key_name(self.key, 0, 0)

    def bookmark(self, name: str) -> np.ndarray:
        """The styles [num_ws, w_dim] of this model's bookmark ``name`` (KeyError if there is none)."""
        if self.bookmarks is None:
            raise KeyError(f"bookmark {name!r}: this engine keeps no bookmarks (no state folder)")
        return self.bookmarks(name)

    def save_direction(self, name: str, vector) -> Path:
        """Keep ``vector`` (a w-space edit) under ``name`` for this model."""
        v = np.asarray(vector, dtype=np.float32)
        if v.shape not in ((self.info.w_dim,), self.shape):
            raise ValueError(f"direction {name!r} must be [{self.info.w_dim}] or {list(self.shape)}, "
                             f"got {list(v.shape)}")
        return dirs.save_direction(self._named_folder(), name, v)

    def direction_named(self, name: str) -> np.ndarray:
        return dirs.load_direction(self._named_folder(), name, self.shape)

    def named_directions(self) -> list[str]:
        return dirs.named_directions(self._named_folder())
