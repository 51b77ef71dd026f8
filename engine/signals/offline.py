"""Offline audio features for ``vj render``: the whole file is known, so every feature
can look ahead (librosa onset detection and beat tracking, constant-Q chroma, HPSS), and
every value is sampled at exactly the video's frame times t_k = k / fps.

The names are the live path's (:mod:`engine.signals.features`), so a patch behaves the
same in ``vj run`` and ``vj render``. :class:`FrameFeed` puts frame k's values and
events on the bus, as the live sources would.
"""
from __future__ import annotations

import math

import numpy as np

from engine.signals.features import (
    BANDS, BEAT, BEAT_CONFIDENCE, BEAT_PHASE, BPM, CENTROID, CENTROID_HZ, CHROMA, CHROMA_BASS,
    CHROMA_TREBLE, DRUM_REL, DRUMS, FLUX, FLUX_FLOOR, FLUX_MEMORY, GAIN_RELEASE, LOG_GAMMA,
    NARROW_REL, ONSET, ONSET_DECAY, ONSET_MIN_GAP, RMS_DB, WIDE_DRUM_BANDS, band_bins, band_levels,
    band_slice, centroid_unit, default_hop, drum_names, level_spec, log_filterbank, max_filter3,
    normalise, rms_to_db)

OFFLINE_PERCENTILE = 99.0
EVENT = ":event"                 # name + EVENT: bool array, True on the frames where it fires
VALUE = ":value"                 # name + VALUE: the event's value (strength 0..1) on those frames
ONSET_EVENT_KEY = ONSET + EVENT
HPSS_KERNEL = 17                 # frames and bins of librosa's median-filter HPSS
CHROMA_BINS = 36                 # constant-Q bins per octave
C1 = 32.703                      # Hz; chroma from C1 over 7 octaves, bass = the first 3 (below C4)


