"""The live beat tracker over a whole signal, for ``vj render`` and the training tools.

:class:`BandStream` computes what :class:`~engine.signals.features.BlockAnalyzer`
computes block by block (the log-frequency band magnitudes the tracker reads), many
blocks at a time from pieces of any size; :func:`track_signal` steps the same
:class:`~engine.signals.beats.BeatTracker` over them, frame by frame, as live.
"""
from __future__ import annotations

import math

import numpy as np

from engine.signals.beats import BeatTracker
from engine.signals.features import LOG_GAMMA, ChromaStream, default_fft_size, log_filterbank


class BandStream:
    """What :class:`~engine.signals.features.BlockAnalyzer` computes block by block (the
    log-frequency band magnitudes of each block, linear: ``log1p(LOG_GAMMA * m)`` are
    its log bands), for a signal handed over in pieces of any size, many blocks at a
    time. Frame k ends at sample (k + 1) * block."""

    def __init__(self, sr: int, block: int = 512, n_fft: int | None = None):
        self.sr, self.block = int(sr), int(block)
        self.n_fft = int(n_fft or default_fft_size(self.sr, self.block))
        fb, self.freqs = log_filterbank(self.sr, self.n_fft)
        self.window = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)
        self.fb_scaled = fb * (2.0 / float(np.sum(self.window)))
        self._buf = np.zeros(self.n_fft - self.block, np.float32)    # the window before the next block

    def feed(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(band magnitudes [frames, bands], RMS of each block) of the whole blocks now
        complete."""
        buf = np.concatenate([self._buf, np.asarray(y, np.float32)])
        head = self.n_fft - self.block
        n = (len(buf) - head) // self.block
        out = np.empty((n, self.fb_scaled.shape[1]), np.float32)
        for a in range(0, n, 2048):                 # a few thousand frames at a time
            b = min(n, a + 2048)
            idx = (np.arange(a, b) * self.block)[:, None] + np.arange(self.n_fft)[None, :]
            out[a:b] = np.abs(np.fft.rfft(buf[idx] * self.window, axis=1)) @ self.fb_scaled
        blocks = buf[head:head + n * self.block].reshape(n, self.block)
        rms = np.sqrt(np.mean(blocks.astype(np.float64) ** 2, axis=1))
        self._buf = buf[n * self.block:]
        self.blocks = blocks          # the samples of those blocks (for the pitch classes)
        return out, rms


def band_magnitudes(y: np.ndarray, sr: int, block: int = 512, n_fft: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """:class:`BandStream` over a whole signal: (band magnitudes, band centre frequencies)."""
    stream = BandStream(sr, block, n_fft)
    mags, _ = stream.feed(y)
    return mags, stream.freqs


def tracker_block(sr: int) -> int:
    """The block the tracker steps at for a sample rate: a power of two near 11.6 ms
    (512 at 44.1 and 48 kHz), as the live analyser's default."""
    return 1 << max(5, round(math.log2(512 / 44100 * sr)))


def track_signal(chunks, sr: int) -> dict:
    """The live tracker over a whole signal, given in pieces of any size (a file read a
    block at a time): exactly what it does live, frame by frame, for ``vj render``.
    Returns beat and downbeat times (s), and per tracker frame its end time, tempo and
    beats per bar."""
    block = tracker_block(sr)
    stream = BandStream(sr, block)
    pitch = ChromaStream(sr, block)       # as the live analyser hears the harmony
    tracker = BeatTracker(sr / block, stream.freqs)
    beats, downs, times, bpm, meter = [], [], [], [], []
    k = 0
    for chunk in chunks:
        mags, rms = stream.feed(chunk)
        for m, level, x in zip(np.log1p(LOG_GAMMA * mags), rms, stream.blocks):
            k += 1
            t = k * block / sr
            beat, down = tracker.update(m, t, float(level), pitch.feed(x)[0])
            if beat:
                beats.append(t)
            if down:
                downs.append(t)
            times.append(t)
            bpm.append(tracker.bpm)
            meter.append(tracker.beats_per_bar)
    return {"beats": np.array(beats), "downbeats": np.array(downs), "times": np.array(times),
            "bpm": np.array(bpm, np.float32), "beats_per_bar": np.array(meter, np.int8)}
