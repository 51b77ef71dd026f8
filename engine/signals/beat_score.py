"""Scoring beat trackers against ground truth, and running the live analyser over a
signal held in memory (for ``tools/beat_eval.py`` and the tests).

``mir_eval`` (the ``test`` extra) is imported only when scoring.
"""
from __future__ import annotations

import time

import numpy as np

WINDOW = 0.07          # F-measure tolerance, s
SKIP = 8.0             # warm-up discarded before scoring, s


def _trim(beats, skip: float) -> np.ndarray:
    b = np.asarray([] if beats is None else beats, dtype=np.float64).ravel()
    return np.sort(b[b >= skip])


def _tempo_ok(est: float | None, ref: float | None, tol: float = 0.02) -> tuple[bool, bool]:
    if not est or not ref or not np.isfinite(est) or est <= 0:
        return False, False
    exact = abs(est / ref - 1.0) <= tol
    octave = any(abs(est / (ref * f) - 1.0) <= tol for f in (1.0, 2.0, 0.5))
    return bool(exact), bool(octave)


def score_beats(est_beats, ref_beats, est_downbeats=None, ref_downbeats=None,
                est_bpm: float | None = None, ref_bpm: float | None = None,
                skip: float = SKIP) -> dict:
    """Scores of estimated beats against reference beats, both in seconds, after
    discarding everything before ``skip`` s in both.

    Returns f (F-measure at +-70 ms), cmlc, cmlt, amlc, amlt (mir_eval continuity),
    tempo_ok / tempo_ok_octave (est_bpm within 2 % of ref_bpm; also allowing x2, x1/2;
    None without a reference bpm), downbeat_f (None unless both downbeat lists are
    given), latency_ms (median signed estimate - reference of beats matched within
    70 ms; None if none match), n_est, n_ref. ``est_bpm`` defaults to 60 over the
    median interval of the scored estimated beats, ``ref_bpm`` likewise."""
    import mir_eval
    est = _trim(est_beats, skip)
    ref = _trim(ref_beats, skip)
    out = {"n_est": int(len(est)), "n_ref": int(len(ref))}
    if len(ref) and len(est):
        out["f"] = float(mir_eval.beat.f_measure(ref, est, WINDOW))
    else:
        out["f"] = 0.0
    if len(ref) >= 2 and len(est) >= 2:
        cmlc, cmlt, amlc, amlt = mir_eval.beat.continuity(ref, est)
    else:
        cmlc = cmlt = amlc = amlt = 0.0
    out.update(cmlc=float(cmlc), cmlt=float(cmlt), amlc=float(amlc), amlt=float(amlt))
    if est_bpm is None and len(est) >= 2:
        est_bpm = float(60.0 / np.median(np.diff(est)))
    if ref_bpm is None and len(ref) >= 2:
        ref_bpm = float(60.0 / np.median(np.diff(ref)))
    out["est_bpm"] = None if est_bpm is None else float(est_bpm)
    out["ref_bpm"] = None if ref_bpm is None else float(ref_bpm)
    if ref_bpm:
        out["tempo_ok"], out["tempo_ok_octave"] = _tempo_ok(est_bpm, ref_bpm)
    else:
        out["tempo_ok"] = out["tempo_ok_octave"] = None
    out["downbeat_f"] = None
    if est_downbeats is not None and ref_downbeats is not None:
        ed, rd = _trim(est_downbeats, skip), _trim(ref_downbeats, skip)
        out["downbeat_f"] = float(mir_eval.beat.f_measure(rd, ed, WINDOW)) if len(ed) and len(rd) else 0.0
    out["latency_ms"] = None
    if len(ref) and len(est):
        pairs = mir_eval.util.match_events(ref, est, WINDOW)
        if pairs:
            d = [est[j] - ref[i] for i, j in pairs]
            out["latency_ms"] = float(np.median(d) * 1000.0)
    return out


def live_beats(y, sr: int, block: int = 512, **kwargs) -> dict:
    """Run :class:`engine.signals.features.BlockAnalyzer` (chroma off) over a mono
    signal a block at a time, as live: beats and downbeats as the analyser's time (end
    of the block) when their event fires. Returns beats (array, s), downbeats (array,
    or None if the analyser never reported an ``audio.downbeat`` event key), bpm
    (``audio.bpm`` per block), times (end of each block), block_us (process() time
    per block, microseconds)."""
    from engine.signals.features import BEAT, BPM, BlockAnalyzer
    y = np.asarray(y, dtype=np.float32)
    if y.ndim > 1:
        y = y.mean(axis=int(np.argmin(y.shape)))
    kwargs.setdefault("chroma", True)
    an = BlockAnalyzer(sr, block=block, **kwargs)
    n = len(y) // block
    beats, downs, bpm, times, us = [], [], np.zeros(n), np.zeros(n), np.zeros(n)
    saw_down = False
    clock = time.perf_counter_ns
    for k in range(n):
        x = y[k * block:(k + 1) * block]
        t0 = clock()
        channels, events = an.process(x)
        us[k] = (clock() - t0) / 1000.0
        times[k] = an.time
        bpm[k] = float(channels.get(BPM, 0.0))
        if BEAT in events:
            beats.append(an.time)
        if "audio.downbeat" in events:
            saw_down = True
            downs.append(an.time)
    return {"beats": np.array(beats), "downbeats": np.array(downs) if saw_down else None,
            "bpm": bpm, "times": times, "block_us": us}