def offline_features(y: np.ndarray, sr: int, fps: float, n_frames: int, bands=BANDS, *,
                     drums=DRUMS, hop: int | None = None, percentile: float = OFFLINE_PERCENTILE,
                     chroma: bool = True, tempo: bool = True) -> dict[str, np.ndarray]:
    """Features at the video frame times t_k = k / fps, k = 0..n_frames-1.

    Each value describes the audio in the window *centred on* t_k, one frame period
    long: ``audio.rms`` is the exact RMS over it; band levels, harmonic and percussive
    levels, centroid and chroma come from the analysis frames (hop ~11.6 ms) whose
    centres lie in it; ``audio.flux`` is the largest flux among them, so no transient
    is skipped at low fps. Frames beyond the end of the audio read as silence.

    Levels are divided by their ``percentile`` over the whole file (not just the first
    n_frames) and clipped to 0..1, with the live path's floors so silence stays 0.

    Events (``audio.onset``, each drum, ``audio.beat``): ``name + ":event"`` (bool)
    marks the frames on which the event fires (the first frame at or after it; several
    in one frame give one event), ``name + ":value"`` its value, and ``name`` is the
    envelope (1.0 on an event frame, decaying with a 0.15 s time constant), as live.

    * onsets: librosa's onset detection on the whole signal, times refined to the attack
      (:func:`onset_times`);
    * drums: band-limited SuperFlux of the percussive part (HPSS), peak-picked
      (:func:`pick_peaks`);
    * ``audio.chroma``, ``_bass``, ``_treble`` (arrays [n_frames, 12]): constant-Q chroma,
      C1..C8, bass below middle C;
    * ``audio.harmonic`` / ``audio.percussive``: the level of each part of a median-filter
      HPSS (librosa), in RMS terms;
    * beats: librosa's dynamic-programming beat tracker; ``audio.bpm`` is the local tempo
      (the median of the nearby beat intervals), ``audio.beat_phase`` rises 0..1 from beat
      to beat (extrapolated before the first and after the last, where
      ``audio.beat_confidence`` is 0; 1 in between).

    A 2-D ``y`` is averaged to mono over its shorter axis.
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if y.ndim > 1:
        y = y.mean(axis=int(np.argmin(y.shape)))
    n_frames = int(n_frames)
    fps = float(fps)
    sr = int(sr)
    hop = int(hop or default_hop(sr))
    n_fft = 2 * hop
    names, floors, rel = level_spec(bands)
    n = y.shape[0]
    duration = n / sr

    # video frames covering the whole file (for normalisation) and the requested ones
    n_all = max(n_frames, int(math.ceil(duration * fps)))
    t = np.arange(n_all) / fps
    lo_s, hi_s = np.round((t - 0.5 / fps) * sr), np.round((t + 0.5 / fps) * sr)
    a = np.clip(lo_s.astype(np.int64), 0, n)
    b = np.clip(hi_s.astype(np.int64), 0, n)

    # exact RMS over each frame period
    csum = np.concatenate([[0.0], np.cumsum(y.astype(np.float64) ** 2)])
    rms = np.sqrt(np.maximum(csum[b] - csum[a], 0.0) / np.maximum(hi_s - lo_s, 1))

    # STFT (centred frames): band power, SuperFlux, centroid, magnitudes for HPSS
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    power_scale = 2.0 / (n_fft * float(np.sum(window.astype(np.float64) ** 2)))
    mag_scale = 2.0 / float(np.sum(window))
    bins = band_bins(sr, n_fft, bands)
    fb, fb_freqs = log_filterbank(sr, n_fft)
    fb = fb * mag_scale
    memory = max(1, round(FLUX_MEMORY * sr / hop))
    n_fine = n // hop + 1
    padded = np.concatenate([np.zeros(n_fft // 2, np.float32), y, np.zeros(n_fft // 2 + hop, np.float32)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_fine]
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr).astype(np.float32)
    mag = np.empty((n_fine, n_fft // 2 + 1), np.float32)
    band_pow = np.empty((n_fine, len(bins)))
    for s in range(0, n_fine, 2048):
        spec = np.fft.rfft(frames[s:s + 2048] * window, axis=-1)
        power = spec.real * spec.real + spec.imag * spec.imag
        band_pow[s:s + 2048] = band_levels(power, bins, power_scale) ** 2
        mag[s:s + 2048] = np.sqrt(power)
    c_num = mag[:, 1:] @ freqs[1:]
    c_den = mag[:, 1:].sum(axis=1)
    d = superflux(np.log1p(LOG_GAMMA * (mag @ fb)), memory)    # [frames, log bands]
    flux = d.mean(axis=1)

    # HPSS on the magnitude spectrogram: levels of each part, and the percussive bands
    harm, perc = librosa.decompose.hpss(mag.T, kernel_size=HPSS_KERNEL)
    e_all = (mag.astype(np.float64) ** 2).sum(axis=1)
    e_h = (harm.astype(np.float64) ** 2).sum(axis=0)
    e_p = (perc.astype(np.float64) ** 2).sum(axis=0)
    del harm, perc

    # analysis frames whose centres (j * hop) lie in [a, b): at least the nearest one
    idx, valid = _fine_frames(t, fps, sr, hop, n_fine)
    count = np.maximum(valid.sum(axis=1), 1)

    def frame_sum(v):
        return (v[idx] * (valid if v.ndim == 1 else valid[..., None])).sum(axis=1)

    levels = np.sqrt(frame_sum(band_pow) / count[:, None])
    frame_flux = np.where(valid, flux[idx], 0.0).max(axis=1)
    tot = frame_sum(e_all)
    ratio_h = np.sqrt(np.divide(frame_sum(e_h), tot, out=np.zeros_like(tot), where=tot > 0))
    ratio_p = np.sqrt(np.divide(frame_sum(e_p), tot, out=np.zeros_like(tot), where=tot > 0))
    den = frame_sum(c_den)
    centroid_hz = np.divide(frame_sum(c_num), den, out=np.zeros_like(den), where=den > 1e-9)
    centroid_hz[rms <= 0] = 0.0

    raw = np.column_stack([rms, levels, frame_flux, rms * ratio_h, rms * ratio_p])
    inside = t < duration
    ref = np.percentile(raw[inside], percentile, axis=0) if inside.any() else np.zeros(len(names))
    norm = normalise(raw, ref, floors, rel)

    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        out[name] = norm[:n_frames, i].astype(np.float32)
    out[RMS_DB] = rms_to_db(rms[:n_frames]).astype(np.float32)
    out[CENTROID_HZ] = centroid_hz[:n_frames].astype(np.float32)
    out[CENTROID] = centroid_unit(centroid_hz[:n_frames]).astype(np.float32)

    has_audio = n_frames > 0 and n >= n_fft and bool(np.any(y))
    oenv_hop = hop // 2
    oenv = librosa.onset.onset_strength(y=y, sr=sr, hop_length=oenv_hop) if has_audio else None

    # onsets: librosa on the whole signal; the event's value is the frame's flux
    on = onset_times(y, sr, hop=oenv_hop, onset_envelope=oenv) if has_audio else []
    _add_events(out, ONSET, on, norm[:n_frames, names.index(FLUX)], fps, n_frames)

    # drums: band-limited SuperFlux, where the change is concentrated in the drum's bands
    # (and, for a narrow band, big next to the loudest onsets nearby), as live
    from scipy.ndimage import maximum_filter1d
    flux_gain = np.maximum(maximum_filter1d(flux, size=2 * int(GAIN_RELEASE * sr / hop) + 1,
                                            mode="nearest"), FLUX_FLOOR)
    for name, (lo, hi) in zip(drum_names(drums), drums.values()):
        sl = band_slice(fb_freqs, lo, hi)
        nov = d[:, sl].mean(axis=1)
        allowed = nov > DRUM_REL * flux
        if sl.stop - sl.start < WIDE_DRUM_BANDS:
            allowed &= nov > NARROW_REL * flux_gain
        peaks, strength = pick_peaks(nov, sr / hop, allowed=allowed) if has_audio else ([], [])
        # the peak is the analysis frame centred nearest the attack: find the attack itself
        times = np.asarray(peaks, dtype=np.float64) * hop / sr
        if len(times):
            times = refine_onsets(y, sr, times, before=hop / sr, after=hop / sr)
        _add_events(out, name, times, None, fps, n_frames, values=strength)

    if chroma:
        out.update(chroma_features(y, sr, t[:n_frames], fps, hop, has_audio, rms[:n_frames]))
    if tempo:
        out.update(beat_features(oenv, sr, oenv_hop, t[:n_frames], fps, onsets=on))
    return out


def superflux(logspec: np.ndarray, memory: int = 1) -> np.ndarray:
    """Half-wave-rectified increase of each band over the maximum of the ``memory``
    frames before, maximum-filtered across frequency too ([frames, bands] in and out;
    the first frames compare with silence), as the live path does."""
    from scipy.ndimage import maximum_filter1d
    past = np.concatenate([np.zeros((1, logspec.shape[1]), logspec.dtype), logspec[:-1]])
    if memory > 1:      # maximum over frames j-memory .. j-1
        past = maximum_filter1d(past, size=memory, axis=0, origin=(memory - 1) // 2, mode="constant")
    return np.maximum(logspec - max_filter3(past), 0.0)


def pick_peaks(novelty: np.ndarray, rate: float, factor: float = 1.5, delta: float = 0.1,
               window: float = 0.5, around: float = 0.03, min_gap: float = ONSET_MIN_GAP,
               gain_window: float = GAIN_RELEASE, allowed: np.ndarray | None = None
               ) -> tuple[list[int], list[float]]:
    """Peaks of a novelty curve (``rate`` values per second), with the whole curve known,
    by the live path's rules: a value that is the largest within ``around`` s either
    side, exceeds ``factor * median(the window s around it) + delta * gain`` (gain: the
    curve's largest value within ``gain_window`` s either side, at least the live flux
    floor, so an empty band stays quiet), is ``allowed`` there, and comes ``min_gap`` s
    after the previous peak. Returns (indices, strengths 0..1: value / gain)."""
    from scipy.ndimage import maximum_filter1d, median_filter
    nov = np.asarray(novelty, dtype=np.float64)
    if len(nov) == 0:
        return [], []
    gain = np.maximum(maximum_filter1d(nov, size=2 * int(gain_window * rate) + 1, mode="nearest"), FLUX_FLOOR)
    med = median_filter(nov, size=max(3, int(round(window * rate)) | 1), mode="nearest")
    local_max = maximum_filter1d(nov, size=2 * max(1, int(round(around * rate))) + 1, mode="nearest")
    ok = (nov >= local_max) & (nov > factor * med + delta * gain)
    if allowed is not None:
        ok &= allowed
    peaks, strength, last = [], [], -math.inf
    for i in np.flatnonzero(ok):
        if (i - last) / rate >= min_gap:
            peaks.append(int(i))
            strength.append(float(min(1.0, nov[i] / gain[i])))
            last = i
    return peaks, strength


def onset_times(y: np.ndarray, sr: int, hop: int | None = None, refine: bool = True,
                onset_envelope: np.ndarray | None = None) -> np.ndarray:
    """Onset times (s) of a whole mono signal: librosa's onset detection (spectral flux
    + peak picking) at ``hop`` (default: half the offline hop, ~5.8 ms), then, with
    ``refine``, each moved to the steepest rise of the short-time energy within the
    preceding two hops (librosa reports the first analysis frame *after* the onset,
    2-9 ms late at hop 256; refined times land within ~1 ms of the attack)."""
    import librosa
    y = np.asarray(y, np.float32)
    hop = int(hop or default_hop(sr) // 2)
    times = librosa.onset.onset_detect(y=y, sr=sr, hop_length=hop, units="time", backtrack=False,
                                       onset_envelope=onset_envelope)
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


def event_frames(times, fps: float, n_frames: int) -> np.ndarray:
    """The frame on which each event time fires: the first frame at or after it."""
    k = np.ceil(np.asarray(times, dtype=np.float64) * fps - 1e-6).astype(np.int64)
    return k[(k >= 0) & (k < n_frames)] if len(k) else k


def chroma_features(y, sr, t, fps, hop, has_audio, rms) -> dict[str, np.ndarray]:
    """Constant-Q chroma (C1..C8, 36 bins per octave; fewer octaves where the sample rate
    is too low for them), bass (C1..B3) and treble (C4 up),
    averaged over each frame period and scaled so each frame's largest class is 1
    (frames 60 dB below the loudest, and silent frames, scale down towards 0)."""
    n_frames = len(t)
    zeros = {name: np.zeros((n_frames, 12), np.float32) for name in (CHROMA, CHROMA_BASS, CHROMA_TREBLE)}
    if not has_audio or n_frames == 0:
        return zeros
    import warnings

    import librosa
    with warnings.catch_warnings():       # short files: "n_fft is too large" for the low octaves
        warnings.simplefilter("ignore", UserWarning)
        octaves = int(min(7, max(4, math.floor(math.log2(0.45 * sr / C1)))))   # below Nyquist
        C = np.abs(librosa.cqt(y, sr=sr, hop_length=hop, fmin=C1, n_bins=octaves * CHROMA_BINS,
                               bins_per_octave=CHROMA_BINS))
    split = 3 * CHROMA_BINS
    bass = librosa.feature.chroma_cqt(C=C[:split], sr=sr, fmin=C1, bins_per_octave=CHROMA_BINS, norm=None)
    treble = librosa.feature.chroma_cqt(C=C[split:], sr=sr, fmin=C1 * 8, bins_per_octave=CHROMA_BINS,
                                        norm=None)
    n_fine = C.shape[1]
    idx, valid = _fine_frames(t, fps, sr, hop, n_fine)
    out = {}
    floor = 1e-3 * float(max(bass.max(), treble.max(), 1e-12))
    for name, c in ((CHROMA, bass + treble), (CHROMA_BASS, bass), (CHROMA_TREBLE, treble)):
        cf = (c.T[idx] * valid[..., None]).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)[:, None]
        m = np.maximum(cf.max(axis=1, keepdims=True), floor)
        v = np.clip(cf / m, 0.0, 1.0)
        v[rms <= 0] = 0.0
        out[name] = v.astype(np.float32)
    return out


def beat_features(oenv, sr, hop, t, fps, onsets=()) -> dict[str, np.ndarray]:
    """Beats from librosa's beat tracker on the onset strength ``oenv`` (``hop``):
    events, envelope, local bpm, phase and confidence at the frame times ``t``. A beat
    with one of ``onsets`` (refined attack times) within 60 ms moves onto it: the
    tracker's beats sit on onset-strength peaks, 5-20 ms after the attacks."""
    n_frames = len(t)
    beats = np.zeros(0)
    if oenv is not None and len(oenv) > 4 and np.any(oenv > 0):
        import librosa
        _, beats = librosa.beat.beat_track(onset_envelope=oenv, sr=sr, hop_length=hop, units="time")
        beats = snap(np.asarray(beats, dtype=np.float64), onsets, 0.06)
    out = {BPM: np.zeros(n_frames, np.float32), BEAT_PHASE: np.zeros(n_frames, np.float32),
           BEAT_CONFIDENCE: np.zeros(n_frames, np.float32)}
    if len(beats) >= 2:
        ibi = np.diff(beats)
        # local tempo: the median of the beat intervals within 4 beats either side
        local = np.array([np.median(ibi[max(0, i - 4):i + 5]) for i in range(len(ibi))])
        i = np.searchsorted(beats, t, side="right") - 1            # the beat at or before t
        seg = np.clip(i, 0, len(ibi) - 1)
        period = local[seg]
        inside = (i >= 0) & (i < len(beats) - 1)
        span = np.where(inside, beats[np.clip(i + 1, 0, len(beats) - 1)] - beats[np.clip(i, 0, None)], period)
        since = t - beats[np.clip(i, 0, None)]
        phase = np.where(inside, since / span, (since / period) % 1.0)
        out[BPM] = (60.0 / period).astype(np.float32)
        out[BEAT_PHASE] = np.clip(phase, 0.0, 1.0 - 1e-6).astype(np.float32)
        out[BEAT_CONFIDENCE] = inside.astype(np.float32)
    _add_events(out, BEAT, beats, None, fps, n_frames)
    return out


