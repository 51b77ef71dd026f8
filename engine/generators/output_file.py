"""Writing a model file the user will keep: a .safetensors written under a temporary name
beside its place, made readable as the umask says (safetensors creates its files
owner-only; a model is for sharing), flushed to disk, then given its name in one step. An
existing file is replaced only when asked; without that, a hard link takes the name, which
fails rather than replace a file that appeared meanwhile. A failure leaves nothing behind."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from engine import atomic


class FileTaken(Exception):
    """The name is taken (or was taken while writing) and replacing it was not asked for."""


def umask() -> int:
    """The process's umask, read without changing it where Linux tells it."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def place(tmp: Path, out: Path, overwrite: bool) -> None:
    """``tmp`` to ``out`` in one step (FileTaken when ``out`` exists and not ``overwrite``)."""
    if overwrite:
        os.replace(tmp, out)
        return
    try:
        os.link(tmp, out)
    except FileExistsError:
        raise FileTaken(str(out)) from None
    except OSError:  # a file system without hard links
        if out.exists():
            raise FileTaken(str(out)) from None
        os.replace(tmp, out)


def write_safetensors(tensors: dict, out, metadata: dict, overwrite: bool = False) -> Path:
    """``tensors`` with ``metadata`` as the safetensors file ``out``; raises FileTaken,
    OSError (a full disk) or what safetensors raises."""
    from safetensors.torch import save_file
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileTaken(str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o666 & ~umask())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # on disk before it takes the name
        place(tmp, out, overwrite)
        atomic.fsync_dir(out.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return out
