"""Official StyleGAN pickles (stylegan2-ada-pytorch, stylegan3), read without running them.

NVIDIA's training code pickles each network object as a *persistence record*: a call
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` where ``meta`` holds the
full Python source of the module that defined the class (``module_src``), the class
name, and the object's state (``_parameters``, ``_buffers``, ``_modules``,
``_init_kwargs``, plain attributes). Loading such a pickle the official way executes
that source. Here nothing from the file is executed or imported:

- ``SafeUnpickler.find_class`` is an explicit allow-list. The persistence record becomes
  a ``PersistentObject`` (class name, state, and a fingerprint of the source, which is
  never run), ``dnnlib.util.EasyDict`` a dict, tensor storages are read with
  their own allow-list (never the unrestricted ``torch.load`` the original runs), and tensors, parameters, numpy arrays and scalars
  are rebuilt by their usual (data-only) functions. Any other global (``os.system``,
  ``builtins.eval``, ``subprocess.Popen``, an unknown module) is refused before it is
  looked up, with an error naming it.
- ``official_generator(obj)`` walks the records of ``G_ema`` and returns a flat state
  dict with the official names plus the constructor arguments.
"""
from __future__ import annotations

import collections
import hashlib
import io
import pickle

import numpy as np
import torch

from engine.generators.config import SG2_SYNTHESIS_ARCHS, plain


class RefusedPickle(pickle.UnpicklingError):
    """The pickle asked for something outside the allow-list; nothing was run."""

    def __init__(self, what: str):
        self.what = what
        super().__init__(f"refused to load {what}: the file asks to import or call it, and only tensor, "
                         f"array and plain-container rebuild functions are allowed (nothing from the file was run)")


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


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


class _StorageUnpickler(pickle.Unpickler):
    """The pickles inside a legacy ``torch.save`` blob of one storage: plain values and
    persistent ids ``('storage', <torch.XStorage>, key, location, numel, ...)`` only."""

    def __init__(self, f):
        super().__init__(f)
        self.storages: dict[str, tuple[torch.dtype, int]] = {}

    def find_class(self, module: str, name: str):
        if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:  # a CUDA storage is read to the CPU
            return _STORAGE_DTYPES[name]
        raise RefusedPickle(f"{module}.{name} (inside a tensor storage)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], torch.dtype) and isinstance(pid[4], int)):
            raise pickle.UnpicklingError("malformed tensor storage record")
        key = str(pid[2])
        self.storages[key] = (pid[1], pid[4])
        return key


def _load_storage(data: bytes):
    """Stands in for ``torch.storage._load_from_bytes``: a storage pickles as a nested
    legacy ``torch.save`` blob (magic number, protocol, system info, the storage as a
    persistent id, the key list, then each storage as an int64 element count and raw
    little-endian bytes). Read here with the allow-list above, never with the
    unrestricted ``torch.load`` the original calls."""
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("a tensor storage that is not bytes")
    f = io.BytesIO(data)
    u = _StorageUnpickler(f)
    u.load()  # magic number
    u.load()  # protocol version
    info = u.load()
    if isinstance(info, dict) and info.get("little_endian") is False:
        raise pickle.UnpicklingError("big-endian tensor storage")
    key = u.load()
    keys = u.load()
    if key not in u.storages or not isinstance(keys, list):
        raise pickle.UnpicklingError("malformed tensor storage blob")
    out = None
    for k in keys:
        dtype, numel = u.storages[str(k)]
        count = int.from_bytes(f.read(8), "little", signed=True)
        size = count * torch.empty((), dtype=dtype).element_size()
        raw = f.read(size)
        if count != numel or len(raw) != size:
            raise pickle.UnpicklingError("truncated tensor storage")
        t = torch.frombuffer(bytearray(raw), dtype=dtype) if size else torch.empty(0, dtype=dtype)
        if str(k) == key:
            out = torch.storage.TypedStorage(wrap_storage=t.untyped_storage(), dtype=dtype, _internal=True)
    return out


def _numpy_global(module: str, name: str):
    if module.startswith("numpy.core"):  # numpy 1 pickles, read under numpy 2
        module = "numpy._core" + module[len("numpy.core"):]
    table = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
        ("numpy._core.multiarray", "scalar"): np.float64(0).__reduce__()[0],
    }
    fn = table.get((module, name))
    if fn is None and module == "numpy.dtypes" and name.endswith("DType"):
        import numpy.dtypes as npd
        cls = getattr(npd, name, None)
        if isinstance(cls, type) and issubclass(cls, np.dtype):
            return cls
    return fn


_SAFE = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice,
    ("builtins", "complex"): complex, ("builtins", "bytearray"): bytearray,
    ("__builtin__", "set"): set, ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): None,  # protocol-2 bytes; filled below
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


def _codecs_encode(obj, encoding="latin1"):
    if not isinstance(obj, str):
        raise pickle.UnpicklingError("_codecs.encode of a non-string")
    return obj.encode(encoding)


_SAFE[("_codecs", "encode")] = _codecs_encode


