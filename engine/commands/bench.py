"""``vj bench``: frames per second of the whole loop and of the generator alone."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from engine.commands import resolve_patch
from engine.session import DEFAULT_SIZE, Options, Session, SessionError, load_model

log = logging.getLogger("vj")


def main(args) -> int:
    if args.audio is not None:
        from engine.signals.audio import AudioError
        from engine.signals.audio_bench import run_audio_bench
        try:
            result = run_audio_bench(args.audio or None)
        except AudioError as e:
            log.error("vj bench --audio: %s", e)
            return 2
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
        return 0
    if args.soak:
        from engine.soak.run import main as soak
        kinds = [k.strip() for k in args.soak_faults.split(",") if k.strip()] if args.soak_faults else None
        from engine.soak.faults import WEIGHTS
        if kinds and set(kinds) - set(WEIGHTS):
            log.error("--soak-faults: no such fault: %s (known: %s)", ", ".join(sorted(set(kinds) - set(WEIGHTS))),
                      ", ".join(WEIGHTS))
            return 2
        return soak(args.soak, json_path=args.json, seed=args.soak_seed, workdir=args.soak_dir, model=args.model,
                    kinds=kinds,
                    size=f"{args.size[0]}x{args.size[1]}" if args.size != DEFAULT_SIZE else "160x90")
    from engine.render.bench import run_bench, run_generator_bench
    try:
        if args.generator_only:
            result = run_generator_bench(load_model(args.model), device=args.device, frames=args.frames or 100,
                                         compile=args.compile)
        else:
            import tempfile
            from engine.session import ControlOptions
            with tempfile.TemporaryDirectory(prefix="vj-bench-") as tmp:
                # OSC in on a free port: the latency figures follow real datagrams
                control = ControlOptions(osc_port=0, oscquery_port=None, midi=None,
                                         mappings=Path(tmp) / "bench.mappings.toml", record_dir=Path(tmp))
                opts = Options(patch=resolve_patch(args.patch), model=args.model, size=args.size, fps=30.0,
                               device=args.device, precision=args.precision, live=False,
                               display_path=args.display_path, control=control, hands=list(args.hands))
                with Session(opts) as session:
                    result = run_bench(session, frames=args.frames or 200)
    except SessionError as e:
        log.error("%s", e)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0