def snap(times: np.ndarray, targets, within: float) -> np.ndarray:
    """Each time moved to the nearest target, if one is within ``within`` s."""
    targets = np.sort(np.asarray(targets, dtype=np.float64))
    if len(times) == 0 or len(targets) == 0:
        return times
    j = np.searchsorted(targets, times)
    lo = targets[np.clip(j - 1, 0, len(targets) - 1)]
    hi = targets[np.clip(j, 0, len(targets) - 1)]
    best = np.where(np.abs(lo - times) <= np.abs(hi - times), lo, hi)
    return np.where(np.abs(best - times) <= within, best, times)


def _add_events(out, name, times, frame_values, fps, n_frames, values=None) -> None:
    """name + EVENT / VALUE arrays and the envelope ``name`` from event times."""
    events = np.zeros(n_frames, bool)
    vals = np.zeros(n_frames, np.float32)
    times = np.asarray(times, dtype=np.float64)
    if len(times) and n_frames:
        k = np.ceil(times * fps - 1e-6).astype(np.int64)
        ok = (k >= 0) & (k < n_frames)
        events[k[ok]] = True
        if values is not None:
            np.maximum.at(vals, k[ok], np.asarray(values, dtype=np.float32)[ok])
        elif frame_values is not None:
            vals[k[ok]] = frame_values[k[ok]]
        else:
            vals[k[ok]] = 1.0
    out[name + EVENT] = events
    out[name + VALUE] = vals
    out[name] = onset_envelope(events, fps)


