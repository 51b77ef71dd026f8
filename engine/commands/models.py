"""``vj models [list | info | convert | sample | random | get]``: the registry, one model,
random-weight models for benchmarks (``vj models get`` lives in model_get.py; the CLI calls it)."""
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
    if args.action == "random":
        return random_model(args)
    print(f"registry: {reg.path}")
    for name, e in reg.entries.items():
        mark = "*" if name == reg.default else " "
        state = "" if e.file.exists() else "  (file missing)"
        print(f"{mark} {name:16s} {e.architecture or '?':10s} {e.file.name}{state}")
        if e.description:
            print(f"  {'':16s} {e.description}")
        if e.licence:
            print(f"  {'':16s} licence: {e.licence}")
    print("* = default (set `default` in models.toml);  pretrained models to fetch: vj models get --list")
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
            config = tools.convert(args.file, args.dest, overwrite=args.overwrite)
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


def random_model(args) -> int:
    """``vj models random ARCH --out FILE.safetensors [--resolution N] [--preset NAME]
    [--channel-divisor N] [--seed S] [--overwrite]``: arguments are checked before anything
    is made (exit 2, nothing written); the file is written atomically."""
    import time

    from engine.generators import random_models
    if args.dest:
        print(f"vj: models random writes to --out FILE.safetensors, not to a second name ({args.dest})",
              file=sys.stderr)
        return 2
    try:
        plan = random_models.plan(args.file, resolution=args.resolution, preset=args.preset,
                                  channel_divisor=args.channel_divisor)
        out = random_models.check_out(args.out, args.overwrite)
    except random_models.RandomModelError as e:
        print(f"vj: {e}", file=sys.stderr)
        return 2
    seed = 0 if args.seed is None else args.seed
    start = time.perf_counter()
    try:
        made = random_models.write(plan, out, seed=seed, overwrite=args.overwrite)
    except random_models.RandomModelError as e:  # the file appeared while the weights were drawn
        print(f"vj: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"vj: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"wrote {out}: {plan.describe()}, {made['parameters']:,} parameters, {made['bytes'] / 1e6:.1f} MB, "
          f"seed {seed}, in {time.perf_counter() - start:.1f} s")
    print(f"  RANDOM weights, not a trained model: for benchmarks (vj bench --model {out})")
    return 0
