"""Unpickling data and tensors without running anything from the file, within limits set
by its size: the one reader every pickle goes through (an official ``.pkl``, a torch
checkpoint's ``data.pkl``, each tensor's nested storage blob).

Why bounded: a pickle is a program. Loaded the usual way it imports and calls whatever it
names (``os.system``, or the ``module_src`` of NVIDIA's persistence records), and even its
data-only op codes let a small file ask for gigabytes or hours. So:

- ``SafeUnpickler.find_class`` is an explicit allow-list. NVIDIA's persistence record
  becomes a ``PersistentObject`` (class name, state, and a fingerprint of the source,
  which is never run), ``dnnlib.util.EasyDict`` an ``EasyDict``, tensor storages are read
  with their own allow-list (``_load_storage``: never the unrestricted ``torch.load`` the
  original runs), and tensors, parameters, numpy arrays and scalars are rebuilt by their
  usual (data-only) functions. Any other global (``os.system``, ``builtins.eval``,
  ``subprocess.Popen``, an unknown module) is refused before it is looked up, with a
  ``RefusedPickle`` naming it.
- Every pickle is read by ``BoundedUnpickler`` against a ``Budget`` derived from the size
  of what it reads: the *structure* limit (op codes, and the objects counted as a tree),
  the *size* limit (no byte array, array, storage or tensor bigger than the file or member
  that has to hold it), the *allocation* limit (all of them together) and the *key* limit
  (nested tuples hashed as one dict key). A refusal is a ``LimitExceeded`` naming the
  limit and its figures.

The stand-ins for NVIDIA's classes live here because the allow-list returns them and the
unpickler walks and fills them. ``checkpoints`` reads ``torch.save`` files with the same
allow-list and limits; ``pickles`` makes sense of what an official pickle holds.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import io
import math
import pickle
import reprlib

import numpy as np
import torch


class RefusedPickle(pickle.UnpicklingError):
    """The pickle asked for something outside the allow-list; nothing was run."""

    def __init__(self, what: str):
        self.what = what
        super().__init__(f"refused to load {what}: the file asks to import or call it, and only tensor, "
                         f"array and plain-container rebuild functions are allowed (nothing from the file was run)")


# ---------------------------------------------------------------- what NVIDIA's classes become
class EasyDict(dict):
    """Stands in for ``dnnlib.util.EasyDict``: a dict with attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class PersistentObject:
    """Stands in for one persistent network object (Generator, SynthesisLayer, ...).

    Its class source code is kept only as a SHA-1 fingerprint; it is never executed."""

    def __init__(self, meta):
        if not isinstance(meta, dict) or meta.get("type") != "class":
            raise pickle.UnpicklingError("malformed persistence record")
        self.version = meta.get("version")
        if not isinstance(meta.get("class_name"), (str, type(None))):
            raise pickle.UnpicklingError("malformed persistence record")
        self.class_name = str(meta.get("class_name"))
        src = meta.get("module_src") or ""
        self.src_sha1 = hashlib.sha1(src.encode("utf-8", "replace")).hexdigest()
        self.state = meta.get("state") or {}
        if not isinstance(self.state, dict):
            raise pickle.UnpicklingError(f"malformed persistence record for {self.class_name}")

    def __repr__(self):
        return f"<{self.class_name} (persistent record, source {self.src_sha1[:8]} not run)>"

    def child(self, name: str):
        return (self.state.get("_modules") or {}).get(name)

    def children(self) -> dict:
        return dict(self.state.get("_modules") or {})

    def attr(self, name: str, default=None):
        return self.state.get(name, default)


class TFNetwork(dict):
    """Stands in for ``dnnlib.tflib.network.Network`` (TensorFlow-era pickles): its state dict."""

    def __setstate__(self, state):
        self.update(state if isinstance(state, dict) else {})