class SafeUnpickler(pickle.Unpickler):
    """An allow-list unpickler: data and tensors only (see the module docstring)."""

    def find_class(self, module: str, name: str):
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

    def persistent_load(self, pid):
        raise RefusedPickle(f"persistent id {str(pid)[:40]!r}")


def safe_load(f) -> object:
    return SafeUnpickler(f).load()


# ---------------------------------------------------------------- official networks
SG_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")


def flat_state(obj: PersistentObject, prefix: str = "") -> dict:
    """The ``state_dict()`` of a persistent record tree: parameters and persistent buffers
    under dotted official names (None entries, such as absent filters, are skipped)."""
    out = {}
    st = obj.state
    skip = set(st.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for name, t in (st.get(group) or {}).items():
            if t is None or (group == "_buffers" and name in skip):
                continue
            if not torch.is_tensor(t):
                raise ValueError(f"{prefix}{name} is a {type(t).__name__}, not a tensor")
            out[prefix + name] = t.detach().clone() if t.requires_grad else t.detach()
    for name, child in (st.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentObject):
            raise ValueError(f"{prefix}{name}: unexpected {type(child).__name__} in the network")
        out.update(flat_state(child, f"{prefix}{name}."))
    return out


def init_kwargs(obj: PersistentObject, arg_names=SG_ARGS) -> dict:
    kwargs = plain(dict(obj.attr("_init_kwargs") or {}))
    for name, value in zip(arg_names, obj.attr("_init_args") or ()):
        kwargs.setdefault(name, plain(value))
    return kwargs


def pick_generator(obj) -> PersistentObject:
    """The network to draw with: ``G_ema`` of a training snapshot (else ``G``), or the
    object itself when the pickle holds one network."""
    if isinstance(obj, PersistentObject):
        return obj
    if isinstance(obj, dict):
        for key in ("G_ema", "G", "g_ema"):
            if isinstance(obj.get(key), PersistentObject):
                return obj[key]
        keys = ", ".join(map(str, list(obj)[:8]))
        raise ValueError(f"no G_ema or G network in this pickle (keys: {keys})")
    if isinstance(obj, (tuple, list)) and obj and all(isinstance(o, TFNetwork) for o in obj):
        raise ValueError("a TensorFlow-era StyleGAN pickle (G, D, Gs tuple): not supported yet; "
                         "use a PyTorch (stylegan2-ada-pytorch or stylegan3) pickle")
    raise ValueError(f"not a StyleGAN pickle (top level is a {type(obj).__name__})")


def official_generator(obj) -> tuple[dict, dict]:
    """``(state_dict, config)`` for the generator in an unpickled official file.

    ``config`` is the constructor's keyword arguments (the layout as found: the loader
    flattens the stylegan2-ada-pytorch ``synthesis_kwargs``) plus ``architecture``:
    "stylegan2", "stylegan3-t" or "stylegan3-r". For StyleGAN2 the per-layer
    attributes that the training code actually used (conv clamp, fp16 blocks, skip or
    resnet) are read back from the records, so they do not depend on either code base's
    defaults."""
    g = pick_generator(obj)
    synthesis = g.child("synthesis")
    if not isinstance(synthesis, PersistentObject) or not isinstance(g.child("mapping"), PersistentObject):
        raise ValueError(f"the {g.class_name} record has no mapping and synthesis networks")
    state = flat_state(g)
    config = init_kwargs(g)
    kids = synthesis.children()
    if "b4" in kids:
        if config.get("architecture") in SG2_SYNTHESIS_ARCHS:
            config["synthesis_architecture"] = config.pop("architecture")
        syn = dict(config.get("synthesis_kwargs") or {})
        blocks = [kids[k] for k in sorted((k for k in kids if k.startswith("b") and k[1:].isdigit()),
                                          key=lambda k: int(k[1:]))]
        target = syn if "synthesis_kwargs" in config else config
        b4 = blocks[0]
        layer = b4.child("conv1") if isinstance(b4, PersistentObject) else None
        if isinstance(layer, PersistentObject) and "conv_clamp" in layer.state:
            target["conv_clamp"] = plain(layer.attr("conv_clamp"))
        if all(isinstance(b, PersistentObject) and "use_fp16" in b.state for b in blocks):
            target["num_fp16_res"] = sum(bool(b.attr("use_fp16")) for b in blocks)
        if isinstance(b4, PersistentObject) and b4.attr("architecture") in SG2_SYNTHESIS_ARCHS:
            syn.pop("architecture", None)
            config["synthesis_architecture"] = b4.attr("architecture")
        if "synthesis_kwargs" in config:
            config["synthesis_kwargs"] = syn
        config["architecture"] = "stylegan2"
    elif "input" in kids:
        radial = bool(config.get("use_radial_filters")) or config.get("conv_kernel") == 1 or any(
            k.endswith(".down_filter") and v.ndim == 2 for k, v in state.items())
        config["architecture"] = "stylegan3-r" if radial else "stylegan3-t"
    else:
        raise ValueError(f"unknown synthesis network (children: {', '.join(list(kids)[:6])})")
    return state, config
