"""Writing what the user made without ever leaving half of it: a new file beside the old,
written whole, fsynced, read back and checked, then renamed over it, and the folder fsynced.

A crash or a power cut at any moment leaves the old file or the new one, never a mix. Used by
the mappings file, the state files (bookmarks, show state) and the direction cache.
"""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Callable


def fsync_dir(d) -> None:
    """Make the renames in folder ``d`` durable (not every file system lets a folder be fsynced)."""
    try:
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def unlink_quietly(p) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def temp_beside(target: Path) -> Path:
    """A fresh name in ``target``'s folder (so the rename stays on one file system)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_new(path, data: bytes, mode: int | None = None) -> None:
    """Create ``path`` (it must not exist), write all of ``data`` and fsync it. The file gets
    ``mode``, or 0666 less the umask like any file the user makes (mkstemp would give 0600,
    and reading the umask means setting it, for every thread)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(path, data: bytes, check: Callable[[bytes], None] | None = None,
            before: Callable[[], None] | None = None, temp: Callable[[Path], Path] = temp_beside) -> None:
    """Replace ``path`` with ``data`` atomically, keeping its mode. What was written is read back
    and compared, then given to ``check`` (which raises to refuse it) before anything is
    replaced; ``before()`` runs just before the rename (to keep a previous copy); ``temp`` names
    the file written first (its owner may clean up leftovers by that name). Through a
    symlink, the file it points at is replaced. Raises OSError (and whatever ``check`` raises)."""
    target = Path(os.path.realpath(path))
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    tmp = temp(target)
    try:
        write_new(tmp, data, mode)
        with open(tmp, "rb") as f:
            back = f.read(len(data) + 1)
        if back != data:
            raise OSError(0, f"{target.name}: what was written reads back different; not replaced")
        if check is not None:
            check(back)
        if before is not None:
            before()
        os.replace(tmp, target)
    except BaseException:
        unlink_quietly(tmp)
        raise
    fsync_dir(target.parent)
