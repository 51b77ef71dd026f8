"""``vj analyze``: what the engine hears in a file, as a table (CSV) and a picture (PNG).

Two paths, the same columns:

* real time (default): the file is fed block by block through the live analyser
  (:class:`engine.signals.features.BlockAnalyzer`), as ``vj run --audio`` would, as fast
  as it goes; one row per block, at the time of the block's last sample. The analysis
  time of every block is measured and summarised (median, 99th percentile).
* offline (``--offline``): :func:`engine.signals.offline.offline_features`, as
  ``vj render`` would; one row per video frame (``--fps``).

Events (onset, kick, snare, hat, beat) are 1 on the row where they fire, else 0.
"""
from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from engine.signals import features as F

log = logging.getLogger("vj")

EVENTS = ("onset", "kick", "snare", "hat", "beat")
COLUMNS = ("time", "rms", "low", "mid", "high", "flux", "onset", "kick", "snare", "hat",
           "centroid", "bpm", "beat", "beat_phase", *(f"chroma_{i}" for i in range(12)))


@dataclass
class Analysis:
    """One row per block (real time) or per frame (offline): ``table[column]`` arrays."""
    table: dict[str, np.ndarray]
    path: str = "offline"                   # "realtime" or "offline"
    rate: float = 0.0                       # rows per second
    block_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))   # wall time per block
    cpu_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))     # thread CPU time per block
    block_duration_ms: float = 0.0

    @property
    def rows(self) -> int:
        return len(self.table["time"])

    def timing(self) -> dict[str, float]:
        """Per-block analysis time: median and 99th percentile, wall clock and CPU."""
        if not len(self.block_ms):
            return {}
        return {"blocks": len(self.block_ms), "block_ms": self.block_duration_ms,
                "median_ms": float(np.median(self.block_ms)),
                "p99_ms": float(np.percentile(self.block_ms, 99)),
                "cpu_median_ms": float(np.median(self.cpu_ms)),
                "cpu_p99_ms": float(np.percentile(self.cpu_ms, 99))}


