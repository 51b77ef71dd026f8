"""Official StyleGAN pickles (stylegan2-ada-pytorch, stylegan3): the generator's state
dict and config, read from the network records an unpickled file holds.

NVIDIA's training code pickles each network object as a *persistence record*: a call
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` where ``meta`` holds the
full Python source of the module that defined the class (``module_src``), the class
name, and the object's state (``_parameters``, ``_buffers``, ``_modules``,
``_init_kwargs``, plain attributes). Loading such a pickle the official way executes
that source. So the file is read by ``bounded_pickle.safe_load`` instead (nothing from it
is executed or imported, within limits set by its size), which makes each record a
``PersistentObject`` (class name, state, and a fingerprint of the source, never run).
This module reads no file: ``official_generator(obj)`` walks the records of ``G_ema``
and returns a flat state dict with the official names plus the constructor arguments.

The readers' entry points are also importable from here, as they were before the readers
had modules of their own (``bounded_pickle``, ``checkpoints``).
"""
from __future__ import annotations

import torch

from engine.generators.bounded_pickle import (Budget, EasyDict, LimitExceeded, PersistentObject, RefusedPickle,
                                              SafeUnpickler, TFNetwork, safe_load)
from engine.generators.checkpoints import CheckpointUnpickler, load_checkpoint
from engine.generators.config import SG2_SYNTHESIS_ARCHS, plain

__all__ = ["SG_ARGS", "flat_state", "init_kwargs", "pick_generator", "official_generator",
           # re-exported: the readers and the stand-ins they make
           "Budget", "LimitExceeded", "RefusedPickle", "SafeUnpickler", "safe_load", "CheckpointUnpickler",
           "load_checkpoint", "EasyDict", "PersistentObject", "TFNetwork"]


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
