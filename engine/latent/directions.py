"""Directions in w space: principal components of the model's own styles (GANSpace),
random orthonormal directions, and directions a user named and saved.

Principal directions come from sampling many z, mapping them to w and taking the PCA of
those w: the first components are where the model's styles vary most, which usually means
big, visible changes (pose, zoom, colour) along ``w + amount * direction``. Sampling and
mapping 10,000 latents takes a second or so on a CPU, so the result is kept on disk per model
(the caller's key, e.g. a content hash of the model file) and later runs load it.

Files are written atomically (a temporary file, fsync, ``os.replace``), so a crash never
leaves half a file under the real name; a file that is damaged anyway (truncated, edited,
wrong shapes, NaN) is treated as missing: recomputed and rewritten, never trusted.
"""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from engine import atomic

FORMAT = 1
MAX_NAME = 64


def cache_root() -> Path:
    """The engine's cache folder: ``$VJ_CACHE``, else ``$XDG_CACHE_HOME/vj``, else ``~/.cache/vj``."""
    env = os.environ.get("VJ_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "vj"


def default_cache_dir() -> Path:
    return cache_root() / "directions"


@dataclass(frozen=True)
class Principal:
    """PCA of sampled styles: ``directions`` [k, w_dim] orthonormal rows, strongest first;
    ``variances`` [k] (decreasing) the variance of the samples along each; ``mean`` [w_dim]."""
    directions: np.ndarray
    variances: np.ndarray
    mean: np.ndarray

    def top(self, k: int | None) -> np.ndarray:
        return self.directions if k is None else self.directions[:k]


def pca(samples, k: int | None = None) -> Principal:
    """Principal directions of ``samples`` [N, dim] by SVD of the centred matrix (float64).
    Each direction's sign is fixed (its largest component positive) so that the same samples
    give the same directions on every machine, whatever sign LAPACK happens to return."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"pca needs samples [N >= 2, dim], got {x.shape}")
    mean = x.mean(axis=0)
    _, sv, vt = np.linalg.svd(x - mean, full_matrices=False)
    if k is not None:
        vt, sv = vt[:k], sv[:k]
    big = np.argmax(np.abs(vt), axis=1)
    vt = vt * np.sign(vt[np.arange(len(vt)), big])[:, None]
    variances = sv ** 2 / (x.shape[0] - 1)
    return Principal(vt.astype(np.float32), variances.astype(np.float32), mean.astype(np.float32))


def sample_w(map_w, z_dim: int, n: int = 10_000, seed: int = 0, batch: int = 1000) -> np.ndarray:
    """``n`` styles [n, w_dim] from seeded z, mapped ``batch`` at a time by ``map_w`` (a
    function from z [B, z_dim] float32 to w [B, w_dim]), so memory stays bounded."""
    rng = np.random.default_rng(int(seed))
    out = []
    for start in range(0, int(n), int(batch)):
        z = rng.standard_normal((min(int(batch), int(n) - start), int(z_dim))).astype(np.float32)
        out.append(np.asarray(map_w(z), dtype=np.float32))
    return np.concatenate(out, axis=0)


def random_directions(k: int, dim: int, seed: int = 0) -> np.ndarray:
    """``k`` random unit directions [k, dim], orthonormal (QR of seeded Gaussians), so moving
    along one does not also move along another; the same seed gives the same set."""
    k, dim = int(k), int(dim)
    if not 1 <= k <= dim:
        raise ValueError(f"random_directions: k must be 1..{dim}, got {k}")
    g = np.random.default_rng(int(seed)).standard_normal((dim, k))
    q, r = np.linalg.qr(g)
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)  # unique QR: the directions follow the draws
    return q.T.astype(np.float32)


# --------------------------------------------------------------------------- files
def _atomic_save(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic.replace(path, buf.getvalue())


def _load(path: Path) -> dict | None:
    """The arrays of an .npz, or None when it is missing or unreadable (never unpickles)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None


def _key_name(key: str, n: int, seed: int) -> str:
    return hashlib.sha256(f"{key}\0{n}\0{seed}".encode()).hexdigest()[:32]


def _valid(data: dict | None, key: str, n: int, seed: int) -> Principal | None:
    if data is None:
        return None
    try:
        d, v, m = data["directions"], data["variances"], data["mean"]
        if (int(data["format"]) != FORMAT or str(data["key"]) != key or int(data["samples"]) != n
                or int(data["seed"]) != seed):
            return None
    except (KeyError, ValueError, TypeError):
        return None
    if (d.ndim != 2 or v.shape != (d.shape[0],) or m.shape != (d.shape[1],) or d.shape[0] < 1
            or not all(a.dtype.kind == "f" for a in (d, v, m))
            or not all(np.all(np.isfinite(a)) for a in (d, v, m))):
        return None
    d = d.astype(np.float32)
    # a file edited by hand can have the right shapes and still be nonsense: check the promise
    if (np.abs(d @ d.T - np.eye(d.shape[0])).max() > 1e-3 or np.any(v < 0)
            or np.any(np.diff(v) > 1e-6 * max(1.0, float(v[0])))):
        return None
    return Principal(d, v.astype(np.float32), m.astype(np.float32))


def principal_directions(key: str, map_w, z_dim: int, cache_dir=None, n: int = 10_000, seed: int = 0,
                         batch: int = 1000, on_compute=None) -> Principal:
    """All principal directions of the model behind ``map_w`` (see :func:`sample_w`), from the
    cache when a sound file for (``key``, ``n``, ``seed``) is there, else computed and saved.
    ``on_compute`` is told when a computation starts (it can take a while)."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"pca-{_key_name(key, n, seed)}.npz"
    found = _valid(_load(path), key, n, seed)
    if found is not None:
        return found
    if on_compute is not None:
        on_compute(path)
    result = pca(sample_w(map_w, z_dim, n, seed, batch))
    try:
        _atomic_save(path, format=np.int64(FORMAT), key=np.array(key), samples=np.int64(n), seed=np.int64(seed),
                     directions=result.directions, variances=result.variances, mean=result.mean)
    except OSError:
        pass  # a read-only cache costs a recomputation next time, nothing else
    return result


# --------------------------------------------------------------------------- named directions
def check_name(name) -> str:
    """A direction's name: printable, 1..64 characters, no path separators, not . or .."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or not name.isprintable():
        raise ValueError(f"a direction name must be 1..{MAX_NAME} printable characters, got {name!r}")
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if any(s in name for s in seps) or name in (".", ".."):
        raise ValueError(f"a direction name cannot contain a path separator or be . or ..: {name!r}")
    return name


def _named_path(folder: Path, name: str) -> Path:
    # percent-encode everything but plain characters: a name stays readable yet is a safe file name anywhere
    return Path(folder) / f"{quote(check_name(name), safe=' -_.')}.npz"


def save_direction(folder, name: str, vector) -> Path:
    v = np.asarray(vector, dtype=np.float32)
    if v.ndim not in (1, 2) or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"direction {name!r} must be a finite w [w_dim] or ws [num_ws, w_dim], got shape {v.shape}")
    path = _named_path(folder, name)
    _atomic_save(path, format=np.int64(FORMAT), name=np.array(name), vector=v)
    return path


def load_direction(folder, name: str, shape=None) -> np.ndarray:
    """The saved direction ``name``; KeyError when there is none (or its file is damaged or
    does not fit ``shape``, the model's w or ws shape)."""
    data = _load(_named_path(folder, name))
    if data is None or "vector" not in data:
        raise KeyError(f"no saved direction named {name!r}")
    v = data["vector"]
    ok = (v.dtype.kind == "f" and v.ndim in (1, 2) and v.size > 0 and np.all(np.isfinite(v))
          and str(data.get("name", "")) == name)
    if ok and shape is not None:
        ok = v.shape == tuple(shape) or v.shape == tuple(shape)[-1:]
    if not ok:
        raise KeyError(f"saved direction {name!r} is damaged or belongs to another model")
    return v.astype(np.float32)


def named_directions(folder) -> list[str]:
    out = []
    for f in sorted(Path(folder).glob("*.npz")) if Path(folder).is_dir() else ():
        data = _load(f)
        if data is not None and "name" in data:
            out.append(str(data["name"]))
    return out
