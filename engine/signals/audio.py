"""Audio analysis: files and live input become ``audio.*`` channels and events on the bus.

Channels (floats; all but ``audio.rms_db`` normalised to 0..1):

========================  ===============================================================
``audio.rms``             loudness of the block (time-domain RMS)
``audio.low/mid/high``    band levels (RMS of the band, default 20-250 / 250-4000 /
                          4000-16000 Hz; one channel ``audio.<name>`` per key of ``bands``)
``audio.flux``            half-wave-rectified spectral flux of the log-compressed spectrum
``audio.onset``           envelope: 1.0 on an onset, decaying with a 0.15 s time constant
``audio.rms_db``          RMS in dBFS, floor -100 (not normalised)
========================  ===============================================================

Event ``audio.onset`` (value: onset strength 0..1) fires on each detected onset.

Two paths compute the same names:

* live (:class:`BlockAnalyzer`, used by :class:`FileSource` and :class:`InputSource`):
  causal, block by block, normalised by an automatic gain per feature (a peak follower
  with instant attack, ~10 s release and an absolute floor, so digital silence stays 0);
* offline (:func:`offline_features`): the whole file is known, values are sampled at
  video frame times and normalised by a high percentile over the whole file.

The spectral helpers (:func:`band_bins`, :func:`band_levels`, :func:`log_spectrum`,
:func:`spectral_flux`) work on the last axis, so one frame (live) and a stack of frames
(offline) go through the same code.
"""
from __future__ import annotations

import collections
import logging
import math
import os
import threading
import time
from typing import Mapping

import numpy as np

log = logging.getLogger(__name__)

BANDS = {"low": (20, 250), "mid": (250, 4000), "high": (4000, 16000)}

PREFIX = "audio."
RMS = "audio.rms"
RMS_DB = "audio.rms_db"
FLUX = "audio.flux"
ONSET = "audio.onset"            # the envelope channel and the event share this name
ONSET_EVENT_KEY = "audio.onset:event"   # offline_features' bool array of event frames

DB_FLOOR = -100.0
ONSET_DECAY = 0.15               # s, time constant of the audio.onset envelope
ONSET_MIN_GAP = 0.05             # s, at most one onset per gap
GAIN_RELEASE = 10.0              # s, release time constant of the automatic gain
LEVEL_FLOOR_DB = -60.0           # level (dBFS) that reads 1.0 on a gain that has seen nothing louder
BAND_FLOOR_DB = -30.0            # a band this far below the overall level (its gain) reads 1.0 at most
FLUX_FLOOR = 0.02                # flux that reads 1.0 likewise; see log_spectrum
LOG_GAMMA = 100.0                # log compression of the magnitude spectrum for flux
OFFLINE_PERCENTILE = 99.0


class AudioError(RuntimeError):
    """A file that cannot be found, read or decoded."""


def band_names(bands: Mapping[str, tuple[float, float]] = BANDS) -> list[str]:
    return [PREFIX + name for name in bands]


def feature_names(bands: Mapping[str, tuple[float, float]] = BANDS) -> list[str]:
    """The float channels, in a stable order."""
    return [RMS, *band_names(bands), FLUX, ONSET, RMS_DB]


# ---------------------------------------------------------------------------------------
# pure spectral helpers

def default_fft_size(sr: int, block: int) -> int:
    """Two blocks, and at least ~23 ms (1024 at 44.1 kHz), as a power of two."""
    need = max(2 * block, int(sr * 0.023))
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


def rms_to_db(rms, floor: float = DB_FLOOR):
    with np.errstate(divide="ignore"):
        db = 20.0 * np.log10(np.maximum(rms, 1e-12))
    return np.maximum(db, floor)


