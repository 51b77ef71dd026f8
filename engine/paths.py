"""Where the engine finds its shaders, models and patches.

The engine runs from a checkout (``pip install -e .``); ``VJ_HOME`` points it at
another tree holding ``shaders/``, ``models/`` and ``patches/``.
"""
import os
from pathlib import Path

ROOT = Path(os.environ.get("VJ_HOME") or Path(__file__).resolve().parent.parent)
SHADERS = ROOT / "shaders"
MODELS = ROOT / "models"
PATCHES = ROOT / "patches"
SETS = ROOT / "sets"


def file_stamp(path) -> tuple[int, int] | None:
    """(mtime in ns, size) of a file, or None if it is missing: what the live-reload
    watchers compare to notice an edit."""
    try:
        st = Path(path).stat()
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return None


def unused_path(path) -> Path:
    """``path`` if nothing is there, else the first free ``NAME-2.EXT``, ``NAME-3.EXT`` ...: what
    the user made is never overwritten by a new recording."""
    path = Path(path)
    if not path.exists():
        return path
    n = 2
    while True:
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not candidate.exists():
            return candidate
        n += 1
