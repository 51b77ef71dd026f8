"""Test helpers: find the shared StyleGAN fixtures, and write pickles in NVIDIA's
official layout (``torch_utils.persistence`` records) without any NVIDIA code.

Each network object is written as ``_reconstruct_persistent_obj(meta)`` with
``meta = {type, version, module_src, class_name, state}``, the way the official
training code writes ``network-snapshot-*.pkl``; ``module_src`` is a stub we write
ourselves (it never runs: that is what the tests check)."""
from __future__ import annotations

import collections
import io
import os
import pickle
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent

BUFFERS = {"w_avg", "resample_filter", "noise_const", "transform", "freqs", "phases", "up_filter", "down_filter",
           "magnitude_ema"}


def fixtures_dir() -> Path | None:
    """``<repo>/../shared/fixtures`` (CI), else ``$VJ_SHARED[/fixtures]``, else /work/shared/fixtures."""
    cands = [ROOT.parent / "shared" / "fixtures"]
    if os.environ.get("VJ_SHARED"):
        cands += [Path(os.environ["VJ_SHARED"]) / "fixtures", Path(os.environ["VJ_SHARED"])]
    cands.append(Path("/work/shared/fixtures"))
    for c in cands:
        if (c / "sg2_64_skip.safetensors").exists():
            return c
    return None


# ---------------------------------------------------------------- the writer
def _reconstruct_persistent_obj(meta):  # never called: only its name goes into the file
    raise RuntimeError("stub")


class EasyDict(dict):
    pass


_NAMES = {id(_reconstruct_persistent_obj): ("torch_utils.persistence", "_reconstruct_persistent_obj"),
          id(EasyDict): ("dnnlib.util", "EasyDict")}


class _OfficialPickler(pickle._Pickler):
    """Writes our stand-ins under the official global names."""

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[types.FunctionType] = lambda self, obj: self.save_global(obj)

    def save_global(self, obj, name=None):
        target = _NAMES.get(id(obj))
        if target is None:
            return super().save_global(obj, name)
        self.save(target[0])
        self.save(target[1])
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)


class Record:
    def __init__(self, class_name: str, state: dict, module_src: str):
        self.meta = dict(type="class", version=6, module_src=module_src, class_name=class_name, state=state)

    def __reduce__(self):
        return _reconstruct_persistent_obj, (self.meta,)


def _module_state(params=None, buffers=None, modules=None, **attrs) -> dict:
    od = collections.OrderedDict
    return {"training": False, "_parameters": od(params or {}), "_buffers": od(buffers or {}),
            "_non_persistent_buffers_set": set(), "_backward_hooks": od(), "_forward_hooks": od(),
            "_forward_pre_hooks": od(), "_state_dict_hooks": od(), "_load_state_dict_pre_hooks": od(),
            "_modules": od(modules or {}), **attrs}


def _class_name(path: tuple, sg3: bool) -> str:
    if not path:
        return "Generator"
    if path == ("mapping",):
        return "MappingNetwork"
    if path[0] == "mapping" or path[-1] == "affine":
        return "FullyConnectedLayer"
    if path == ("synthesis",):
        return "SynthesisNetwork"
    if sg3:
        return "SynthesisInput" if path[-1] == "input" else "SynthesisLayer"
    return {"conv0": "SynthesisLayer", "conv1": "SynthesisLayer", "torgb": "ToRGBLayer",
            "skip": "Conv2dLayer"}.get(path[-1], "SynthesisBlock")