def analyze_realtime(y: np.ndarray, sr: int, block: int = 512) -> Analysis:
    """Feed ``y`` block by block (the last partial block is dropped) through a fresh
    BlockAnalyzer; every block's features, its events as 0/1, and its analysis time."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim > 1:
        y = y.mean(axis=int(np.argmin(y.shape)))
    return _realtime((y[i * block:(i + 1) * block] for i in range(len(y) // block)), sr, block)


def _realtime(blocks, sr: int, block: int) -> Analysis:
    """:func:`analyze_realtime` over an iterable of blocks (a file read a block at a
    time); blocks shorter than ``block`` are skipped. Rows are kept in chunks of numpy
    arrays: a few dozen bytes per block, never the samples."""
    an = F.BlockAnalyzer(sr, block)
    names = {c: F.PREFIX + c for c in COLUMNS if not c.startswith("chroma_") and c != "time"}
    perf, thread = time.perf_counter, time.thread_time
    size = 4096
    done: list[tuple[dict, np.ndarray, np.ndarray, np.ndarray]] = []

    def fresh():
        return {c: np.zeros(size, np.float32) for c in names}, np.zeros((size, 12), np.float32), \
            np.zeros(size), np.zeros(size)

    table, chroma, wall, cpu = fresh()
    i = n = 0
    for x in blocks:
        if len(x) < block:
            continue
        w0, c0 = perf(), thread()
        values, events = an.process(x)
        wall[i], cpu[i] = perf() - w0, thread() - c0
        for c, name in names.items():
            table[c][i] = (1.0 if name in events else 0.0) if c in EVENTS else values[name]
        chroma[i] = values[F.CHROMA]
        i, n = i + 1, n + 1
        if i == size:
            done.append((table, chroma, wall, cpu))
            table, chroma, wall, cpu = fresh()
            i = 0
    done.append(({c: v[:i] for c, v in table.items()}, chroma[:i], wall[:i], cpu[:i]))
    out = {"time": (np.arange(1, n + 1) * block / sr).astype(np.float64)}
    for c in names:
        out[c] = np.concatenate([d[0][c] for d in done])
    chroma = np.concatenate([d[1] for d in done])
    for k in range(12):
        out[f"chroma_{k}"] = chroma[:, k]
    out = {c: out[c] for c in COLUMNS}
    wall, cpu = np.concatenate([d[2] for d in done]), np.concatenate([d[3] for d in done])
    return Analysis(out, "realtime", sr / block, wall * 1e3, cpu * 1e3, 1e3 * block / sr)


def analyze_offline(y: np.ndarray, sr: int, fps: float = 30.0) -> Analysis:
    """:func:`offline_features` at ``fps``, one row per frame of the whole file."""
    from engine.signals.offline import offline_features
    n_frames = max(1, int(round(len(y) / sr * fps)))
    return _offline_table(offline_features(y, sr, fps, n_frames), n_frames, fps)


def _offline_table(feats: dict[str, np.ndarray], n_frames: int, fps: float) -> Analysis:
    from engine.signals.offline import EVENT
    table: dict[str, np.ndarray] = {"time": np.arange(n_frames) / float(fps)}
    for c in COLUMNS[1:]:
        if c.startswith("chroma_"):
            table[c] = feats[F.CHROMA][:, int(c.split("_")[1])]
        elif c in EVENTS:
            table[c] = feats[F.PREFIX + c + EVENT].astype(np.float32)
        else:
            table[c] = feats[F.PREFIX + c]
    return Analysis(table, "offline", float(fps))


class Waveform:
    """The waveform as a min/max envelope, ~2000 columns over the file, gathered a block
    at a time (``frames``: the expected length, to size the columns)."""

    COLUMNS = 2000

    def __init__(self, sr: int, frames: int | None):
        self.sr = sr
        self.per = max(1, (frames or sr * 600) // self.COLUMNS)
        self.n = 0
        self.peak = 0.0
        self._rest = np.zeros(0, np.float32)
        self._lo: list[np.ndarray] = []
        self._hi: list[np.ndarray] = []

    def add(self, y: np.ndarray) -> None:
        self.n += len(y)
        if len(y):
            self.peak = max(self.peak, float(np.abs(y).max()))
        y = np.concatenate([self._rest, y])
        m = len(y) // self.per
        seg = y[:m * self.per].reshape(m, self.per)
        self._lo.append(seg.min(axis=1) if m else np.zeros(0, np.float32))
        self._hi.append(seg.max(axis=1) if m else np.zeros(0, np.float32))
        self._rest = y[m * self.per:]

    @property
    def duration(self) -> float:
        return self.n / self.sr

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(column centre times s, minima, maxima)."""
        lo, hi = np.concatenate(self._lo), np.concatenate(self._hi)
        return (np.arange(len(lo)) + 0.5) * self.per / self.sr, lo, hi


def write_csv(path, analysis: Analysis) -> None:
    t = analysis.table
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for i in range(analysis.rows):
            w.writerow([f"{t['time'][i]:.6f}"] + [
                str(int(t[c][i])) if c in EVENTS else f"{float(t[c][i]):.6g}" for c in COLUMNS[1:]])


