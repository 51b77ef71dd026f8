#!/usr/bin/env python3
"""Score beat trackers on the corpus built by tools/beat_corpus.py.

    python tools/beat_eval.py --corpus build/beat_corpus [--split held|tune|all]
        [--trackers live,offline,librosa] [--limit N] [--jobs 2] [--json out.json] [--verbose]
        [--set prior_octaves=0.5 --set tempo_lambda=200 ...]

``--weights a.npz,b.npz`` runs the live and offline trackers with those beat networks in
place of the committed ones (engine/signals/beat_net.py WEIGHTS; ``none``: the flux alone):
which networks to average is chosen on the tune split. ``--sources fof,lmms`` scores only
those sources. ``--set NAME=NUMBER`` overrides a keyword argument of the live tracker's
bar-pointer model
(engine/signals/bar_pointer.py: prior_bpm, prior_octaves, tempo_lambda, region, leak), or with
``flux_share`` the activation's share of flux (engine/signals/beat_net.py FLUX_SHARE): a sweep
on the tune split without editing the engine. Whether two runs differ by more than noise:
``tools/beat_compare.py a.json b.json``.

Trackers: ``live`` (engine.signals.features.BlockAnalyzer, block by block, causal),
``offline`` (engine.signals.offline.offline_features, what ``vj render`` uses) and
``librosa`` (librosa.beat.beat_track on the whole excerpt). Scores from
engine.signals.beat_score.score_beats (mir_eval; the first 8 s discarded).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRACKERS = ("live", "offline", "librosa")
OFFLINE_FPS = 1000.0          # offline events land on the first frame at/after the beat: 1 ms


def _scored_median(values, times, skip):
    v = np.asarray(values, np.float64)[np.asarray(times) >= skip]
    v = v[v > 0]
    return float(np.median(v)) if len(v) else None


def _sweep(over: dict) -> None:
    """Give the live tracker's BarPointer the ``--set`` keyword arguments (in this process);
    ``flux_share`` sets the activation's share of flux (beat_net.FLUX_SHARE)."""
    import engine.signals.beat_net as beat_net
    import engine.signals.beats as beats
    from engine.signals.bar_pointer import BarPointer
    over = dict(over)
    if "flux_share" in over:
        beat_net.FLUX_SHARE = over.pop("flux_share")
    if not over or getattr(beats.BarPointer, "swept", None) == over:
        return

    class Swept(BarPointer):
        swept = dict(over)

        def __init__(self, *a, **kw):
            super().__init__(*a, **{**kw, **over})
    beats.BarPointer = Swept


def _use_weights(paths: tuple[str, ...] | None) -> None:
    """None: the committed networks; () no network (the flux alone)."""
    if paths is not None:
        import engine.signals.beat_net as beat_net
        beat_net.WEIGHTS = tuple(Path(p) for p in paths)


