"""Is one beat-tracker run better than another, or is the difference noise?

    python tools/beat_compare.py before.json after.json [--tracker live] [--metric f]

Both files are ``tools/beat_eval.py --json`` outputs over the same items. Prints, overall
and per source, the mean of the metric in each run, the mean paired difference and its
95 % interval from a bootstrap that resamples *songs*, not excerpts: the excerpts of one
song (and its renders through several soundfonts) rise and fall together, so counting
them as independent would make a small difference look sure. A difference whose
interval straddles 0 is not one the corpus can tell from noise.
"""
from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np


def song_of(item_id: str) -> str:
    """The song an excerpt comes from: its id less the soundfont or the start time."""
    return item_id.split("@")[0]


def paired(a_path: Path, b_path: Path, tracker: str, metric: str) -> list[tuple[str, str, float, float]]:
    """(source, song, a, b) for every item both runs scored with a finite ``metric``."""
    def load(path):
        out = {}
        try:
            for it in json.loads(Path(path).read_text())["items"]:
                v = ((it.get("trackers") or {}).get(tracker) or {}).get(metric)
                if isinstance(v, (int, float)) and math.isfinite(v):
                    out[str(it["id"])] = (str(it["source"]), float(v))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise SystemExit(f"{path}: not a beat_eval.py --json run ({type(e).__name__}: {e})") from None
        return out
    a, b = load(a_path), load(b_path)
    return [(a[i][0], song_of(i), a[i][1], b[i][1]) for i in sorted(a.keys() & b.keys())]


def interval(rows, n_boot: int = 4000, seed: int = 0) -> tuple[float, float, float]:
    """Mean paired difference (b - a) per item and its 95 % bootstrap interval over songs."""
    by_song = defaultdict(list)
    for _, song, a, b in rows:
        by_song[song].append(b - a)
    sums = np.array([sum(v) for v in by_song.values()])
    counts = np.array([len(v) for v in by_song.values()])
    mean = float(sums.sum() / counts.sum())
    if len(sums) < 2:
        return mean, math.nan, math.nan
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(sums), (n_boot, len(sums)))
    boot = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return mean, float(lo), float(hi)


def report(rows) -> list[str]:
    lines = [f"{'':10s} {'items':>5s} {'songs':>5s} {'before':>7s} {'after':>7s} {'diff':>7s}   95 % (songs)"]
    groups = [("all", rows)] + [(s, [r for r in rows if r[0] == s]) for s in sorted({r[0] for r in rows})]
    for name, rs in groups:
        if not rs:
            continue
        mean, lo, hi = interval(rs)
        sure = "" if math.isnan(lo) or lo <= 0.0 <= hi else "  *"
        lines.append(f"{name:10s} {len(rs):5d} {len({r[1] for r in rs}):5d} {np.mean([r[2] for r in rs]):7.3f} "
                     f"{np.mean([r[3] for r in rs]):7.3f} {mean:+7.3f}   [{lo:+.3f}, {hi:+.3f}]{sure}")
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--tracker", default="live")
    ap.add_argument("--metric", default="f", help="a per-item score of beat_eval: f, cmlc, amlc, downbeat_f, ...")
    args = ap.parse_args(argv)
    rows = paired(Path(args.before), Path(args.after), args.tracker, args.metric)
    if not rows:
        raise SystemExit(f"no item has {args.metric} for {args.tracker} in both files")
    print("\n".join(report(rows)))
    print("* the interval leaves out 0")


if __name__ == "__main__":
    main()
