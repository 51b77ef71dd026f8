"""``vj bench --audio``: what the live analysis costs per block, the beat tracker included.

Runs :class:`~engine.signals.features.BlockAnalyzer` block by block over a file (or 30 s
of a synthesised drum pattern with chords, when none is given), with every feature, and
again in the same run without the beat tracker (the baseline): median and p99 of the
wall time per block, and the ratio. Prints the machine; the analysis is float32 NumPy.
"""
from __future__ import annotations

import platform
import time

import numpy as np

from engine.signals.features import BlockAnalyzer


def _signal(sr: int, seconds: float = 30.0) -> np.ndarray:
    """A kick/snare/hat pattern at 120 bpm over a sustained chord (no file needed)."""
    rng = np.random.default_rng(0)
    n = int(seconds * sr)
    y = np.zeros(n, np.float32)
    t = np.arange(int(0.2 * sr)) / sr
    kick = np.sin(2 * np.pi * 55 * t) * np.exp(-t / 0.08)
    noise = rng.standard_normal(len(t)) * np.exp(-t / 0.03)
    for k, start in enumerate(np.arange(0, seconds - 0.3, 0.25)):
        i = int(start * sr)
        hit = kick if k % 4 == 0 else (0.5 * noise if k % 4 == 2 else 0.15 * noise)
        y[i:i + len(hit)] += hit.astype(np.float32)
    tt = np.arange(n) / sr
    y += 0.05 * sum(np.sin(2 * np.pi * f * tt) for f in (220.0, 277.2, 329.6)).astype(np.float32)
    return 0.5 * y / np.abs(y).max()


def _time(y: np.ndarray, sr: int, block: int, tempo: bool) -> np.ndarray:
    an = BlockAnalyzer(sr, block, tempo=tempo)
    out = []
    for i in range(0, len(y) - block + 1, block):
        t0 = time.perf_counter()
        an.process(y[i:i + block])
        out.append(time.perf_counter() - t0)
    return np.array(out) * 1e6


def run_audio_bench(path=None, block: int = 512) -> dict:
    if path:
        from engine.signals.audio import load_audio
        y, sr = load_audio(path)
        y = np.asarray(y, np.float32)
        if y.ndim > 1:
            y = y.mean(axis=1)
    else:
        sr = 44100
        y = _signal(sr)
    _time(y[: sr * 2], sr, block, True)                    # warm up (imports, caches)
    base = _time(y, sr, block, False)
    full = _time(y, sr, block, True)
    r = {"machine": f"{platform.machine()}, {platform.processor() or platform.system()}",
         "precision": "float32 NumPy (CPU)", "block": block, "sr": sr, "blocks": len(full),
         "budget_us": 1e6 * block / sr,
         "baseline_median_us": float(np.median(base)), "baseline_p99_us": float(np.percentile(base, 99)),
         "median_us": float(np.median(full)), "p99_us": float(np.percentile(full, 99))}
    r["ratio_median"] = r["median_us"] / r["baseline_median_us"]
    print(f"audio analysis, {r['blocks']} blocks of {block} at {sr} Hz ({r['budget_us']:.0f} us of audio each); "
          f"{r['machine']}, {r['precision']}")
    print(f"  without the beat tracker (baseline): median {r['baseline_median_us']:.0f} us, "
          f"p99 {r['baseline_p99_us']:.0f} us")
    print(f"  every feature:                       median {r['median_us']:.0f} us, p99 {r['p99_us']:.0f} us "
          f"({r['ratio_median']:.2f}x the baseline)")
    return r
