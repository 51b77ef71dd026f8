"""``vj analyze FILE``: what the engine hears, as CSV and a plot."""
from __future__ import annotations

import logging

log = logging.getLogger("vj")


def main(args) -> int:
    from engine.signals import analyze
    from engine.signals.audio import AudioError
    if not args.out and not args.plot:
        log.error("nothing to write: give --out FILE.csv and/or --plot FILE.png")
        return 2
    try:
        analyze.run(args.file, out=args.out, plot_path=args.plot, offline=args.offline, fps=args.fps,
                    block=args.block)
    except AudioError as e:
        log.error("%s", e)
        return 2
    return 0