def _fine_frames(t, fps, sr, hop, n_fine):
    """For each frame time, the indices of the analysis frames (centres j * hop) inside
    its period (at least the nearest one), as an index array and a validity mask."""
    j0 = np.ceil((t - 0.5 / fps) * sr / hop).astype(np.int64)
    j1 = np.ceil((t + 0.5 / fps) * sr / hop).astype(np.int64)
    nearest = np.round(t * sr / hop).astype(np.int64)
    empty = j1 <= j0
    j0 = np.where(empty, nearest, j0)
    j1 = np.where(empty, nearest + 1, j1)
    width = int(max(1, (j1 - j0).max())) if len(t) else 1
    idx = j0[:, None] + np.arange(width)[None, :]
    valid = (idx < j1[:, None]) & (idx >= 0) & (idx < n_fine)
    return np.clip(idx, 0, max(n_fine - 1, 0)), valid


class FrameFeed:
    """Puts frame k of :func:`offline_features` on a bus, as a live source would: every
    channel (floats and chroma vectors) with time ``t``, and the events that fire on
    that frame with their values."""

    def __init__(self, features: dict[str, np.ndarray]):
        self.channels = {name: arr for name, arr in features.items()
                         if not name.endswith(EVENT) and not name.endswith(VALUE)}
        self.events = [(name[:-len(EVENT)], arr, features.get(name[:-len(EVENT)] + VALUE))
                       for name, arr in features.items() if name.endswith(EVENT)]

    def __call__(self, bus, k: int, t: float) -> None:
        # one atomic write per frame, as the live sources write one per block
        bus.publish({name: (arr[k] if arr.ndim > 1 else float(arr[k]))
                     for name, arr in self.channels.items()},
                    [(name, float(values[k]) if values is not None else 1.0)
                     for name, fired, values in self.events if fired[k]],
                    t=t, source="audio")