def _attrs(path: tuple, kwargs: dict, sg3: bool) -> dict:
    """Plain attributes like the official objects carry (numpy scalars included)."""
    name = path[-1] if path else ""
    if path and (path[0] == "mapping" and name != "mapping" or name == "affine"):
        return {"activation": "lrelu" if name.startswith("fc") else "linear", "weight_gain": np.float64(0.125),
                "bias_gain": 0.01 if path[0] == "mapping" else 1.0}
    if sg3 or not path or len(path) < 2:
        return {}
    res_log2 = int(np.log2(kwargs["img_resolution"]))
    fp16_res = max(2 ** (res_log2 + 1 - kwargs.get("num_fp16_res", 4)), 8)
    if len(path) == 2:  # a block
        r = int(path[1][1:])
        return {"resolution": r, "use_fp16": r >= fp16_res, "architecture": kwargs.get("architecture", "skip"),
                "is_last": r == kwargs["img_resolution"], "channels_last": False}
    if name in ("conv0", "conv1", "torgb"):
        return {"conv_clamp": kwargs.get("conv_clamp", 256), "up": 2 if name == "conv0" else 1, "padding": 1,
                "act_gain": np.sqrt(np.float64(2)), "use_noise": name != "torgb"}
    return {}


def build_records(state: dict, kwargs: dict, module_src: str, sg3: bool, init_kwargs: dict,
                  init_args: tuple = ()) -> Record:
    tree: dict = {}
    for key, value in state.items():
        *mods, leaf = key.split(".")
        node = tree
        for m in mods:
            node = node.setdefault(m, {})
        node.setdefault("__leaves__", {})[leaf] = value

    def make(node: dict, path: tuple) -> Record:
        leaves = node.get("__leaves__", {})
        params = {k: torch.nn.Parameter(v.clone(), requires_grad=False) for k, v in leaves.items() if k not in BUFFERS}
        buffers = {k: v.clone() for k, v in leaves.items() if k in BUFFERS}
        modules = {k: make(v, path + (k,)) for k, v in node.items() if k != "__leaves__"}
        attrs = _attrs(path, kwargs, sg3)
        if not path:
            attrs.update({k: kwargs[k] for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")})
            attrs["_init_args"] = tuple(init_args)
            attrs["_init_kwargs"] = init_kwargs
        return Record(_class_name(path, sg3), _module_state(params, buffers, modules, **attrs), module_src)

    return make(tree, ())


def _easy(d):
    return EasyDict({k: _easy(v) for k, v in d.items()}) if isinstance(d, dict) else d


def official_pickle_bytes(state: dict, kwargs: dict, layout: str = "sg3", module_src: str = "# stub",
                          positional: bool = False) -> bytes:
    """A training snapshot ``{G, D, G_ema, augment_pipe, training_set_kwargs}`` in the
    official persistence layout. ``kwargs``: the flat (stylegan3-repo) constructor
    arguments; ``layout="ada"`` nests the synthesis arguments as stylegan2-ada-pytorch
    does; ``positional`` passes z_dim..img_channels as positional arguments."""
    sg3 = any(k.startswith("synthesis.input.") for k in state)
    init = dict(kwargs)
    if layout == "ada":
        syn = {k: init.pop(k) for k in ("channel_base", "channel_max", "num_fp16_res", "conv_clamp", "architecture")
               if k in init}
        init["synthesis_kwargs"] = syn
    args = ()
    if positional:
        args = tuple(init.pop(k) for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"))
    init = _easy(init)
    g_ema = build_records(state, kwargs, module_src, sg3, init, args)
    g = build_records(state, kwargs, module_src, sg3, init, args)
    d = Record("Discriminator", _module_state({"b4.weight": torch.nn.Parameter(torch.zeros(2, 2),
                                                                              requires_grad=False)}), module_src)
    snapshot = dict(G=g, D=d, G_ema=g_ema, augment_pipe=None,
                    training_set_kwargs=EasyDict(path="~/datasets/x.zip", resolution=kwargs["img_resolution"]))
    buf = io.BytesIO()
    _OfficialPickler(buf, protocol=4).dump(snapshot)
    return buf.getvalue()


def write_official_pickle(path, state: dict, kwargs: dict, **kw) -> Path:
    Path(path).write_bytes(official_pickle_bytes(state, kwargs, **kw))
    return Path(path)