# ---------------------------------------------------------------- limits
# Objects and references a file's pickles may build: the floor, or one per this many
# bytes of a bigger file. Counted as a tree (each shared reference every time it is
# reached) the objects may not pass the same number: the config normaliser and the
# network walk read them as trees, so a small file of shared references ("billion
# laughs") would otherwise be expanded exponentially after it was read.
STRUCTURE_FLOOR = 1_000_000
BYTES_PER_OBJECT = 64
# Arrays, storages and byte strings made, all together: twice the file (a protocol-2
# pickle's bytes are encoded once on their way into a storage) plus this slack
ALLOCATION_SLACK = 1 << 20
# Nested tuples in one dict key or set item: hashing one walks them all, shared or not
KEY_ITEMS = 10_000


class LimitExceeded(pickle.UnpicklingError):
    """The file asks for more memory or work than a file of its size can need; refused
    before any of it was given."""

    def __init__(self, limit: str, detail: str):
        self.limit = limit
        super().__init__(f"{limit} limit: {detail}")


class Budget:
    """What reading one file may build and allocate, all derived from the file's size.
    A nested blob (a storage inside a pickle) has its own, and its ``parent``'s
    allocation pays for what it makes too."""

    def __init__(self, size: int, parent: Budget | None = None, allocation: int | None = None):
        self.size, self.parent = size, parent
        self.structure = max(STRUCTURE_FLOOR, size // BYTES_PER_OBJECT)
        self.allocation = 2 * size + ALLOCATION_SLACK if allocation is None else allocation
        self.built = self.allocated = 0

    def build(self) -> None:
        self.built += 1
        if self.built > self.structure:
            raise LimitExceeded("structure", f"the pickle builds more than {self.structure:,} objects and "
                                f"references (the limit for {self.size:,} bytes of pickle)")

    def allocate(self, nbytes: int, what: str, within: int | None = None) -> None:
        """Account for ``nbytes`` about to be allocated for ``what``, which has to come
        from ``within`` bytes of the file (default: all of it)."""
        within = self.size if within is None else within
        if not isinstance(nbytes, int) or nbytes < 0:
            raise pickle.UnpicklingError(f"{what} of a negative or non-integer size")
        if nbytes > within:
            raise LimitExceeded("size", f"{what} of {nbytes:,} bytes, from {within:,} bytes of file")
        b = self
        while b is not None:
            b.allocated += nbytes
            if b.allocated > b.allocation:
                raise LimitExceeded("allocation", f"{what} brings what the file makes to {b.allocated:,} bytes; "
                                    f"{b.size:,} bytes may make at most {b.allocation:,}")
            b = b.parent


def check_key(key) -> None:
    """Refuse a dict key or set item whose nested tuples are too many to hash."""
    if not isinstance(key, tuple):
        return
    stack, seen = [key], 0
    while stack:
        t = stack.pop()
        seen += len(t)
        if seen > KEY_ITEMS:
            raise LimitExceeded("key", f"a dict key or set item of more than {KEY_ITEMS:,} nested tuple items")
        stack.extend(x for x in t if isinstance(x, tuple))


def check_tree(obj, budget: Budget) -> None:
    """Refuse ``obj`` if walking it as a tree passes the structure limit (counting on
    the way in, so that the walk itself stays within it)."""
    stack, seen = [obj], 1
    while stack:
        o = stack.pop()
        if isinstance(o, PersistentObject):
            o = o.state
        elif isinstance(o, argparse.Namespace):
            o = vars(o)
        if isinstance(o, dict):
            parts = (o.keys(), o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            parts = (o,)
        else:
            continue
        for part in parts:
            seen += len(part)
            if seen > budget.structure:
                raise LimitExceeded("structure", f"its objects, counted each time one is referred to, pass "
                                    f"{budget.structure:,} (the limit for {budget.size:,} bytes of pickle)")
            stack.extend(part)


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 2, 40, 40


# ---------------------------------------------------------------- the unpickler
class _Source:
    """A seekable file whose reads may not ask for more than it has left, so that a
    length the file declares is checked before a buffer that long is made."""

    def __init__(self, f):
        self.f = f
        here = f.tell()
        self.size = f.seek(0, io.SEEK_END)
        f.seek(here)

    def left(self) -> int:
        return self.size - self.f.tell()

    def _check(self, n: int) -> None:
        if n > self.left():
            raise LimitExceeded("size", f"an item of {n:,} bytes is declared where the file has "
                                f"{self.left():,} left")

    def read(self, n: int) -> bytes:
        self._check(n)
        return self.f.read(n)

    def readline(self) -> bytes:
        return self.f.readline()

    def readinto(self, buf) -> None:
        view = memoryview(buf).cast("B")
        self._check(len(view))
        if self.f.readinto(view) != len(view):
            raise pickle.UnpicklingError("truncated file")


def _counted(op):
    def run(self):
        self.budget.build()
        op(self)
    return run


class BoundedUnpickler(pickle._Unpickler):
    """Python's unpickler (the pure-Python one, so that every op code passes through
    here) held to a ``Budget``: each op code counts against the structure limit; op
    codes and calls that allocate by a declared size are checked first; dict keys and
    set items are checked before they are hashed; only what ``lookup`` returned may be
    called, and only plain containers and arrays filled or given state. Subclasses
    say what may be looked up (``lookup``) and what a persistent id is."""

    dispatch = {code: _counted(op) for code, op in pickle._Unpickler.dispatch.items()}

    def __init__(self, f, budget: Budget | None = None):
        self.source = _Source(f)
        self.budget = budget or Budget(self.source.size)
        self._found: dict[int, object] = {}
        super().__init__(self.source)

    def lookup(self, module: str, name: str):
        raise RefusedPickle(f"{module}.{name}")

    def find_class(self, module: str, name: str):
        obj = self.lookup(module, name)
        self._found[id(obj)] = obj
        return obj

    def persistent_load(self, pid):
        raise RefusedPickle(f"persistent id {_SHORT.repr(pid)}")

    def load(self):
        obj = super().load()
        check_tree(obj, self.budget)
        return obj

    # calls
    def _call(self, func, args, kwargs=None, new=False):
        if id(func) not in self._found:
            raise pickle.UnpicklingError(f"a call of a {type(func).__name__} that is not on the allow-list")
        if not isinstance(args, tuple) or not isinstance(kwargs or {}, dict):
            raise pickle.UnpicklingError("malformed call")
        check = _CHECKS.get(func)
        if check is not None:
            check(self.budget, args)
        if new:
            return func.__new__(func, *args, **(kwargs or {}))
        if func in _BUDGETED:
            return func(*args, budget=self.budget)
        return func(*args)

    def _reduce(self):
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def _newobj(self):
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args, new=True)

    def _newobj_ex(self):
        kwargs = self.stack.pop()
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args, kwargs, new=True)

    def _instantiate(self, klass, args):
        self.append(self._call(klass, tuple(args)))

    # containers
    def _setitems(self, items):
        target = self.stack[-1]
        if not isinstance(target, dict) or len(items) % 2:
            raise pickle.UnpicklingError(f"items set on a {type(target).__name__}")
        for i in range(0, len(items), 2):
            check_key(items[i])
            target[items[i]] = items[i + 1]

    def _setitem(self):
        value = self.stack.pop()
        key = self.stack.pop()
        self._setitems([key, value])

    def _setitems_op(self):
        self._setitems(self.pop_mark())

    def _dict(self):
        items = self.pop_mark()
        self.append({})
        self._setitems(items)

    def _appends(self, items):
        if not isinstance(self.stack[-1], list):
            raise pickle.UnpicklingError(f"items appended to a {type(self.stack[-1]).__name__}")
        self.stack[-1].extend(items)

    def _append(self):
        self._appends([self.stack.pop()])

    def _appends_op(self):
        self._appends(self.pop_mark())

    def _additems(self):
        items = self.pop_mark()
        if not isinstance(self.stack[-1], set):
            raise pickle.UnpicklingError(f"items added to a {type(self.stack[-1]).__name__}")
        for item in items:
            check_key(item)
        self.stack[-1].update(items)

    def _frozenset(self):
        items = self.pop_mark()
        for item in items:
            check_key(item)
        self.append(frozenset(items))

    def _bytearray8(self):
        n = int.from_bytes(self.read(8), "little")
        self.budget.allocate(n, "a bytearray")
        buf = bytearray(n)
        self.readinto(buf)
        self.append(buf)

    def _build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, np.ndarray):
            _check_array_state(self.budget, state)
        setstate = getattr(type(inst), "__setstate__", None)  # the class's: never one the file put in a dict
        if setstate is not None and isinstance(inst, (np.ndarray, np.dtype, TFNetwork)):
            setstate(inst, state)
        elif isinstance(inst, (dict, argparse.Namespace)) and isinstance(state, dict) \
                and all(type(k) is str for k in state):
            inst.__dict__.update(state)
        else:
            raise pickle.UnpicklingError(f"state given to a {type(inst).__name__}")