def _features_spec(bands) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Names normalised by the gain, their absolute floors, and their floors relative
    to the overall level's gain (bands only: without it, each band's own gain would
    blow window leakage or a band that is nearly empty up to 1.0)."""
    names = [RMS, *band_names(bands), FLUX]
    level_floor = 10.0 ** (LEVEL_FLOOR_DB / 20.0)
    floors = np.array([level_floor] * (1 + len(bands)) + [FLUX_FLOOR])
    rel = np.array([0.0] + [10.0 ** (BAND_FLOOR_DB / 20.0)] * len(bands) + [0.0])
    return names, floors, rel


def normalise(raw: np.ndarray, ref: np.ndarray, floors: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """raw / max(ref, floors, rel * ref[rms]) clipped to 0..1 (last axis = features, the
    first of them the RMS). ``ref``: the gain's peaks (live) or percentiles (offline)."""
    denom = np.maximum(np.maximum(ref, floors), rel * ref[..., :1])
    return np.clip(raw / denom, 0.0, 1.0)


# ---------------------------------------------------------------------------------------
# live analysis

class BlockAnalyzer:
    """Causal per-block features: state carried from block to block, no look-ahead.

    Each call to :meth:`process` takes the newest block, runs an rfft over the last
    ``n_fft`` samples (default two blocks, Hann window), and returns the normalised
    features plus the onset strength (or None). Raw, un-normalised values of the last
    block stay in :attr:`raw`, the power spectrum in :attr:`power` (bins at
    :attr:`freqs`), for later stages (tempo, chroma, drums) to build on.

    Onsets: the flux must exceed ``onset_factor * median(flux over the last
    onset_window s) + onset_delta``, must have been below its threshold since the last
    onset (a rising edge), and be at least ``min_gap`` s after the last onset.
    """

    def __init__(self, sr: int, block: int = 512, bands=BANDS, *, n_fft: int | None = None,
                 release: float = GAIN_RELEASE, onset_factor: float = 1.5,
                 onset_delta: float = 0.01, onset_window: float = 0.5,
                 min_gap: float = ONSET_MIN_GAP, onset_decay: float = ONSET_DECAY):
        self.sr = int(sr)
        self.block = int(block)
        self.bands = dict(bands)
        self.n_fft = int(n_fft or default_fft_size(self.sr, self.block))
        self.dt = self.block / self.sr
        self.window = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
        self.freqs = np.fft.rfftfreq(self.n_fft, 1.0 / self.sr)
        self.bins = band_bins(self.sr, self.n_fft, self.bands)
        self.power_scale = 2.0 / (self.n_fft * float(np.sum(self.window.astype(np.float64) ** 2)))
        self.mag_scale = 2.0 / float(np.sum(self.window))
        self.names, self.floors, self.rel_floors = _features_spec(self.bands)
        self.release = release
        self.onset_factor = onset_factor
        self.onset_delta = onset_delta
        self.min_gap = min_gap
        self.onset_decay = onset_decay
        self._hist_len = max(3, round(onset_window / self.dt))
        self.reset()

    def reset(self) -> None:
        n_bins = self.n_fft // 2 + 1
        self._buf = np.zeros(self.n_fft, np.float32)
        self._prev_log = np.zeros(n_bins, np.float32)
        self.power = np.zeros(n_bins, np.float32)
        self._peaks = self.floors.copy()
        self._flux_hist = np.zeros(self._hist_len)
        self._hist_i = 0
        self._hist_n = 0
        self._armed = True
        self._since_onset = math.inf
        self.envelope = 0.0
        self.time = 0.0            # seconds of audio processed (end of the last block)
        self.raw: dict[str, float] = {}
        self._out: dict[str, float] | None = None

    def _gain_decay(self, dt: float) -> float:
        return math.exp(-dt / self.release)

    def process(self, block: np.ndarray) -> tuple[dict[str, float], float | None]:
        """Mono float32 block (any length; normally ``block`` samples; a 2-D (n, ch)
        block is averaged to mono) -> (features by name, onset strength or None)."""
        x = np.asarray(block, dtype=np.float32)
        if x.ndim > 1:
            x = x.mean(axis=1)
        n = x.shape[0]
        if n == 0:
            return self._last_values(), None
        ms = float(np.dot(x, x)) / n
        if not math.isfinite(ms):
            x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
            ms = float(np.dot(x, x)) / n
        buf = self._buf
        if n >= self.n_fft:
            buf[:] = x[-self.n_fft:]
        else:
            buf[:-n] = buf[n:]
            buf[-n:] = x
        dt = n / self.sr
        self.time += dt

        spec = np.fft.rfft(buf * self.window)
        power = spec.real * spec.real + spec.imag * spec.imag
        self.power = power
        rms = math.sqrt(ms)
        levels = band_levels(power, self.bins, self.power_scale)
        logmag = log_spectrum(np.sqrt(power), self.mag_scale)
        flux = float(spectral_flux(logmag, self._prev_log))
        self._prev_log = logmag

        raw = np.array([rms, *levels.tolist(), flux])
        peaks = np.maximum(raw, self._peaks * self._gain_decay(dt))
        self._peaks = peaks
        norm = normalise(raw, peaks, self.floors, self.rel_floors)

        # onset: adaptive threshold against the recent flux (not including this block)
        hist = self._flux_hist if self._hist_n >= self._hist_len else self._flux_hist[:self._hist_n]
        thr = self.onset_delta + (self.onset_factor * float(np.median(hist)) if len(hist) else 0.0)
        self._flux_hist[self._hist_i] = flux
        self._hist_i = (self._hist_i + 1) % self._hist_len
        self._hist_n += 1
        self._since_onset += dt
        self.envelope *= math.exp(-dt / self.onset_decay)
        strength = None
        if flux > thr:
            if self._armed and self._since_onset >= self.min_gap:
                strength = float(norm[-1])
                self.envelope = 1.0
                self._since_onset = 0.0
                self._armed = False
        else:
            self._armed = True

        out = dict(zip(self.names, norm.tolist()))
        out[ONSET] = self.envelope
        out[RMS_DB] = float(rms_to_db(rms))
        self.raw = dict(zip(self.names, raw.tolist()))
        self.raw["threshold"] = thr
        self._out = out
        return out, strength

    def _last_values(self) -> dict[str, float]:
        out = self._out
        if out is None:
            out = {name: 0.0 for name in self.names}
            out[ONSET] = 0.0
            out[RMS_DB] = DB_FLOOR
        return dict(out)


