"""Synthetic audio with known events, and the scoring the audio tests share."""
from __future__ import annotations

import numpy as np

SR = 44100


def rng(seed=0):
    return np.random.default_rng(seed)


def click(sr=SR, seed=0):
    """A 5 ms decaying noise burst (a click)."""
    n = int(0.005 * sr)
    return (rng(seed).standard_normal(n) * np.exp(-np.arange(n) / (0.001 * sr))).astype(np.float32)


def place(y, times, sound, gain=1.0, sr=SR):
    for t in times:
        i = int(round(t * sr))
        n = min(len(sound), len(y) - i)
        if n > 0:
            y[i:i + n] += gain * sound[:n]
    return y


def click_track(bpm, seconds=16.0, first=0.1, amp=0.8, noise_db=None, sr=SR, seed=0):
    """Clicks every beat at ``bpm`` from ``first``; optional white noise at ``noise_db``
    dBFS RMS. Returns (y, click times)."""
    times = np.arange(first, seconds - 0.05, 60.0 / bpm)
    y = place(np.zeros(int(seconds * sr), np.float32), times, click(sr, seed), amp, sr)
    if noise_db is not None:
        y += (rng(seed + 1).standard_normal(len(y)) * 10 ** (noise_db / 20)).astype(np.float32)
    return y, times


def tone(midi, seconds=1.0, harmonics=(1.0, 0.5, 0.33, 0.25), amp=0.3, sr=SR):
    """A harmonic tone at MIDI pitch ``midi`` with a 10 ms fade-in."""
    f = 440.0 * 2 ** ((midi - 69) / 12)
    t = np.arange(int(seconds * sr)) / sr
    y = sum(a * np.sin(2 * np.pi * f * (k + 1) * t) for k, a in enumerate(harmonics))
    return (amp * y * np.minimum(1.0, t / 0.01)).astype(np.float32)


def chord(midis, seconds, amp=0.05, sr=SR):
    """Sustained notes with 50 ms fades at both ends."""
    t = np.arange(int(seconds * sr)) / sr
    y = sum(tone(m, seconds, (1.0, 0.3), 1.0, sr) for m in midis)
    return (amp * y * np.minimum(1.0, (seconds - t) / 0.05) * np.minimum(1.0, t / 0.05)).astype(np.float32)


def bandpassed_noise(lo, hi, n, sr=SR, seed=0):
    x = rng(seed).standard_normal(2 * n)
    X = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / sr)
    X[(f < lo) | (f > hi)] = 0.0
    y = np.fft.irfft(X)[:n]
    return (y / np.sqrt(np.mean(y ** 2))).astype(np.float32)


def kick(sr=SR):
    """A bass drum: a sine sweeping 110 -> 50 Hz, decaying over ~0.12 s (0.6 s long)."""
    n = int(0.6 * sr)
    t = np.arange(n) / sr
    phase = 2 * np.pi * np.cumsum(50 + 60 * np.exp(-t / 0.03)) / sr
    return (0.8 * np.sin(phase) * np.exp(-t / 0.12)).astype(np.float32)


def snare(sr=SR):
    """Noise 1.2-3.5 kHz, decaying over 40 ms."""
    n = int(0.15 * sr)
    return (0.3 * bandpassed_noise(1200, 3500, n, sr, 1) * np.exp(-np.arange(n) / (0.04 * sr))).astype(np.float32)


def hat(sr=SR):
    """Noise 7-14 kHz, decaying over 8 ms."""
    n = int(0.15 * sr)
    return (0.15 * bandpassed_noise(7000, 14000, n, sr, 2) * np.exp(-np.arange(n) / (0.008 * sr))).astype(np.float32)


DRUM_SOUNDS = {"kick": kick, "snare": snare, "hat": hat}


def drum_track(pattern, seconds=10.0, step=0.3, first=0.2, sr=SR):
    """``pattern`` (e.g. ["kick", "hat", "snare", "hat"]) cycled every ``step`` s.
    Returns (y, {kind: times})."""
    y = np.zeros(int(seconds * sr), np.float32)
    times = {k: [] for k in DRUM_SOUNDS}
    t, k = first, 0
    while t < seconds - 0.3:
        kind = pattern[k % len(pattern)]
        if kind:
            place(y, [t], DRUM_SOUNDS[kind](sr), sr=sr)
            times[kind].append(t)
        t += step
        k += 1
    return y, {k: np.array(v) for k, v in times.items()}


def run_blocks(y, analyzer):
    """Feed y block by block; (list of value dicts, {event name: [block end times]})."""
    B = analyzer.block
    values, events = [], {}
    for i in range(0, len(y) - B + 1, B):
        v, e = analyzer.process(y[i:i + B])
        values.append(v)
        for name in e:
            events.setdefault(name, []).append((i + B) / analyzer.sr)
    return values, {k: np.array(v) for k, v in events.items()}


def f_measure(detected, reference, tol=0.030):
    """Onset-evaluation F-measure: each reference event matches at most one detection
    within ``tol`` s (either side), greedily in time order. Returns (F, precision, recall)."""
    det = sorted(float(d) for d in detected)
    used = [False] * len(det)
    hits = 0
    for r in sorted(float(x) for x in reference):
        for j, d in enumerate(det):
            if not used[j] and abs(d - r) <= tol:
                used[j] = True
                hits += 1
                break
    p = hits / len(det) if det else 0.0
    rc = hits / len(reference) if len(reference) else 0.0
    return (2 * p * rc / (p + rc) if p + rc else 0.0), p, rc


def nearest_errors(times, reference):
    """For each time, the signed distance (s) to the nearest reference time."""
    ref = np.asarray(reference, dtype=np.float64)
    return np.array([t - ref[np.argmin(np.abs(ref - t))] for t in times])