for _code, _op in ((pickle.REDUCE, "_reduce"), (pickle.NEWOBJ, "_newobj"), (pickle.NEWOBJ_EX, "_newobj_ex"),
                   (pickle.SETITEM, "_setitem"), (pickle.SETITEMS, "_setitems_op"), (pickle.DICT, "_dict"),
                   (pickle.APPEND, "_append"), (pickle.APPENDS, "_appends_op"), (pickle.ADDITEMS, "_additems"),
                   (pickle.FROZENSET, "_frozenset"), (pickle.BYTEARRAY8, "_bytearray8"), (pickle.BUILD, "_build")):
    BoundedUnpickler.dispatch[_code[0]] = _counted(getattr(BoundedUnpickler, _op))


# ---------------------------------------------------------------- checks on calls
def _check_bytearray(budget: Budget, args) -> None:
    if args:
        a = args[0]
        if isinstance(a, int):
            budget.allocate(a, "a bytearray")
        elif isinstance(a, (bytes, bytearray, str, list, tuple)):
            budget.allocate(len(a), "a bytearray")
        else:
            raise pickle.UnpicklingError(f"a bytearray of a {type(a).__name__}")


def _check_items(budget: Budget, args) -> None:
    """set, frozenset and the dicts: what they are made from is hashed."""
    for a in args:
        if isinstance(a, dict):
            continue  # its keys were checked when it was filled
        if not isinstance(a, (list, tuple, set, frozenset, str, bytes)):
            raise pickle.UnpicklingError(f"a container made from a {type(a).__name__}")
        for item in a:
            check_key(item)