def read_csv(path) -> dict[str, np.ndarray]:
    """A CSV written by :func:`write_csv`, back as arrays by column."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], np.array(rows[1:], dtype=np.float64).reshape(-1, len(rows[0]))
    return {c: body[:, i] for i, c in enumerate(header)}


def plot(path, wave: "Waveform", analysis: Analysis, title: str = "") -> None:
    """The features over the waveform, on one time axis, as a PNG: waveform with onsets
    (thin lines) and beats (thick); levels; flux with kick / snare / hat hits; centroid,
    beat phase and bpm; chroma."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    t = analysis.table
    x = t["time"]
    dur = wave.duration
    fig, axes = plt.subplots(5, 1, figsize=(14, 11), sharex=True,
                             gridspec_kw={"height_ratios": [1.3, 1, 1, 1, 1.2]})
    ax = axes[0]
    tt, lo, hi = wave.columns()
    if len(tt):
        ax.fill_between(tt, lo, hi, color="0.55", lw=0)
    for ti in x[t["onset"] > 0]:
        ax.axvline(ti, color="tab:orange", lw=0.6, alpha=0.7)
    for ti in x[t["beat"] > 0]:
        ax.axvline(ti, color="tab:red", lw=1.6, alpha=0.8)
    ax.set_ylabel("waveform\nonsets, beats")
    peak = wave.peak
    ax.set_ylim(-1.05 * peak - 1e-6, 1.05 * peak + 1e-6)
    ax.set_title(title or f"vj analyze ({analysis.path})")

    ax = axes[1]
    for c, col in (("rms", "k"), ("low", "tab:red"), ("mid", "tab:green"), ("high", "tab:blue")):
        ax.plot(x, t[c], color=col, lw=0.8, label=c)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("levels")
    ax.legend(loc="upper right", ncol=4, fontsize=8)

    ax = axes[2]
    ax.plot(x, t["flux"], color="tab:purple", lw=0.8, label="flux")
    for k, (c, col) in enumerate((("kick", "tab:red"), ("snare", "tab:green"), ("hat", "tab:blue"))):
        hits = x[t[c] > 0]
        ax.plot(hits, np.full(len(hits), 1.1 + 0.12 * k), "|", color=col, ms=8, label=c)
    ax.set_ylim(0, 1.5)
    ax.set_ylabel("flux, drums")
    ax.legend(loc="upper right", ncol=4, fontsize=8)

    ax = axes[3]
    ax.plot(x, t["centroid"], color="tab:brown", lw=0.8, label="centroid")
    ax.plot(x, t["beat_phase"], color="tab:red", lw=0.6, alpha=0.6, label="beat phase")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("centroid, phase")
    ax.legend(loc="upper left", ncol=2, fontsize=8)
    bx = ax.twinx()
    bx.plot(x, t["bpm"], color="k", lw=1.2, label="bpm")
    bx.set_ylabel("bpm")
    known = t["bpm"][t["bpm"] > 0]
    if len(known):
        lo, hi = float(known.min()), float(known.max())
        bx.set_ylim(lo - 10, hi + 10)

    ax = axes[4]
    chroma = np.stack([t[f"chroma_{i}"] for i in range(12)])
    step = float(x[1] - x[0]) if len(x) > 1 else 1.0
    x0 = x[0] - (step if analysis.path == "realtime" else step / 2)
    ax.imshow(chroma, aspect="auto", origin="lower", interpolation="nearest", cmap="magma",
              extent=(x0, x0 + step * len(x), -0.5, 11.5), vmin=0, vmax=1)
    ax.set_yticks(range(12), F.PITCH_CLASSES, fontsize=7)
    ax.set_ylabel("chroma")
    ax.set_xlabel("time (s)")
    ax.set_xlim(0, max(dur, float(x[-1]) if len(x) else 0.0))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(path, out=None, plot_path=None, offline: bool = False, fps: float = 30.0,
        block: int = 512) -> Analysis:
    """``vj analyze``: analyse the file, write the CSV and/or the plot, log a summary."""
    from engine.signals.audio import AudioError, AudioReader
    # the file is read a block at a time on every path: a long file is never in memory whole
    with AudioReader(path) as reader:
        sr = reader.sr
        wave = Waveform(sr, reader.frames)
        if offline:
            from engine.signals.offline import file_features
            feats, sr, duration, n_frames = file_features(path, fps)
            a = _offline_table(feats, n_frames, fps)
            if plot_path:
                for y in reader.blocks(1 << 16):
                    wave.add(y)
        else:
            def blocks():
                for y in reader.blocks(block):
                    wave.add(y)
                    yield y
            a = _realtime(blocks(), sr, block)
            duration = wave.duration
            if wave.n == 0:
                raise AudioError(f"audio file has no samples: {path}")
    if out:
        write_csv(out, a)
    if plot_path:
        plot(plot_path, wave, a, title=f"{path} ({a.path})")
    t = a.table
    bpm = t["bpm"][t["bpm"] > 0]
    log.info("%s: %.2f s at %d Hz, %d rows (%s, %.4g per s): %d onsets, %d kicks, %d snares, %d hats, "
             "%d beats, tempo %s", path, duration, sr, a.rows, a.path, a.rate,
             *(int(t[e].sum()) for e in EVENTS), f"{bpm[-1]:.1f} bpm" if len(bpm) else "not found")
    timing = a.timing()
    if timing:
        log.info("per block of %d samples (%.2f ms of audio): analysis median %.3f ms, p99 %.3f ms "
                 "(CPU time: median %.3f ms, p99 %.3f ms) over %d blocks", block, timing["block_ms"],
                 timing["median_ms"], timing["p99_ms"], timing["cpu_median_ms"], timing["cpu_p99_ms"],
                 timing["blocks"])
    for p in (out, plot_path):
        if p:
            log.info("wrote %s", p)
    return a
