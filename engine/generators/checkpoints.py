"""Torch checkpoints (``torch.save`` files: ``.pt/.pth/.tar/.ckpt/.bin``, zip or legacy
format) read without ``torch.load``: ``load_checkpoint``.

Why bounded: ``torch.load`` unpickles ``data.pkl`` with an unpickler that imports and calls
whatever the file names, and takes a zip's declared sizes on trust. Here ``data.pkl`` is
read by ``CheckpointUnpickler``: the allow-list and limits of ``bounded_pickle`` plus
storage types and ``argparse.Namespace``. Every zip member's declared sizes are checked
against the file before anything is inflated (the *size* limit, and the *compression*
limit for deflated members), and each storage is read from its member no further than
its size. A legacy file is one ``torch.save`` stream, read as ``bounded_pickle`` reads a
tensor's storage blob.
"""
from __future__ import annotations

import argparse
import io
import pickle
import zipfile

import numpy as np
import torch

from engine.generators.bounded_pickle import (ALLOCATION_SLACK, Budget, LimitExceeded, _read_legacy, _safe_global,
                                              _storage_dtype, _Storages, _StorageUnpickler)

# ---------------------------------------------------------------- limits
# A compressed zip member may inflate this much (torch writes them stored, 1:1);
# members inflating to less than SMALL_MEMBER bytes are not held to it
MAX_INFLATION = 50
SMALL_MEMBER = 1 << 20


# ---------------------------------------------------------------- storages
class _ZipStorages(_Storages):
    """A zip checkpoint's: each read from its member ``<prefix>data/<key>``, which must
    declare exactly the storage's size, and is inflated no further than that."""

    def __init__(self, z: zipfile.ZipFile, prefix: str, budget: Budget):
        super().__init__(budget)
        self.z, self.prefix = z, prefix

    def make(self, key: str, nbytes: int) -> torch.Tensor:
        name = f"{self.prefix}data/{key}"
        try:
            info = self.z.getinfo(name)
        except KeyError:
            raise pickle.UnpicklingError(f"tensor storage {name} is missing") from None
        if info.file_size != nbytes:
            raise LimitExceeded("size", f"zip member {name} declares {info.file_size:,} bytes for a tensor "
                                f"storage of {nbytes:,}")
        self.budget.allocate(nbytes, f"tensor storage {name}", within=info.file_size)
        buf = torch.empty(nbytes, dtype=torch.uint8)
        if nbytes:
            with self.z.open(info) as member:
                _read_exactly(member, buf.numpy(), name)
        return buf


def _read_exactly(stream, out: np.ndarray, name: str) -> None:
    view, done = memoryview(out).cast("B"), 0
    while done < len(view):
        n = stream.readinto(view[done:done + (16 << 20)])  # a zip member reads through a copy: keep it small
        if not n:
            raise pickle.UnpicklingError(f"{name} is truncated")
        done += n


# ---------------------------------------------------------------- torch checkpoints
class CheckpointUnpickler(_StorageUnpickler):
    """``data.pkl`` of a ``torch.save`` file: the safe globals, storage types and
    ``argparse.Namespace`` (rosinality training checkpoints keep their arguments)."""

    def lookup(self, module: str, name: str):
        if (module, name) == ("argparse", "Namespace"):
            return argparse.Namespace
        return _storage_dtype(module, name) or _safe_global(module, name)


def _check_member(info: zipfile.ZipInfo, size: int) -> None:
    if info.header_offset + info.compress_size > size:
        raise LimitExceeded("size", f"zip member {info.filename} declares {info.compress_size:,} bytes, more than "
                            f"the {size:,}-byte file holds")
    if info.compress_type == zipfile.ZIP_STORED:
        if info.file_size != info.compress_size:
            raise pickle.UnpicklingError(f"zip member {info.filename}: stored sizes differ")
    elif info.file_size > max(SMALL_MEMBER, MAX_INFLATION * info.compress_size):
        raise LimitExceeded("compression", f"zip member {info.filename} declares {info.compress_size:,} bytes "
                            f"inflating to {info.file_size:,}, over {MAX_INFLATION}:1")


def _read_zip(path, size: int):
    """A zip ``torch.save`` file: every member's declared sizes checked against the file
    before anything is inflated, then ``data.pkl`` with storages read on demand."""
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        for info in infos:
            _check_member(info, size)
        pkl = [i for i in infos if i.filename.endswith("data.pkl") and i.filename.count("/") <= 1
               and i.filename.rsplit("/", 1)[-1] == "data.pkl"]
        if len(pkl) != 1:
            raise pickle.UnpicklingError("not a torch checkpoint (no single data.pkl)")
        prefix = pkl[0].filename[:-len("data.pkl")]
        if prefix + "byteorder" in z.namelist() and z.read(prefix + "byteorder").strip() != b"little":
            raise pickle.UnpicklingError("big-endian tensor storages")
        with z.open(pkl[0]) as member:
            data = member.read(pkl[0].file_size)
        stored = sum(i.file_size for i in infos if i.filename.startswith(prefix + "data/"))
        budget = Budget(len(data), allocation=stored + 2 * len(data) + ALLOCATION_SLACK)
        u = CheckpointUnpickler(io.BytesIO(data), budget)
        u.storages = _ZipStorages(z, prefix, budget)
        return u.load()


def load_checkpoint(path) -> object:
    """A ``torch.save`` file (zip or legacy), read with ``CheckpointUnpickler`` in the
    place of ``torch.load``: nothing from the file is run, and nothing is allocated
    beyond what the file's declared sizes, checked against the file, allow."""
    with open(path, "rb") as f:
        size = f.seek(0, io.SEEK_END)
        f.seek(0)
        if f.read(4) != b"PK\x03\x04":
            f.seek(0)
            return _read_legacy(CheckpointUnpickler(f))
    return _read_zip(path, size)