def _refuse_array_call(budget: Budget, args) -> None:
    raise RefusedPickle("numpy.ndarray called directly (arrays are only rebuilt from their data)")


def _check_reconstruct(budget: Budget, args) -> None:
    """numpy's ``_reconstruct(ndarray, shape, dtype)`` allocates the shape it is given."""
    if len(args) != 3 or args[0] is not np.ndarray or not isinstance(args[1], tuple) \
            or not all(isinstance(n, int) and n >= 0 for n in args[1]) or len(args[1]) > 64:
        raise pickle.UnpicklingError("malformed numpy array")
    budget.allocate(math.prod(args[1]) * np.dtype(args[2]).itemsize, "a numpy array")


def _check_array_state(budget: Budget, state) -> None:
    if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], np.dtype)):
        raise pickle.UnpicklingError("malformed numpy array state")
    if state[2].hasobject:
        raise RefusedPickle("a numpy array of Python objects")
    if isinstance(state[4], (bytes, bytearray)):
        budget.allocate(len(state[4]), "a numpy array")


def _check_scalar(budget: Budget, args) -> None:
    if not args or not isinstance(args[0], np.dtype) or args[0].hasobject:
        raise RefusedPickle("a numpy scalar of a Python object")
    budget.allocate(args[0].itemsize, "a numpy scalar")


