"""Causal audio features, block by block: what the engine hears, live.

:class:`BlockAnalyzer` takes one block of samples at a time (no look-ahead) and returns
the ``audio.*`` channels and the events of that block. The channel names, the spectral
helpers shared with the offline path (``engine.signals.offline``) and the
normalisation rules live here too.

Channels (floats 0..1 unless said otherwise):

==========================  ==============================================================
``audio.rms``               loudness of the block (time-domain RMS)
``audio.rms_db``            RMS in dBFS, floor -100 (not normalised)
``audio.low/mid/high``      band levels (RMS of the band; default 20-250 / 250-4000 /
                            4000-16000 Hz; one channel ``audio.<name>`` per key of ``bands``)
``audio.flux``              spectral flux (SuperFlux: log-frequency bands, vibrato
                            suppression by a maximum filter across frequency)
``audio.onset``             envelope: 1.0 on an onset, decaying with a 0.15 s time constant
``audio.kick/snare/hat``    the same for band-limited onsets, where the change is
                            concentrated in the band (default 30-150 / 1000-4000 /
                            6000-16000 Hz; one per key of ``drums``)
``audio.centroid``          spectral centroid on a log scale: 100 Hz = 0, 1 kHz = 0.5,
                            10 kHz = 1 (``audio.centroid_hz``: in Hz)
``audio.harmonic``          level of the sustained (harmonic) part, causal median-filter
``audio.percussive``        HPSS; the percussive part likewise
``audio.chroma``            12 floats, pitch classes C, C#, ..., B (max = 1); also
``audio.chroma_bass``       from notes below middle C (C4, 261.6 Hz) only, and
``audio.chroma_treble``     from middle C up
``audio.bpm``               tempo in beats per minute (0 until one is found)
``audio.beat``              envelope: 1.0 on a beat, decaying with a 0.15 s time constant
``audio.beat_phase``        0 on the beat, rising to 1 at the next
``audio.beat_confidence``   how much onset the recent beats landed on, 0..1
``audio.downbeat``          envelope: 1.0 on the first beat of a bar, decaying like the beat
``audio.bar_phase``         0 on the downbeat, rising to 1 at the next (3/4 and 4/4)
==========================  ==============================================================

Events (value: strength 0..1): ``audio.onset``, ``audio.kick``, ``audio.snare``,
``audio.hat``, ``audio.beat`` and ``audio.downbeat`` (value: the tracker's confidence).

Levels (rms, bands, flux, harmonic, percussive) are normalised by an automatic gain per
feature: a peak follower with instant attack, ~10 s release and absolute floors, so any
input level reads 0..1 and digital silence stays 0. Bands, harmonic and percussive are
also floored relative to the overall level, so a nearly empty band is not blown up.

Input gain (:meth:`BlockAnalyzer.set_gain`): a gain in dB (``GAIN_DB_RANGE``) scales the
samples before analysis, and a mode says how the levels are normalised: ``auto`` (the
automatic gain above), ``slow`` (its release ``GAIN_SLOW_RELEASE``: a quiet passage stays
quiet), ``locked`` (its peaks frozen: louder reads louder, up to 1) and ``manual`` (no
automatic gain: fixed references, ``MANUAL_LEVEL_DB`` dBFS RMS and ``MANUAL_FLUX`` read 1.0
at 0 dB, so +6 dB doubles a level). Onsets and drums always keep their own automatic gain.
"""
from __future__ import annotations

import collections
import math
from typing import Mapping

import numpy as np

from engine.signals.beats import BeatTracker

BANDS = {"low": (20, 250), "mid": (250, 4000), "high": (4000, 16000)}
DRUMS = {"kick": (30, 150), "snare": (1000, 4000), "hat": (6000, 16000)}

PREFIX = "audio."
RMS = "audio.rms"
RMS_DB = "audio.rms_db"
FLUX = "audio.flux"
ONSET = "audio.onset"            # the envelope channel and the event share this name
HARMONIC = "audio.harmonic"
PERCUSSIVE = "audio.percussive"
CENTROID = "audio.centroid"
CENTROID_HZ = "audio.centroid_hz"
CHROMA = "audio.chroma"
CHROMA_BASS = "audio.chroma_bass"
CHROMA_TREBLE = "audio.chroma_treble"
BPM = "audio.bpm"
BEAT = "audio.beat"
BEAT_PHASE = "audio.beat_phase"
DOWNBEAT = "audio.downbeat"         # the envelope channel and the event share this name
BAR_PHASE = "audio.bar_phase"
BEAT_CONFIDENCE = "audio.beat_confidence"