# ---------------------------------------------------------------------------------------
# files

def load_audio(path, sr: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """float32 samples and their rate: mono -> shape (n,), else (n, channels) (the
    soundfile / sounddevice layout). Native sample rate unless ``sr`` is given
    (resampled with librosa / soxr). WAV, FLAC, OGG, MP3 go through soundfile; anything
    else (m4a, aac, the audio track of a video) through PyAV. Raises AudioError for a
    missing, unreadable or empty file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioError(f"audio file not found: {path}")
    try:
        import soundfile as sf
        y, file_sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as sf_err:  # noqa: BLE001 - fall back to PyAV for other formats
        try:
            y, file_sr = _load_with_av(path)
        except Exception as av_err:  # noqa: BLE001
            raise AudioError(f"cannot decode audio file {path}: {sf_err}; {av_err}") from av_err
    if y.shape[0] == 0:
        raise AudioError(f"audio file has no samples: {path}")
    if mono:
        y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
    y = np.ascontiguousarray(y, dtype=np.float32)
    if sr is not None and int(sr) != int(file_sr):
        import librosa
        y = librosa.resample(y, orig_sr=file_sr, target_sr=int(sr), axis=0).astype(np.float32)
        file_sr = int(sr)
    return y, int(file_sr)


def _load_with_av(path: str) -> tuple[np.ndarray, int]:
    import av
    chunks = []
    with av.open(path) as container:
        if not container.streams.audio:
            raise AudioError("no audio stream")
        stream = container.streams.audio[0]
        channels = stream.channels or 1
        layout = "mono" if channels == 1 else "stereo"
        resampler = av.AudioResampler(format="flt", layout=layout, rate=stream.rate)
        sr = stream.rate
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1, 1 if layout == "mono" else 2))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1, 1 if layout == "mono" else 2))
    if not chunks:
        raise AudioError("no audio decoded")
    return np.concatenate(chunks).astype(np.float32), int(sr)


def offline_features(y: np.ndarray, sr: int, fps: float, n_frames: int, bands=BANDS, *,
                     hop: int | None = None, percentile: float = OFFLINE_PERCENTILE
                     ) -> dict[str, np.ndarray]:
    """Features at the video frame times t_k = k / fps, k = 0..n_frames-1.

    Each value describes the audio in the window *centred on* t_k, covering one frame
    period [t_k - 0.5/fps, t_k + 0.5/fps): ``audio.rms`` is the exact RMS over it, band
    levels the RMS of the analysis frames (hop ~11.6 ms, centred frames of 2 hops)
    whose centres lie in it, ``audio.flux`` the largest flux among them, so no transient
    is skipped at low fps. Frames beyond the end of the audio read as silence.

    Normalisation knows the whole file: each float (except ``audio.rms_db``, dBFS) is
    divided by its ``percentile`` over all frames of the file (not just the first
    n_frames) and clipped to 0..1, with the live path's floors so silence stays 0.

    ``audio.onset:event`` (bool) marks the frames on which an onset event fires: onsets
    from librosa's onset detection on the whole file (times refined to the attack, see
    :func:`onset_times`), each assigned to the first frame at or after it (several in
    one frame give one event). ``audio.onset`` is the envelope: 1.0 on an event frame,
    decaying with a 0.15 s time constant. A 2-D ``y`` is averaged to mono over its
    shorter axis.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim > 1:
        y = y.mean(axis=int(np.argmin(y.shape)))
    n_frames = int(n_frames)
    fps = float(fps)
    sr = int(sr)
    hop = int(hop or default_hop(sr))
    n_fft = 2 * hop
    names, floors, rel = _features_spec(bands)
    n = y.shape[0]
    duration = n / sr

    # video frames covering the whole file (for normalisation) and the requested ones
    n_all = max(n_frames, int(math.ceil(duration * fps)))
    t = np.arange(n_all) / fps
    a = np.clip(np.round((t - 0.5 / fps) * sr).astype(np.int64), 0, n)
    b = np.clip(np.round((t + 0.5 / fps) * sr).astype(np.int64), 0, n)

    # exact RMS over each frame period
    csum = np.concatenate([[0.0], np.cumsum(y.astype(np.float64) ** 2)])
    span = np.maximum(np.round((t + 0.5 / fps) * sr) - np.round((t - 0.5 / fps) * sr), 1)
    rms = np.sqrt(np.maximum(csum[b] - csum[a], 0.0) / span)

    # STFT (centred frames) in chunks, band power and flux per analysis frame
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    power_scale = 2.0 / (n_fft * float(np.sum(window.astype(np.float64) ** 2)))
    mag_scale = 2.0 / float(np.sum(window))
    bins = band_bins(sr, n_fft, bands)
    n_fine = n // hop + 1
    padded = np.concatenate([np.zeros(n_fft // 2, np.float32), y,
                             np.zeros(n_fft // 2 + hop, np.float32)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_fine]
    band_pow = np.empty((n_fine, len(bins)))
    flux = np.empty(n_fine)
    prev = np.zeros(n_fft // 2 + 1, np.float32)
    chunk = 2048
    for s in range(0, n_fine, chunk):
        spec = np.fft.rfft(frames[s:s + chunk] * window, axis=-1)
        power = spec.real * spec.real + spec.imag * spec.imag
        band_pow[s:s + chunk] = band_levels(power, bins, power_scale) ** 2
        logmag = log_spectrum(np.sqrt(power), mag_scale)
        flux[s:s + chunk] = spectral_flux(logmag, np.concatenate([prev[None], logmag[:-1]]))
        prev = logmag[-1]

    # analysis frames whose centres (j * hop) lie in [a, b): at least the nearest one
    j0 = np.ceil((t - 0.5 / fps) * sr / hop).astype(np.int64)
    j1 = np.ceil((t + 0.5 / fps) * sr / hop).astype(np.int64)
    nearest = np.round(t * sr / hop).astype(np.int64)
    empty = j1 <= j0
    j0 = np.where(empty, nearest, j0)
    j1 = np.where(empty, nearest + 1, j1)
    width = int(max(1, (j1 - j0).max())) if n_all else 1
    idx = j0[:, None] + np.arange(width)[None, :]
    valid = (idx < j1[:, None]) & (idx >= 0) & (idx < n_fine)
    idx = np.clip(idx, 0, n_fine - 1)
    count = np.maximum(valid.sum(axis=1), 1)
    levels = np.sqrt((band_pow[idx] * valid[..., None]).sum(axis=1) / count[:, None])
    frame_flux = np.where(valid, flux[idx], 0.0).max(axis=1)

    raw = np.column_stack([rms, levels, frame_flux])        # (n_all, len(names))
    inside = t < duration
    ref = np.percentile(raw[inside], percentile, axis=0) if inside.any() else np.zeros(len(names))
    norm = normalise(raw, ref, floors, rel)

    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        out[name] = norm[:n_frames, i].astype(np.float32)
    out[RMS_DB] = rms_to_db(rms[:n_frames]).astype(np.float32)

    events = np.zeros(n_frames, bool)
    if n_frames and n >= n_fft and np.any(y):
        for t_on in onset_times(y, sr):
            k = int(math.ceil(t_on * fps - 1e-6))
            if 0 <= k < n_frames:
                events[k] = True
    out[ONSET_EVENT_KEY] = events
    out[ONSET] = onset_envelope(events, fps)
    return out


def onset_times(y: np.ndarray, sr: int, hop: int | None = None, refine: bool = True) -> np.ndarray:
    """Onset times (s) of a whole mono signal: librosa's onset detection (spectral flux
    + peak picking) at ``hop`` (default: half the offline hop, ~5.8 ms), then, with
    ``refine``, each moved to the steepest rise of the short-time energy within the
    preceding two hops (librosa reports the first analysis frame *after* the onset,
    2-9 ms late at hop 256; refined times land within ~1 ms of the attack)."""
    import librosa
    y = np.asarray(y, np.float32)
    hop = int(hop or default_hop(sr) // 2)
    times = librosa.onset.onset_detect(y=y, sr=sr, hop_length=hop, units="time", backtrack=False)
    if refine and len(times):
        times = refine_onsets(y, sr, times, before=2.0 * hop / sr)
    return np.asarray(times, dtype=np.float64)


def refine_onsets(y: np.ndarray, sr: int, times, before: float = 0.012, after: float = 0.002,
                  win: float = 0.002) -> np.ndarray:
    """Move each onset time to the largest rise of the log energy (``win`` s frames,
    half-overlapping) within [t - before, t + after]. Pure numpy."""
    w = max(8, int(win * sr))
    h = w // 2
    out = np.asarray(times, dtype=np.float64).copy()
    for k, t in enumerate(out):
        a = max(0, int((t - before) * sr) - w)
        b = min(len(y), int((t + after) * sr) + w)
        seg = y[a:b].astype(np.float64)
        if len(seg) < 3 * w:
            continue
        energy = np.lib.stride_tricks.sliding_window_view(seg * seg, w)[::h].mean(axis=1)
        rise = np.diff(np.log10(energy + 1e-10))
        i = int(np.argmax(rise)) + 1
        out[k] = (a + i * h + 0.5 * w) / sr
    return out


def onset_envelope(events: np.ndarray, fps: float, decay: float = ONSET_DECAY) -> np.ndarray:
    """1.0 on each event frame, exp(-dt / decay) after it; 0 before the first event."""
    k = np.arange(len(events))
    last = np.maximum.accumulate(np.where(events, k, -1)) if len(events) else k
    env = np.where(last >= 0, np.exp(-(k - last) / (fps * decay)), 0.0)
    return env.astype(np.float32)


# ---------------------------------------------------------------------------------------
# sources

def _import_sounddevice():
    """The sounddevice module, or None (with the reason) when it or PortAudio is missing."""
    try:
        import sounddevice
        return sounddevice, None
    except (OSError, ImportError) as e:
        return None, e


def list_devices() -> list[dict]:
    """Audio devices as dicts (index, name, hostapi, max_input_channels,
    max_output_channels, default_samplerate); [] when PortAudio is missing. Never raises."""
    sd, _ = _import_sounddevice()
    if sd is None:
        return []
    try:
        hostapis = sd.query_hostapis()
        out = []
        for i, d in enumerate(sd.query_devices()):
            api = d.get("hostapi")
            out.append({
                "index": i,
                "name": d.get("name", ""),
                "hostapi": hostapis[api]["name"] if api is not None and api < len(hostapis) else "",
                "max_input_channels": int(d.get("max_input_channels", 0)),
                "max_output_channels": int(d.get("max_output_channels", 0)),
                "default_samplerate": float(d.get("default_samplerate", 0.0)),
            })
        return out
    except Exception:  # noqa: BLE001
        return []


def _publish(bus, values: dict, strength: float | None, t: float) -> None:
    bus.update(values, t)
    if strength is not None:
        bus.emit(ONSET, strength, t)


def _close_quietly(stream) -> None:
    # a device that vanished mid-show may fail to stop; it is being dropped anyway
    if stream is not None:
        try:
            stream.stop()
            stream.close()
        except Exception:  # noqa: BLE001
            pass


class FileSource:
    """Plays an audio file in real time in a background thread, analysing block by block
    and publishing to the bus with each block's time (monotonic s at which the block's
    last sample is heard, or would be heard when silent).

    Audible through sounddevice when play=True and an output device exists; then the
    device paces playback (blocking writes) and each block's features are held back by
    the output latency so visuals line up with what is heard. If sounddevice/PortAudio
    is missing or the device fails, it logs one warning and goes on silently, paced by
    time.monotonic(). loop=True restarts at the end; otherwise it publishes silence
    (zeros) after the end (``finished`` turns True). Raises AudioError at construction
    for a missing or undecodable file.
    """

    def __init__(self, bus, path, block: int = 512, loop: bool = False, play: bool = True,
                 bands=BANDS, device=None):
        self.bus = bus
        self.path = os.fspath(path)
        self.block = int(block)
        self.loop = loop
        self.play = play
        self.device = device
        self.data, self.sr = load_audio(self.path, mono=False)       # (n, ch)
        self.duration = len(self.data) / self.sr
        self.analyzer = BlockAnalyzer(self.sr, self.block, bands)
        self.position = 0            # next sample to play
        self.finished = False
        self.audible = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream = None

    def start(self) -> "FileSource":
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="audio-file", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self._close_stream()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- internals ----------------------------------------------------------------------
    def _open_stream(self):
        sd, err = _import_sounddevice()
        if sd is None:
            log.warning("audio: sounddevice/PortAudio unavailable (%s); playing %s silently",
                        err, os.path.basename(self.path))
            return None
        try:
            channels = min(self.data.shape[1], 2)
            stream = sd.OutputStream(samplerate=self.sr, blocksize=self.block, channels=channels,
                                     dtype="float32", device=self.device, latency="low")
            stream.start()
            return stream
        except Exception as e:  # noqa: BLE001
            log.warning("audio: cannot open output device %r (%s); playing %s silently",
                        self.device, e, os.path.basename(self.path))
            return None

    def _close_stream(self):
        stream, self._stream = self._stream, None
        _close_quietly(stream)

    def _next_block(self) -> np.ndarray:
        """The next (block, ch) slice of the file, zero-padded, looping if asked."""
        B, n = self.block, len(self.data)
        out = np.zeros((B, self.data.shape[1]), np.float32)
        filled = 0
        while filled < B and not self.finished:
            take = min(B - filled, n - self.position)
            out[filled:filled + take] = self.data[self.position:self.position + take]
            filled += take
            self.position += take
            if self.position >= n:
                if self.loop:
                    self.position = 0
                else:
                    self.finished = True
        return out

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # noqa: BLE001 - a source never takes the engine down
            log.exception("audio: file source %s crashed", self.path)

    def _loop(self) -> None:
        if self.play:
            self._stream = self._open_stream()
        self.audible = self._stream is not None
        dt = self.block / self.sr
        pending: collections.deque = collections.deque()   # (t_heard, values, strength)
        t0 = time.monotonic()
        k = 0                                               # blocks since t0
        while not self._stop.is_set():
            frames = self._next_block()
            mono = frames.mean(axis=1) if frames.shape[1] > 1 else frames[:, 0]
            values, strength = self.analyzer.process(mono)
            stream = self._stream
            if stream is not None:
                try:
                    stream.write(np.ascontiguousarray(frames[:, :stream.channels]))
                    latency = float(stream.latency or 0.0)
                    pending.append((time.monotonic() + latency, values, strength))
                except Exception as e:  # noqa: BLE001
                    log.warning("audio: output device failed (%s); continuing silently", e)
                    self._close_stream()
                    self.audible = False
                    pending.append((time.monotonic(), values, strength))
                    t0, k = time.monotonic(), 0
                    continue
                now = time.monotonic()
                while pending and pending[0][0] <= now:
                    t, v, s = pending.popleft()
                    _publish(self.bus, v, s, t)
                continue
            # silent: the block is "heard" when its last sample would be
            while pending:                    # flush anything held back for the device
                t, v, s = pending.popleft()
                _publish(self.bus, v, s, t)
            k += 1
            due = t0 + k * dt
            wait = due - time.monotonic()
            if wait < -0.25:                  # fell far behind (suspend, debugger): resync
                t0, k = time.monotonic(), 0
                due = t0
            elif wait > 0:
                if self._stop.wait(wait):
                    break
            _publish(self.bus, values, strength, due)


class InputSource:
    """Live input through sounddevice.InputStream (device by name or index, None = the
    default input). The stream callback only copies the block (mono mix) into a bounded
    deque with its capture time; a worker thread analyses and publishes with that time
    (monotonic s of the block's last sample, from the callback's ADC time when the host
    provides it). No device, no PortAudio, or a device error: logs one warning,
    publishes nothing (patches read 0.0), never raises into the caller."""

    def __init__(self, bus, device=None, block: int = 512, sr: int | None = None,
                 bands=BANDS, channels: int = 1):
        self.bus = bus
        self.device = device
        self.block = int(block)
        self.sr = sr
        self.bands = bands
        self.channels = channels
        self.analyzer: BlockAnalyzer | None = None
        self.error: str | None = None
        self.overflows = 0
        self._queue: collections.deque = collections.deque(maxlen=256)
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream = None

    @property
    def running(self) -> bool:
        return self._stream is not None and self._thread is not None and self._thread.is_alive()

    def start(self) -> "InputSource":
        if self._stream is not None:
            return self
        sd, err = _import_sounddevice()
        if sd is None:
            return self._fail(f"sounddevice/PortAudio unavailable ({err})")
        try:
            stream = sd.InputStream(samplerate=self.sr, blocksize=self.block, device=self.device,
                                    channels=self.channels, dtype="float32",
                                    callback=self._callback, finished_callback=self._finished)
            self.sr = int(stream.samplerate)
            self.analyzer = BlockAnalyzer(self.sr, self.block, self.bands)
            self._stop.clear()
            self._thread = threading.Thread(target=self._worker, name="audio-input", daemon=True)
            self._thread.start()
            self._stream = stream
            stream.start()
        except Exception as e:  # noqa: BLE001
            self._stream = None
            self._stop.set()
            self._ready.set()
            return self._fail(f"cannot open input device {self.device!r} ({e})")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._ready.set()
        stream, self._stream = self._stream, None
        _close_quietly(stream)
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    # -- internals ----------------------------------------------------------------------
    def _fail(self, why: str) -> "InputSource":
        self.error = why
        log.warning("audio: %s; audio input disabled, audio.* channels stay 0", why)
        return self

    def _callback(self, indata, frames, time_info, status) -> None:
        now = time.monotonic()
        if status:
            self.overflows += 1
        t = now
        try:
            delay = time_info.currentTime - time_info.inputBufferAdcTime
            if time_info.inputBufferAdcTime > 0 and 0.0 <= delay < 1.0:
                t = now - delay + frames / (self.sr or 1)   # last sample of the block
        except Exception:  # noqa: BLE001
            pass
        block = indata[:, 0].copy() if indata.shape[1] == 1 else indata.mean(axis=1)
        self._queue.append((block, min(t, now)))
        self._ready.set()

    def _finished(self) -> None:
        if not self._stop.is_set():
            log.warning("audio: input stream from device %r stopped unexpectedly", self.device)
            self.error = "input stream stopped"
            self._ready.set()

    def _worker(self) -> None:
        q = self._queue
        while not self._stop.is_set():
            self._ready.wait(0.5)
            self._ready.clear()
            while q and not self._stop.is_set():
                block, t = q.popleft()
                try:
                    values, strength = self.analyzer.process(block)
                    _publish(self.bus, values, strength, t)
                except Exception:  # noqa: BLE001
                    log.exception("audio: analysis failed")