def _check_tensor(budget: Budget, args) -> None:
    """A tensor may not hold more elements than its storage (a zero stride would let a
    tiny storage stand for a huge tensor, allocated whole by the first copy)."""
    if len(args) < 4 or not isinstance(args[0], torch.storage.TypedStorage):
        raise pickle.UnpicklingError("a tensor without a storage")
    size, stride = args[2], args[3]
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride) <= 64
            and all(isinstance(n, int) and n >= 0 for n in size)):
        raise pickle.UnpicklingError("malformed tensor size")
    numel = math.prod(size)
    if numel > args[0]._size():
        raise LimitExceeded("size", f"a tensor of {numel:,} elements on a storage of {args[0]._size():,}")


# ---------------------------------------------------------------- tensor storages (a pickled
# tensor's storage is a nested legacy torch.save blob; checkpoints read whole files with these)
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


def _storage_dtype(module: str, name: str):
    if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:  # a CUDA storage is read to the CPU
        return _STORAGE_DTYPES[name]
    return None


def _parse_pid(pid) -> tuple[str, torch.dtype, int]:
    """``('storage', dtype, key, location, numel[, view])`` as torch writes it."""
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage" and isinstance(pid[1], torch.dtype)
            and isinstance(pid[2], str) and isinstance(pid[4], int) and pid[4] >= 0
            and (len(pid) == 5 or pid[5] is None)):
        raise pickle.UnpicklingError("malformed tensor storage record (or a storage view, not supported)")
    return pid[2], pid[1], pid[4]


def _typed(buf: torch.Tensor, dtype: torch.dtype):
    return torch.storage.TypedStorage(wrap_storage=buf.untyped_storage(), dtype=dtype, _internal=True)


class _Storages:
    """The storages a stream's persistent ids name, one per key."""

    def __init__(self, budget: Budget):
        self.budget = budget
        self.made: dict[str, tuple[torch.storage.TypedStorage, torch.Tensor]] = {}

    def get(self, key: str, dtype: torch.dtype, numel: int):
        if key in self.made:
            st = self.made[key][0]
            if st.dtype != dtype or st._size() != numel:
                raise pickle.UnpicklingError(f"tensor storage {key} declared twice, differently")
            return st
        nbytes = numel * torch.empty(0, dtype=dtype).element_size()
        buf = self.make(key, nbytes)
        st = _typed(buf, dtype)
        self.made[key] = st, buf
        return st

    def make(self, key: str, nbytes: int) -> torch.Tensor:
        raise NotImplementedError


class _LegacyStorages(_Storages):
    """A legacy ``torch.save`` stream's: made empty when first named (no bigger than
    what the stream has left), filled after its pickles from the raw bytes that follow."""

    def __init__(self, source: _Source, budget: Budget):
        super().__init__(budget)
        self.source = source

    def make(self, key: str, nbytes: int) -> torch.Tensor:
        self.budget.allocate(nbytes, f"tensor storage {key}", within=self.source.left())
        return torch.empty(nbytes, dtype=torch.uint8)

    def fill(self, keys) -> None:
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)
                and len(set(keys)) == len(keys) == len(self.made) and set(keys) == set(self.made)):
            raise pickle.UnpicklingError("the storages stored are not the storages declared")
        for key in keys:
            st, buf = self.made[key]
            if int.from_bytes(self.source.read(8), "little", signed=True) != st._size():
                raise pickle.UnpicklingError(f"tensor storage {key}: wrong element count")
            if buf.numel():
                self.source.readinto(buf.numpy())


class _StorageUnpickler(BoundedUnpickler):
    """The pickles of a ``torch.save`` stream: storage types in persistent ids, storages
    from ``storages``, nothing else (``CheckpointUnpickler`` adds the safe globals)."""

    storages: _Storages

    def lookup(self, module: str, name: str):
        dtype = _storage_dtype(module, name)
        if dtype is None:
            raise RefusedPickle(f"{module}.{name} (inside a tensor storage)")
        return dtype

    def persistent_load(self, pid):
        return self.storages.get(*_parse_pid(pid))