DB_FLOOR = -100.0
ONSET_DECAY = 0.15               # s, time constant of the onset / drum / beat envelopes
ONSET_MIN_GAP = 0.05             # s, at most one onset per gap
GAIN_RELEASE = 10.0              # s, release time constant of the automatic gain
GAIN_SLOW_RELEASE = 60.0         # s, the same in the ``slow`` gain mode
GAIN_MODES = ("auto", "slow", "locked", "manual")   # how levels are normalised; see set_gain
GAIN_DB_RANGE = (-24.0, 24.0)    # the input gain, dB
MANUAL_LEVEL_DB = -12.0          # manual gain mode: a level (RMS, dBFS) that reads 1.0 at 0 dB
MANUAL_FLUX = 0.5                # ... and the flux that does (a loud drum hit at full scale)
GAIN_DB = "audio.gain_db"        # the input gain applied, dB (published by the sources)
MAX_SAMPLE = 64.0                # +36 dBFS: samples beyond are clipped (float files may hold anything)
MAX_POWER = MAX_SAMPLE ** 2
LEVEL_FLOOR_DB = -60.0           # level (dBFS) that reads 1.0 on a gain that has seen nothing louder
BAND_FLOOR_DB = -30.0            # a band this far below the overall level (its gain) reads 1.0 at most
FLUX_FLOOR = 0.02                # flux that reads 1.0 likewise; see log_spectrum
WIDE_DRUM_BANDS = 8              # a drum over fewer log bands than this is "narrow" (the kick)
NARROW_REL = 0.25                # ... and a narrow drum's (few bands) this times the overall flux's gain
DRUM_REL = 0.75                  # a drum's band flux must exceed this times the overall flux
FLUX_MEMORY = 0.035              # s: flux is the rise over the maximum of the frames this far back
LOG_GAMMA = 100.0                # log compression of the magnitude spectrum for flux
CENTROID_RANGE = (100.0, 10000.0)  # Hz mapped to 0..1 on a log scale
CHROMA_RANGE = (40.0, 5000.0)    # Hz of the spectrum folded into pitch classes
CHROMA_SPLIT = 261.63            # Hz, middle C: bass chroma below, treble from here up
CHROMA_SECONDS = 0.37            # the chroma's analysis window (fine frequency resolution)
CHROMA_EVERY = 0.02              # s between chroma updates
HPSS_SECONDS = 0.2               # causal HPSS: median over this much past
BEAT_HOP = 512 / 44100            # s between the beat tracker's steps (about)
HPSS_BANDS = 9                   # causal HPSS: median across this many log bands

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def band_names(bands: Mapping[str, tuple[float, float]] = BANDS) -> list[str]:
    return [PREFIX + name for name in bands]


def drum_names(drums: Mapping[str, tuple[float, float]] = DRUMS) -> list[str]:
    return [PREFIX + name for name in drums]


def feature_names(bands=BANDS, drums=DRUMS) -> list[str]:
    """The float channels, in a stable order."""
    return [RMS, *band_names(bands), FLUX, ONSET, *drum_names(drums), HARMONIC, PERCUSSIVE,
            CENTROID, CENTROID_HZ, BPM, BEAT, BEAT_PHASE, BEAT_CONFIDENCE, DOWNBEAT, BAR_PHASE, RMS_DB]


UNNORMALISED = (RMS_DB, CENTROID_HZ, BPM)   # the float channels in natural units, not 0..1


def vector_names() -> list[str]:
    """The 12-float channels."""
    return [CHROMA, CHROMA_BASS, CHROMA_TREBLE]


def event_names(drums=DRUMS) -> list[str]:
    return [ONSET, *drum_names(drums), BEAT, DOWNBEAT]


# ---------------------------------------------------------------------------------------
# pure spectral helpers (the last axis is frequency: one frame or a stack of frames)

def default_fft_size(sr: int, block: int) -> int:
    """Two blocks, and at least ~20 ms (1024 at 44.1 and 48 kHz), as a power of two."""
    need = max(2 * block, int(sr * 0.02))
    return 1 << max(6, math.ceil(math.log2(need)))


def default_hop(sr: int) -> int:
    """The offline analysis hop: a power of two near 11.6 ms (512 at 44.1/48 kHz)."""
    return 1 << max(5, round(math.log2(sr / 86.13)))


def band_bins(sr: int, n_fft: int, bands: Mapping[str, tuple[float, float]] = BANDS
              ) -> list[tuple[int, int]]:
    """(first, stop) rfft bin range per band: bins with lo <= f < hi, at least one bin,
    never the DC bin, capped at Nyquist."""
    n_bins = n_fft // 2 + 1
    df = sr / n_fft
    out = []
    for lo, hi in bands.values():
        a = max(1, math.ceil(lo / df))
        b = min(n_bins, math.ceil(min(hi, sr / 2) / df))
        if b <= a:                      # band narrower than a bin: take the nearest bin
            a = min(n_bins - 1, max(1, round(0.5 * (lo + hi) / df)))
            b = a + 1
        out.append((a, b))
    return out


def band_levels(power: np.ndarray, bins: list[tuple[int, int]], scale: float) -> np.ndarray:
    """RMS level of each band from a one-sided power spectrum |X|^2 (last axis = bins).
    ``scale`` = 2 / (n_fft * sum(window**2)) makes a full-scale sine read 0.707, the same
    scale as the time-domain RMS. Returns shape power.shape[:-1] + (n_bands,)."""
    sums = np.stack([power[..., a:b].sum(axis=-1) for a, b in bins], axis=-1)
    return np.sqrt(sums * scale)


