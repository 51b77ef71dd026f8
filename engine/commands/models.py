"""``vj models [list | info | convert | sample]``: the registry, and one model."""
from __future__ import annotations

import sys


def main(args) -> int:
    from engine.generators.registry import Registry
    reg = Registry()
    if args.action == "info":
        from engine.generators.tools import main_info
        return main_info(args.file)
    if args.action in ("convert", "sample"):
        return models_tool(args)
    print(f"registry: {reg.path}")
    for name, e in reg.entries.items():
        mark = "*" if name == reg.default else " "
        state = "" if e.file.exists() else "  (file missing)"
        print(f"{mark} {name:16s} {e.architecture or '?':10s} {e.file.name}{state}")
        if e.description:
            print(f"  {'':16s} {e.description}")
        if e.licence:
            print(f"  {'':16s} licence: {e.licence}")
    print("* = default (set `default` in models.toml)")
    return 0


def models_tool(args) -> int:
    """``vj models convert IN OUT.safetensors`` and ``vj models sample FILE --z Z.npy --out OUT.npy``."""
    from engine.generators import tools
    from engine.generators.load import ModelLoadError
    try:
        if args.action == "convert":
            if not args.dest:
                print("vj: models convert needs IN and OUT.safetensors", file=sys.stderr)
                return 2
            config = tools.convert(args.file, args.dest)
            print(f"wrote {args.dest} ({config['architecture']})")
        else:
            if not args.out:
                print("vj: models sample needs --out OUT.npy", file=sys.stderr)
                return 2
            imgs = tools.sample(args.file, args.out, z=args.z, ws=args.ws, c=args.c, psi=args.psi,
                                cutoff=args.cutoff, noise=args.noise, precision=args.precision,
                                device=args.device, seed=args.seed)
            print(f"wrote {args.out} {list(imgs.shape)} float32")
    except (ModelLoadError, ValueError) as e:
        print(f"vj: {e}", file=sys.stderr)
        return 1
    return 0