def _read_legacy(u: _StorageUnpickler):
    """A legacy ``torch.save`` stream: magic number, protocol, system info, the object
    (storages as persistent ids), the storage keys, then each storage as an int64
    element count and its raw little-endian bytes."""
    u.storages = _LegacyStorages(u.source, u.budget)
    if u.load() != LEGACY_MAGIC or u.load() != LEGACY_PROTOCOL:
        raise pickle.UnpicklingError("not a torch.save file (magic number or protocol)")
    info = u.load()
    if isinstance(info, dict) and info.get("little_endian") is False:
        raise pickle.UnpicklingError("big-endian tensor storage")
    obj = u.load()
    u.storages.fill(u.load())
    return obj


def _load_storage(data, *, budget: Budget):
    """Stands in for ``torch.storage._load_from_bytes``: a storage pickles as a nested
    legacy ``torch.save`` blob. Read here with the storage allow-list, within the blob's
    own budget (its allocations charged to the file's too), never with the unrestricted
    ``torch.load`` the original calls."""
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("a tensor storage that is not bytes")
    u = _StorageUnpickler(io.BytesIO(data), Budget(len(data), parent=budget))
    out = _read_legacy(u)
    if not isinstance(out, torch.storage.TypedStorage):
        raise pickle.UnpicklingError("malformed tensor storage blob")
    return out


# ---------------------------------------------------------------- the allow-list
def _numpy_global(module: str, name: str):
    if module.startswith("numpy.core"):  # numpy 1 pickles, read under numpy 2
        module = "numpy._core" + module[len("numpy.core"):]
    table = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy._core.multiarray", "_reconstruct"): _NP_RECONSTRUCT,
        ("numpy._core.multiarray", "scalar"): _NP_SCALAR,
    }
    fn = table.get((module, name))
    if fn is None and module == "numpy.dtypes" and name.endswith("DType"):
        import numpy.dtypes as npd
        cls = getattr(npd, name, None)
        if isinstance(cls, type) and issubclass(cls, np.dtype):
            return cls
    return fn


def _codecs_encode(obj, encoding="latin1", *, budget: Budget):
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode of a non-string, or not to latin1")
    budget.allocate(len(obj), "a byte string")
    return obj.encode(encoding)


_NP_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]
_NP_SCALAR = np.float64(0).__reduce__()[0]
_SAFE = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice,
    ("builtins", "complex"): complex, ("builtins", "bytearray"): bytearray,
    ("__builtin__", "set"): set, ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _codecs_encode,  # protocol-2 bytes
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch", "Size"): torch.Size,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentObject,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("dnnlib.tflib.network", "Network"): TFNetwork,
}
# what may allocate by a size it is given, or hash what it is given, checked before the call
_CHECKS = {
    bytearray: _check_bytearray, set: _check_items, frozenset: _check_items,
    collections.OrderedDict: _check_items, EasyDict: _check_items, TFNetwork: _check_items,
    np.ndarray: _refuse_array_call, _NP_RECONSTRUCT: _check_reconstruct, _NP_SCALAR: _check_scalar,
    torch._utils._rebuild_tensor: _check_tensor, torch._utils._rebuild_tensor_v2: _check_tensor,
}
_BUDGETED = {_load_storage, _codecs_encode}  # called with the file's budget


def _safe_global(module: str, name: str):
    key = (module, name)
    if key in _SAFE:
        return _SAFE[key]
    if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
        return getattr(torch, name)
    if module.startswith("numpy"):
        fn = _numpy_global(module, name)
        if fn is not None:
            return fn
    raise RefusedPickle(f"{module}.{name}")


class SafeUnpickler(BoundedUnpickler):
    """An allow-list unpickler for official pickles: data and tensors only (see the
    module docstring), within the limits of ``BoundedUnpickler``."""

    def lookup(self, module: str, name: str):
        return _safe_global(module, name)


def safe_load(f) -> object:
    return SafeUnpickler(f).load()