def log_spectrum(mag: np.ndarray, mag_scale: float, gamma: float = LOG_GAMMA) -> np.ndarray:
    """log(1 + gamma * |X| * mag_scale), mag_scale = 2 / sum(window) (a full-scale sine
    peaks at 1). Linear for quiet bins, logarithmic for loud ones, exactly 0 for silence."""
    return np.log1p((gamma * mag_scale) * mag)


def spectral_flux(logmag: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """Mean over bins of the half-wave-rectified increase from ``prev`` to ``logmag``."""
    d = logmag - prev
    np.maximum(d, 0.0, out=d)
    return d.mean(axis=-1)


def max_filter3(x: np.ndarray) -> np.ndarray:
    """Maximum over each bin and its two neighbours (last axis): SuperFlux's vibrato
    suppression, applied to the reference frame."""
    out = x.copy()
    np.maximum(out[..., 1:], x[..., :-1], out=out[..., 1:])
    np.maximum(out[..., :-1], x[..., 1:], out=out[..., :-1])
    return out


def log_filterbank(sr: int, n_fft: int, fmin: float = 30.0, fmax: float = 16000.0,
                   per_octave: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Triangular filters on a log-frequency axis, ``per_octave`` per octave (fewer at
    the bottom, where the FFT bins are wider than that: one filter per bin there).
    Returns (weights [n_bins, n_bands] with unit-area columns, centre frequencies Hz).
    Filters are sorted by frequency, so a frequency range is a slice of bands."""
    df = sr / n_fft
    n_bins = n_fft // 2 + 1
    fmax = min(fmax, sr / 2 - df)
    n = int(math.floor(math.log2(fmax / fmin) * per_octave)) + 1
    centres = fmin * 2.0 ** (np.arange(n) / per_octave)
    bins = np.unique(np.round(centres / df).astype(int))
    bins = bins[(bins >= 1) & (bins < n_bins - 1)]
    edges = np.concatenate([[max(bins[0] - 1, 0)], bins, [bins[-1] + 1]])
    fb = np.zeros((n_bins, len(bins)), np.float32)
    for j in range(len(bins)):
        lo, c, hi = edges[j], edges[j + 1], edges[j + 2]
        fb[c, j] = 1.0
        if c > lo:
            fb[lo + 1:c, j] = (np.arange(lo + 1, c) - lo) / (c - lo)
        if hi > c:
            fb[c + 1:hi, j] = (hi - np.arange(c + 1, hi)) / (hi - c)
    fb /= fb.sum(axis=0, keepdims=True)
    return fb, bins * df


def band_slice(freqs: np.ndarray, lo: float, hi: float) -> slice:
    """The bands (sorted centre frequencies ``freqs``) with lo <= f < hi; at least the
    nearest one."""
    a = int(np.searchsorted(freqs, lo))
    b = int(np.searchsorted(freqs, hi))
    if b <= a:
        a = int(np.argmin(np.abs(freqs - math.sqrt(max(lo, 1.0) * hi))))
        b = a + 1
    return slice(a, b)


def chroma_filters(sr: int, n_fft: int, fmin: float = CHROMA_RANGE[0], fmax: float = CHROMA_RANGE[1]
                   ) -> np.ndarray:
    """[12, n_bins] weights folding an rfft power spectrum into pitch classes (C = 0).
    Each bin in fmin..fmax goes to the pitch classes either side of its pitch, split
    linearly by distance (equal temperament, A4 = 440 Hz)."""
    n_bins = n_fft // 2 + 1
    f = np.arange(n_bins) * sr / n_fft
    w = np.zeros((12, n_bins), np.float32)
    k = np.flatnonzero((f >= fmin) & (f <= fmax))
    if len(k) == 0:
        return w
    midi = 69.0 + 12.0 * np.log2(f[k] / 440.0)
    lo = np.floor(midi)
    frac = midi - lo
    np.add.at(w, ((lo.astype(int)) % 12, k), (1.0 - frac).astype(np.float32))
    np.add.at(w, ((lo.astype(int) + 1) % 12, k), frac.astype(np.float32))
    return w


def lowpass_fir(cutoff: float, taps: int = 31) -> np.ndarray:
    """A windowed-sinc low-pass FIR; ``cutoff`` as a fraction of Nyquist."""
    n = np.arange(taps) - (taps - 1) / 2
    h = cutoff * np.sinc(cutoff * n) * np.hamming(taps)
    return (h / h.sum()).astype(np.float32)


def centroid_unit(hz):
    """Spectral centroid (Hz) to 0..1 on a log scale: CENTROID_RANGE -> 0..1; 0 Hz (silence) -> 0."""
    lo, hi = CENTROID_RANGE
    hz = np.asarray(hz, dtype=np.float64)
    with np.errstate(divide="ignore"):
        u = np.log(np.maximum(hz, 1e-9) / lo) / math.log(hi / lo)
    return np.where(hz > 0, np.clip(u, 0.0, 1.0), 0.0)


def rms_to_db(rms, floor: float = DB_FLOOR):
    with np.errstate(divide="ignore"):
        db = 20.0 * np.log10(np.maximum(rms, 1e-12))
    return np.maximum(db, floor)


def level_spec(bands=BANDS) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The levels normalised by the automatic gain, their absolute floors, and their
    floors relative to the overall level's gain (bands, harmonic, percussive: without
    it, a band's own gain would blow window leakage or a nearly empty band up to 1.0)."""
    names = [RMS, *band_names(bands), FLUX, HARMONIC, PERCUSSIVE]
    level_floor = 10.0 ** (LEVEL_FLOOR_DB / 20.0)
    rel_floor = 10.0 ** (BAND_FLOOR_DB / 20.0)
    floors = np.array([level_floor] * (1 + len(bands)) + [FLUX_FLOOR] + [level_floor] * 2)
    rel = np.array([0.0] + [rel_floor] * len(bands) + [0.0] + [rel_floor] * 2)
    return names, floors, rel


def normalise(raw: np.ndarray, ref: np.ndarray, floors: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """raw / max(ref, floors, rel * ref[rms]) clipped to 0..1 (last axis = features, the
    first of them the RMS). ``ref``: the gain's peaks (live) or percentiles (offline)."""
    denom = np.maximum(np.maximum(ref, floors), rel * ref[..., :1])
    return np.clip(raw / denom, 0.0, 1.0)


def normalise_chroma(c: np.ndarray, floor: float) -> np.ndarray:
    """Pitch-class energies to 0..1 by their maximum (per frame; last axis = 12); frames
    whose maximum is below ``floor`` are scaled down with it, so silence stays 0."""
    m = np.maximum(c.max(axis=-1, keepdims=True), floor)
    return np.minimum(np.maximum(c / m, 0.0), 1.0).astype(np.float32)


class ChromaStream:
    """Pitch classes of a signal fed a block at a time: low-passed and decimated to ~11-12 kHz,
    then an FFT of the last ~0.37 s (fine frequency resolution) every ~20 ms, folded into
    12 classes (all, bass below middle C, treble from it). The live analyser and the beat
    tracker's file path (engine/signals/beat_file.py) share it, so both hear the same."""

    def __init__(self, sr: float, block: int):
        self.sr = float(sr)
        self.decimate = max(1, int(self.sr // (2 * CHROMA_RANGE[1] * 1.1)))
        self.chroma_sr = self.sr / self.decimate
        self.n = 1 << round(math.log2(CHROMA_SECONDS * self.chroma_sr))
        self._aa = lowpass_fir(0.8 / self.decimate) if self.decimate > 1 else None
        self.window = np.hanning(self.n + 1)[:-1].astype(np.float32)
        cf = chroma_filters(self.chroma_sr, self.n)
        split = int(math.ceil(CHROMA_SPLIT * self.n / self.chroma_sr))
        self._hi = int(np.flatnonzero(cf.any(axis=0)).max()) + 1
        self._split = split
        self.bass_filters = np.ascontiguousarray(cf[:, :split])
        self.treble_filters = np.ascontiguousarray(cf[:, split:self._hi])
        self._scale = 2.0 / (self.n * float(np.sum(self.window.astype(np.float64) ** 2)))
        self._floor = (10.0 ** (LEVEL_FLOOR_DB / 20.0)) ** 2     # power of a -60 dBFS sine
        self.every = max(1, round(CHROMA_EVERY / (block / self.sr)))
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(self.n, np.float32)
        self._k = 0
        self._tail = np.zeros(0 if self._aa is None else len(self._aa) - 1, np.float32)
        self._phase = 0
        z = np.zeros(12, np.float32)
        self.out = (z, z, z)

    def rescale(self, r: float) -> None:
        """The input's gain changed by ``r``: as if it had always been on."""
        self._buf *= r
        self._tail *= r

    def feed(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One block in; the latest (all, bass, treble) pitch classes (max 1) out."""
        D = self.decimate
        if D > 1:
            ext = np.concatenate([self._tail, x])
            y = np.convolve(ext, self._aa, mode="valid")            # len(x) outputs
            self._tail = ext[len(ext) - len(self._tail):]
            y = y[self._phase::D]
            self._phase = (self._phase - len(x)) % D
        else:
            y = x
        cb, m = self._buf, len(y)
        if m >= len(cb):
            cb[:] = y[-len(cb):]
        elif m:
            cb[:-m] = cb[m:]
            cb[-m:] = y
        self._k += 1
        if self._k >= self.every:
            self._k = 0
            spec = np.fft.rfft(self._buf * self.window)[:self._hi]
            power = (spec.real * spec.real + spec.imag * spec.imag) * self._scale
            bass = self.bass_filters @ power[:self._split]
            treble = self.treble_filters @ power[self._split:]
            self.out = (normalise_chroma(bass + treble, self._floor), normalise_chroma(bass, self._floor),
                        normalise_chroma(treble, self._floor))
        return self.out


# ---------------------------------------------------------------------------------------
# live analysis

def fast_median(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """The upper median along ``axis`` (np.partition; several times cheaper than
    np.median on the small arrays of one block, and exact for odd lengths)."""
    k = x.shape[axis] // 2
    return np.take(np.partition(x, k, axis=axis), k, axis=axis)


class OnsetPicker:
    """Causal peak picking on a novelty curve, one value per block: an onset when the
    value exceeds ``factor * q(the last window s) + delta``, q being the ``quantile`` of
    that history (the median by default; the current value not included), has been
    below its threshold since the last onset (a rising edge), and comes at least
    ``min_gap`` s after the last onset. A band-limited flux is zero most of the time
    (it only counts rises over the recent past), so the drums use a high quantile: the
    typical size of the band's rises, which a hit must clearly exceed."""

    def __init__(self, dt: float, factor: float = 1.5, window: float = 0.5,
                 min_gap: float = ONSET_MIN_GAP, quantile: float = 0.5, spread: float = 0.0):
        self.dt = dt
        self.factor = factor
        self.quantile = quantile
        self.spread = spread
        self.min_gap = min_gap
        self._hist = np.zeros(max(3, round(window / dt)))
        self.reset()

    def reset(self) -> None:
        self._hist[:] = 0.0
        self._i = 0
        self._n = 0
        self._armed = True
        self._since = math.inf
        self.threshold = 0.0

    def update(self, value: float, delta: float) -> bool:
        hist = self._hist if self._n >= len(self._hist) else self._hist[:self._n]
        thr = delta
        if len(hist):
            if self.spread:
                thr += float(hist.mean()) + self.spread * float(hist.std())
            else:
                k = int(self.quantile * (len(hist) - 1) + 0.5)
                thr += self.factor * float(np.partition(hist, k)[k])
        self.threshold = thr
        self._hist[self._i] = value
        self._i = (self._i + 1) % len(self._hist)
        self._n += 1
        self._since += self.dt
        if value > thr:
            if self._armed and self._since >= self.min_gap:
                self._since = 0.0
                self._armed = False
                return True
            return False
        self._armed = True
        return False


class BlockAnalyzer:
    """Causal per-block features: state carried from block to block, no look-ahead.

    Each call to :meth:`process` takes the newest block and returns (channels by name,
    events by name). Spectra: an rfft over the last ``n_fft`` samples (default two
    blocks, Hann window) for levels, flux, onsets, centroid and HPSS; a second, longer
    one (~0.37 s, every ~20 ms) for chroma. Raw, un-normalised values of the last block
    stay in :attr:`raw`.

    Onsets (``audio.onset`` and each drum): the flux (of all bands, or of the drum's
    bands) must exceed ``onset_factor * median(its last onset_window s) + delta``, where
    delta is ``onset_delta`` times its automatic gain (so the rule is level-independent)
    and at least an absolute floor; see :class:`OnsetPicker`. A drum also needs its band
    flux above ``drum_rel`` times the overall flux (the change is in its band); a narrow
    one (fewer than WIDE_DRUM_BANDS bands: the kick) above NARROW_REL times the overall
    flux's gain too. An onset is the overall flux's, or a wide drum's (a quiet hi-hat
    barely moves the overall flux), at most one per ``min_gap``.

    Tempo, beats, downbeats and the bar come from a :class:`~engine.signals.beats.BeatTracker`
    fed with the log bands; :meth:`set_tempo` seeds it (tap, MIDI clock, OSC, a set).
    """

    def __init__(self, sr: int, block: int = 512, bands=BANDS, *, drums=DRUMS,
                 n_fft: int | None = None, release: float = GAIN_RELEASE,
                 onset_factor: float = 1.5, onset_delta: float = 0.1, onset_window: float = 0.5,
                 min_gap: float = ONSET_MIN_GAP, onset_decay: float = ONSET_DECAY,
                 drum_rel: float = DRUM_REL, chroma: bool = True, tempo: bool = True):
        self.sr = int(sr)
        self.block = int(block)
        self.bands = dict(bands)
        self.drums = dict(drums)
        self.n_fft = int(n_fft or default_fft_size(self.sr, self.block))
        self.dt = self.block / self.sr
        self.window = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
        self.freqs = np.fft.rfftfreq(self.n_fft, 1.0 / self.sr)
        self.bins = band_bins(self.sr, self.n_fft, self.bands)
        self.power_scale = 2.0 / (self.n_fft * float(np.sum(self.window.astype(np.float64) ** 2)))
        self.mag_scale = 2.0 / float(np.sum(self.window))
        self._band_matrix = np.zeros((self.n_fft // 2 + 1, len(self.bins)))
        for j, (a, b) in enumerate(self.bins):
            self._band_matrix[a:b, j] = 1.0
        self.names, self.floors, self.rel_floors = level_spec(self.bands)
        self._n_levels = len(self.names)
        self._flux_i = self.names.index(FLUX)
        # log-frequency bands: SuperFlux, drum onsets, causal HPSS
        self.fb, self.fb_freqs = log_filterbank(self.sr, self.n_fft)
        self.fb_scaled = self.fb * self.mag_scale
        self.flux_memory = max(1, round(FLUX_MEMORY / self.dt))
        self.drum_memory = self.flux_memory
        self.drum_slices = [band_slice(self.fb_freqs, lo, hi) for lo, hi in self.drums.values()]
        self.drum_names = drum_names(self.drums)
        self._inv_nb = 1.0 / self.fb.shape[1]
        self._drum_w = [(sl, 1.0 / (sl.stop - sl.start)) for sl in self.drum_slices]
        # a drum in a wide range of bands also makes an onset (a quiet hi-hat barely moves
        # the overall flux); a narrow one (the kick's few low bins flicker in noise) does
        # not need to: its hits are loud enough for the overall flux
        self._wide = [sl.stop - sl.start >= WIDE_DRUM_BANDS for sl in self.drum_slices]
        self._hpss_len = max(3, round(HPSS_SECONDS / self.dt))
        nb = self.fb.shape[1]
        self._across = np.arange(nb)[:, None] + np.arange(HPSS_BANDS)[None, :]   # into the padded bands
        # centroid: bins above 20 Hz
        self._c_lo = max(1, int(math.ceil(20.0 / (self.sr / self.n_fft))))
        self._c_freqs = self.freqs[self._c_lo:].astype(np.float32)
        # chroma: its own, longer window (ChromaStream)
        self.chroma = ChromaStream(self.sr, self.block) if chroma else None
        self.release = release
        self.onset_delta = onset_delta
        self.drum_rel = drum_rel
        self.onset_decay = onset_decay
        self.min_gap = min_gap
        self.pickers = {name: OnsetPicker(self.dt, onset_factor, onset_window, min_gap)
                        for name in [ONSET, *self.drum_names]}
        # input gain: the mode and dB set from outside (set_gain) are queued, applied per block
        self._gain_commands: collections.deque = collections.deque()
        self._manual_refs = np.where(np.arange(self._n_levels) == self._flux_i, MANUAL_FLUX,
                                     10.0 ** (MANUAL_LEVEL_DB / 20.0))
        self.gain_mode = "auto"
        self.gain_db = 0.0
        self._gain = 1.0
        # the beat tracker steps about every 11.6 ms (what its network learnt at): every
        # block, or every few blocks of a small one
        self._beat_every = max(1, round(BEAT_HOP * self.sr / self.block))
        self.tempo = BeatTracker(1.0 / (self.dt * self._beat_every), self.fb_freqs) if tempo else None
        self.reset()

    def reset(self) -> None:
        n_bins = self.n_fft // 2 + 1
        nb = self.fb.shape[1]
        self._buf = np.zeros(self.n_fft, np.float32)
        self._logs = np.zeros((self.drum_memory, nb), np.float32)   # the last frames, log bands
        self._log_i = 0
        self._hpss = np.zeros((self._hpss_len, nb), np.float32)
        self._hpss_i = 0
        self.power = np.zeros(n_bins, np.float32)
        n_peaks = self._n_levels + len(self.drum_names)
        floors = np.concatenate([self.floors, [FLUX_FLOOR] * len(self.drum_names)])
        self._peak_floors = floors
        self._peaks = floors.copy()              # the automatic gain (onsets and drums: always)
        self._level_peaks = floors[:self._n_levels].copy()   # the levels' gain, as the mode says
        for p in self.pickers.values():
            p.reset()
        self.envelopes = {name: 0.0 for name in [ONSET, *self.drum_names, BEAT, DOWNBEAT]}
        self._since_onset = math.inf
        if self.chroma is not None:
            self.chroma.reset()
        if self.tempo is not None:
            self.tempo.reset()
        self._beat_k, self._beat_level = 0, 0.0
        self.time = 0.0            # seconds of audio processed (end of the last block)
        self._offset = 0.0         # capture time - audio time, from process(t=...)
        self.raw: dict[str, float] = {}
        self._out: dict | None = None
        assert len(self._peaks) == n_peaks

    # -- tempo from outside ------------------------------------------------------------
    def set_tempo(self, bpm: float | None, phase_time: float | None = None, **how) -> None:
        """Seed the beat tracker with a tempo from outside (tap, MIDI clock, OSC, a set
        file): ``bpm`` pulls the tracker to that tempo (None: let go); ``phase_time`` (a
        beat happened then, in the time base of the ``t`` given to :meth:`process`, else
        seconds of audio) pulls it to that beat phase too. The music can still overrule
        it (``how``: see :meth:`BeatTracker.set_tempo`). Safe from any thread."""
        if self.tempo is None:
            return
        phase = None if phase_time is None else phase_time - self._offset
        self.tempo.set_tempo(bpm, phase, **how)

    # -- input gain from outside ---------------------------------------------------------
    def set_gain(self, mode: str | None = None, db: float | None = None) -> None:
        """Set the input gain's ``mode`` (one of GAIN_MODES; None: unchanged) and ``db``
        (clamped to GAIN_DB_RANGE; None: unchanged). Safe from any thread: applied at the
        start of the next block. Raises ValueError for an unknown mode or a non-finite dB."""
        if mode is not None and mode not in GAIN_MODES:
            raise ValueError(f"gain mode {mode!r} is not one of {', '.join(GAIN_MODES)}")
        if db is not None:
            db = float(db)
            if not math.isfinite(db):
                raise ValueError(f"gain {db} dB is not a finite number")
            db = min(GAIN_DB_RANGE[1], max(GAIN_DB_RANGE[0], db))
        self._gain_commands.append((mode, db))

    def _apply_gain(self, mode: str | None, db: float | None) -> None:
        if mode is not None:
            self.gain_mode = mode
        if db is not None and db != self.gain_db:
            g = 10.0 ** (db / 20.0)
            r = g / self._gain
            # what the analysis remembers is rescaled as if the new gain had always been on,
            # so a gain change is not heard as an attack (no flux spike, no onset)
            self._buf *= r
            self._logs[:] = np.log1p(np.expm1(self._logs) * r)
            self._hpss *= r
            if self.chroma is not None:
                self.chroma.rescale(r)
            self.gain_db, self._gain = db, g

    def _level_gain(self, raw: np.ndarray, auto: np.ndarray, dt: float) -> np.ndarray:
        """The levels' denominators (>= the floors, so finite and > 0) for this block's mode."""
        k, mode = self._n_levels, self.gain_mode
        if mode == "manual":
            self._level_peaks = auto.copy()     # tracked unseen: back to auto without a jump
            return self._manual_refs
        if mode == "slow":
            self._level_peaks = np.maximum(raw[:k], self._level_peaks * math.exp(-dt / GAIN_SLOW_RELEASE))
        elif mode == "auto":
            self._level_peaks = auto
        peaks = self._level_peaks                # locked: as they were
        return np.maximum(np.maximum(peaks, self.floors), self.rel_floors * peaks[0])

    # -- one block -----------------------------------------------------------------------
    def process(self, block: np.ndarray, t: float | None = None) -> tuple[dict, dict]:
        """Mono float32 block (any length; normally ``block`` samples; a 2-D (n, ch)
        block is averaged to mono), captured at ``t`` (the time of its last sample, any
        time base; optional) -> (channels by name, events by name: value 0..1)."""
        x = np.asarray(block, dtype=np.float32)
        if x.ndim > 1:
            x = x.mean(axis=1)
        n = x.shape[0]
        if n == 0:
            return self._last_values(), {}
        ms = float(np.dot(x, x)) / n
        if not math.isfinite(ms) or ms > MAX_POWER:
            # a corrupt or hostile block (a float file can hold 1e30): finite and bounded here, or
            # its overflow would leave the levels, peaks and tracker NaN for good
            x = np.clip(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0), -MAX_SAMPLE, MAX_SAMPLE)
            ms = float(np.dot(x, x)) / n
        while self._gain_commands:
            self._apply_gain(*self._gain_commands.popleft())
        if self._gain != 1.0:
            x = x * np.float32(self._gain)
            ms *= self._gain * self._gain
        buf = self._buf
        if n >= self.n_fft:
            buf[:] = x[-self.n_fft:]
        else:
            buf[:-n] = buf[n:]
            buf[-n:] = x
        dt = n / self.sr
        self.time += dt
        if t is not None:
            self._offset = t - self.time

        spec = np.fft.rfft(buf * self.window)
        power = spec.real * spec.real + spec.imag * spec.imag
        self.power = power
        mag = np.sqrt(power)
        rms = math.sqrt(ms)
        levels = np.sqrt((power @ self._band_matrix) * self.power_scale)   # = band_levels()

        # log-frequency bands: SuperFlux against the maximum of the recent frames (over
        # frequency: vibrato; over time: the beating of low tones in a short window)
        fbm = mag @ self.fb_scaled                       # band magnitudes, full-scale sine ~ 1
        logb = np.log1p(LOG_GAMMA * fbm)
        logs, m = self._logs, self.flux_memory
        order = (self._log_i - 1 - np.arange(len(logs))) % len(logs)     # newest first
        ref = logs[order[:m]].max(axis=0)
        d = logb - max_filter3(ref)
        np.maximum(d, 0.0, out=d)
        flux = float(d.sum()) * self._inv_nb
        if len(logs) > m:       # drums: against a longer past (the low bands fluctuate most)
            ref = np.maximum(ref, logs[order[m:]].max(axis=0))
            dd = logb - max_filter3(ref)
            np.maximum(dd, 0.0, out=dd)
        else:
            dd = d
        drum_flux = [float(dd[s].sum()) * w for s, w in self._drum_w]
        logs[self._log_i] = logb
        self._log_i = (self._log_i + 1) % len(logs)

        # causal HPSS: median over the recent past (harmonic) vs across frequency (percussive)
        self._hpss[self._hpss_i] = fbm
        self._hpss_i = (self._hpss_i + 1) % self._hpss_len
        harm_ref = fast_median(self._hpss, axis=0)
        perc_ref = _median_across(fbm, self._across)
        h2, p2 = harm_ref * harm_ref, perc_ref * perc_ref
        tot = h2 + p2
        e_all = float(np.dot(fbm, fbm))
        if e_all > 0.0:
            mask_h = np.divide(h2, tot, out=np.full_like(tot, 0.5), where=tot > 0)
            e_h = float(np.dot(fbm * mask_h, fbm * mask_h))
            e_p = float(np.dot(fbm * (1.0 - mask_h), fbm * (1.0 - mask_h)))
            harmonic, percussive = rms * math.sqrt(e_h / e_all), rms * math.sqrt(e_p / e_all)
        else:
            harmonic = percussive = 0.0

        # centroid
        m = mag[self._c_lo:]
        msum = float(m.sum())
        centroid_hz = float(np.dot(self._c_freqs, m) / msum) if msum > 1e-9 else 0.0

        # automatic gain
        raw = np.array([rms, *levels.tolist(), flux, harmonic, percussive, *drum_flux])
        peaks = np.maximum(raw, self._peaks * math.exp(-dt / self.release))
        self._peaks = peaks
        k = self._n_levels
        norm = np.minimum(raw[:k] / self._level_gain(raw, peaks[:k], dt),
                          1.0)                  # = normalise() (auto); raw and peaks are >= 0
        drum_norm = np.minimum(raw[k:] / np.maximum(peaks[k:], FLUX_FLOOR), 1.0)

        # onsets: thresholds scale with each novelty's own gain; an onset is the overall
        # flux's, or a wide drum's
        events: dict[str, float] = {}
        decay = math.exp(-dt / self.onset_decay)
        env = self.envelopes
        for name in env:
            env[name] *= decay
        delta = self.onset_delta
        fi = self._flux_i
        flux_gain = max(peaks[fi], FLUX_FLOOR)
        onset = self.pickers[ONSET].update(flux, delta * flux_gain)
        strength = float(norm[fi])
        for i, name in enumerate(self.drum_names):
            gain = max(peaks[k + i], FLUX_FLOOR)
            picked = self.pickers[name].update(drum_flux[i], delta * gain)
            # only a change concentrated in the drum's bands: more than the overall flux;
            # a narrow drum's also big next to the loudest recent onsets (noise in a few
            # FFT bins flickers on its own scale)
            if picked and drum_flux[i] > self.drum_rel * flux and (
                    self._wide[i] or drum_flux[i] > NARROW_REL * flux_gain):
                events[name] = float(drum_norm[i])
                env[name] = 1.0
                if self._wide[i]:
                    onset = True
                    strength = max(strength, events[name])
        self._since_onset += dt
        if onset and self._since_onset >= self.min_gap:
            events[ONSET] = strength
            env[ONSET] = 1.0
            self._since_onset = 0.0

        out = dict(zip(self.names, norm.tolist()))
        out.update((name, env[name]) for name in (ONSET, *self.drum_names))
        out[CENTROID] = _centroid_unit1(centroid_hz)
        out[CENTROID_HZ] = centroid_hz
        out[RMS_DB] = max(DB_FLOOR, 20.0 * math.log10(rms)) if rms > 1e-12 else DB_FLOOR

        # chroma, every few blocks, from a longer window
        pitch = None
        if self.chroma is not None:
            out[CHROMA], out[CHROMA_BASS], out[CHROMA_TREBLE] = self.chroma.feed(x)
            pitch = out[CHROMA]

        # tempo, beats and the bar
        tr = self.tempo
        if tr is not None:
            self._beat_k += 1
            self._beat_level = max(self._beat_level, rms)
            beat = down = False
            if self._beat_k >= self._beat_every:
                beat, down = tr.update(logb, self.time, self._beat_level, pitch)
                self._beat_k, self._beat_level = 0, 0.0
            if beat:
                events[BEAT] = tr.confidence
                env[BEAT] = 1.0
            if down:
                events[DOWNBEAT] = tr.confidence
                env[DOWNBEAT] = 1.0
            out[BPM] = tr.bpm
            out[BEAT_PHASE] = tr.phase
            out[BAR_PHASE] = tr.bar_phase
            out[BEAT_CONFIDENCE] = tr.confidence
        else:
            out[BPM] = out[BEAT_PHASE] = out[BAR_PHASE] = out[BEAT_CONFIDENCE] = 0.0
        out[BEAT] = env[BEAT]
        out[DOWNBEAT] = env[DOWNBEAT]

        self.raw = dict(zip(self.names, raw[:k].tolist()))
        self.raw.update(zip(self.drum_names, raw[k:].tolist()))
        self.raw["threshold"] = self.pickers[ONSET].threshold
        self._out = out
        return out, events

    def _last_values(self) -> dict:
        out = self._out
        if out is None:
            out = {name: 0.0 for name in feature_names(self.bands, self.drums)}
            out[RMS_DB] = DB_FLOOR
            if self.chroma is not None:
                for name in vector_names():
                    out[name] = np.zeros(12, np.float32)
        return dict(out)


_CLO, _CSPAN = math.log(CENTROID_RANGE[0]), math.log(CENTROID_RANGE[1] / CENTROID_RANGE[0])


def _centroid_unit1(hz: float) -> float:
    if hz <= 0.0:
        return 0.0
    return min(1.0, max(0.0, (math.log(hz) - _CLO) / _CSPAN))


def _median_across(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Median over neighbouring bands (``idx`` [bands, width] into x padded with
    width // 2 zeros each side)."""
    w = idx.shape[1]
    h = w // 2
    padded = np.concatenate([np.zeros(h, x.dtype), x, np.zeros(h, x.dtype)])
    return np.partition(padded[idx], h, axis=1)[:, h]