def _setting(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--set wants NAME=NUMBER, got {text!r}") from None


def run_item(args) -> dict:
    item, corpus, trackers, skip, over, weights = args
    _sweep(over)
    _use_weights(weights)
    import soundfile as sf
    from engine.signals.beat_score import live_beats, score_beats
    y, sr = sf.read(str(Path(corpus) / item["audio"]), dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    ref, ref_down = item["beats"], item["downbeats"]
    out = {"id": item["id"], "tags": item["tags"], "source": item["source"], "unseen": item.get("unseen", False),
           "beats_per_bar": item["beats_per_bar"], "ref_bpm": item["bpm"], "trackers": {}}
    for name in trackers:
        t0 = time.perf_counter()
        extra = {}
        if name == "live":
            r = live_beats(y, sr, 512)
            est, est_down = r["beats"], r["downbeats"]
            bpm = _scored_median(r["bpm"], r["times"], skip)
            us = r["block_us"]
            extra = {"block_us_median": float(np.median(us)), "block_us_p99": float(np.percentile(us, 99)),
                     "block_us": us.tolist()}
        elif name == "offline":
            from engine.signals.offline import offline_features
            n = int(len(y) / sr * OFFLINE_FPS)
            f = offline_features(y, sr, OFFLINE_FPS, n, chroma=False)
            frames = np.nonzero(f["audio.beat:event"])[0]
            est = frames / OFFLINE_FPS
            down = f.get("audio.downbeat:event")
            est_down = None if down is None else np.nonzero(down)[0] / OFFLINE_FPS
            bpm = _scored_median(f["audio.bpm"], np.arange(n) / OFFLINE_FPS, skip)
        elif name == "librosa":
            import librosa
            _, est = librosa.beat.beat_track(y=y, sr=sr, units="time")
            est, est_down, bpm = np.asarray(est), None, None      # bpm from the scored beats
        else:
            raise ValueError(f"unknown tracker {name!r}")
        s = score_beats(est, ref, est_down, ref_down if est_down is not None else None,
                        est_bpm=bpm, ref_bpm=item["bpm"], skip=skip)
        s["seconds"] = time.perf_counter() - t0
        s["beats"] = [round(float(x), 4) for x in est]
        if est_down is not None:
            s["downbeats"] = [round(float(x), 4) for x in est_down]
        s.update(extra)
        out["trackers"][name] = s
    return out


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else float("nan")


def summarise(results, name) -> dict:
    rows = [r["trackers"][name] for r in results if name in r["trackers"]]
    four = [r["trackers"][name]["downbeat_f"] for r in results
            if name in r["trackers"] and r["beats_per_bar"] == 4]
    lat = [x["latency_ms"] for x in rows if x["latency_ms"] is not None]
    s = {"n": len(rows), "f": _mean([x["f"] for x in rows]),
         "f_ge_0.8": _mean([float(x["f"] >= 0.8) for x in rows]),
         "cmlc": _mean([x["cmlc"] for x in rows]), "amlc": _mean([x["amlc"] for x in rows]),
         "tempo_2pct": _mean([float(bool(x["tempo_ok"])) for x in rows]),
         "tempo_2pct_octave": _mean([float(bool(x["tempo_ok_octave"])) for x in rows]),
         "downbeat_f_44": _mean(four) if any(x is not None for x in four) else None,
         "latency_ms_median": float(np.median(lat)) if lat else None,
         "seconds_per_item": _mean([x["seconds"] for x in rows])}
    if name == "live":
        us = np.concatenate([np.asarray(x["block_us"]) for x in rows]) if rows else np.zeros(1)
        s["block_us_median"] = float(np.median(us))
        s["block_us_p99"] = float(np.percentile(us, 99))
    tags = sorted({t for r in results if r["source"] == "hard" for t in r["tags"]})
    s["by_tag"] = {t: {"n": sum(1 for r in results if t in r["tags"]),
                       "f": _mean([r["trackers"][name]["f"] for r in results if t in r["tags"]])} for t in tags}
    s["freedoom_f"] = _mean([r["trackers"][name]["f"] for r in results if r["source"] == "freedoom"])
    # what no tuning has touched in any render: held tracks with no tune render of their MIDI
    # (a tune track's MuseScore render is held, but its music is not new)
    s["by_source"] = {src: {"n": sum(1 for r in results if r["source"] == src),
                            "f": _mean([r["trackers"][name]["f"] for r in results if r["source"] == src])}
                      for src in sorted({r["source"] for r in results})}
    unseen = [r["trackers"][name] for r in results if r["unseen"]]
    s["unseen"] = {"n": len(unseen), "f": _mean([x["f"] for x in unseen]),
                   "tempo_2pct": _mean([float(bool(x["tempo_ok"])) for x in unseen])}
    return s


def _fmt(x, pct=False):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "  -  "
    return f"{x:5.3f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(ROOT / "build" / "beat_corpus"))
    ap.add_argument("--split", default="held", choices=["held", "tune", "all"])
    ap.add_argument("--trackers", default=",".join(TRACKERS))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--every", type=int, default=1, help="score every Nth item (a quick sample)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--skip", type=float, default=8.0, help="warm-up discarded before scoring, s")
    ap.add_argument("--json", default=None)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--set", type=_setting, action="append", default=[], metavar="NAME=NUMBER",
                    help="a bar-pointer keyword argument for the live tracker (repeatable)")
    ap.add_argument("--sources", default="", help="only these sources, comma-separated (e.g. fof,lmms)")
    ap.add_argument("--weights", default="", help="comma-separated beat network files to average")
    args = ap.parse_args(argv)
    weights = tuple(w.strip() for w in args.weights.split(",") if w.strip()) or None
    if weights == ("none",):
        weights = ()
    share = dict(args.set).get("flux_share")
    if share is not None and not 0.0 <= share <= 1.0:
        ap.error(f"--set flux_share={share}: a share is 0..1")
    for w in weights or ():
        if not Path(w).is_file():
            ap.error(f"--weights: no file {w}")
    corpus = Path(args.corpus)
    items = json.loads((corpus / "corpus.json").read_text())
    tuned = {i["track"] for i in items if i["split"] == "tune"}
    for i in items:
        i["unseen"] = i["split"] == "held" and i["track"] not in tuned
    if args.split != "all":
        items = [i for i in items if i["split"] == args.split]
    if args.sources:
        want = {x.strip() for x in args.sources.split(",") if x.strip()}
        items = [i for i in items if i["source"] in want]
    items = items[::max(1, args.every)]
    items = items[:args.limit] if args.limit else items
    trackers = [t.strip() for t in args.trackers.split(",") if t.strip()]
    t0 = time.time()
    jobs = [(i, str(corpus), trackers, args.skip, dict(args.set), weights) for i in items]
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as ex:
            results = list(ex.map(run_item, jobs))
    else:
        results = [run_item(j) for j in jobs]
    elapsed = time.time() - t0
    summary = {t: summarise(results, t) for t in trackers}
    print(f"{len(items)} items ({args.split}), {elapsed:.0f} s, jobs {args.jobs}")
    print(f"{'tracker':8} {'F':>5} {'F>=.8':>5} {'CMLc':>5} {'AMLc':>5} {'T2%':>5} {'T2%x2':>5} "
          f"{'DbF44':>5} {'lat ms':>7} {'s/item':>6}")
    for t, s in summary.items():
        lat = f"{s['latency_ms_median']:7.1f}" if s["latency_ms_median"] is not None else "     - "
        print(f"{t:8} {_fmt(s['f'])} {_fmt(s['f_ge_0.8'])} {_fmt(s['cmlc'])} {_fmt(s['amlc'])} "
              f"{_fmt(s['tempo_2pct'])} {_fmt(s['tempo_2pct_octave'])} {_fmt(s['downbeat_f_44'])} {lat} "
              f"{s['seconds_per_item']:6.2f}")
    if "live" in summary:
        s = summary["live"]
        print(f"live process() per 512-sample block: median {s['block_us_median']:.0f} us, "
              f"p99 {s['block_us_p99']:.0f} us")
    tags = sorted({tag for s in summary.values() for tag in s["by_tag"]})
    if tags:
        print("mean F by tag:  " + "  ".join(f"{t:>8}" for t in trackers))
        for tag in tags:
            n = next(iter(summary.values()))["by_tag"][tag]["n"]
            print(f"  {tag:12} n={n:<3}" + "  ".join(f"{_fmt(summary[t]['by_tag'][tag]['f']):>8}" for t in trackers))
    first = next(iter(summary.values()))
    print("mean F by source:")
    for src, v in first["by_source"].items():
        print(f"  {src:12} n={v['n']:<3}" + "  ".join(f"{_fmt(summary[t]['by_source'][src]['f']):>8}" for t in trackers))
    u = first["unseen"]
    if u["n"]:
        print(f"  {'unseen music':12} n={u['n']:<3}" + "  ".join(f"{_fmt(summary[t]['unseen']['f']):>8}" for t in trackers)
              + "   (held tracks with no tune render; tempo 2%: "
              + ", ".join(f"{t} {_fmt(summary[t]['unseen']['tempo_2pct'])}" for t in trackers) + ")")
    if args.verbose:
        for r in results:
            cells = []
            for t in trackers:
                x = r["trackers"][t]
                cells.append(f"{t}:F={x['f']:.2f} C={x['cmlc']:.2f} A={x['amlc']:.2f} "
                             f"bpm={(x['est_bpm'] or 0):.1f}")
            print(f"{r['id']:44} ref {r['ref_bpm']:6.1f}  " + "  ".join(cells))
    if args.json:
        for r in results:                       # per-block timings only in the summary
            for x in r["trackers"].values():
                x.pop("block_us", None)
        Path(args.json).write_text(json.dumps({"split": args.split, "trackers": trackers, "seconds": elapsed,
                                                "summary": summary, "items": results}, indent=1))


if __name__ == "__main__":
    main()
