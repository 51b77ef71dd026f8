"""Offline audio features for ``vj render``: the whole file is known, so every feature
can look ahead (librosa onset detection and beat tracking, constant-Q chroma, HPSS), and
every value is sampled at exactly the video's frame times t_k = k / fps.

The whole file is known but never held: :func:`file_features` reads it a block at a
time, in three passes, and every block is analysed with enough of its neighbours that
the features come out as from the whole signal (to float rounding). What is kept for the
whole file is a few values per analysis frame (flux, drum novelty, onset strength) and
the per-video-frame results.

The names are the live path's (:mod:`engine.signals.features`), so a patch behaves the
same in ``vj run`` and ``vj render``. :class:`FrameFeed` puts frame k's values and
events on the bus, as the live sources would.
"""
from __future__ import annotations

import math

import numpy as np

from engine.signals.features import (
    BANDS, BAR_PHASE, BEAT, BEAT_CONFIDENCE, BEAT_PHASE, BPM, CENTROID, CENTROID_HZ, CHROMA, CHROMA_BASS,
    CHROMA_TREBLE, DOWNBEAT, DRUM_REL, DRUMS, FLUX, FLUX_FLOOR, FLUX_MEMORY, GAIN_RELEASE, LOG_GAMMA,
    NARROW_REL, ONSET, ONSET_DECAY, ONSET_MIN_GAP, RMS_DB, WIDE_DRUM_BANDS, band_bins, band_levels,
    band_slice, centroid_unit, default_hop, drum_names, level_spec, log_filterbank, max_filter3,
    normalise, rms_to_db)
from engine.signals.beat_file import track_signal

OFFLINE_PERCENTILE = 99.0
EVENT = ":event"                 # name + EVENT: bool array, True on the frames where it fires
VALUE = ":value"                 # name + VALUE: the event's value (strength 0..1) on those frames
ONSET_EVENT_KEY = ONSET + EVENT
HPSS_KERNEL = 17                 # frames and bins of librosa's median-filter HPSS
CHROMA_BINS = 36                 # constant-Q bins per octave
C1 = 32.703                      # Hz; chroma from C1 over 7 octaves, bass = the first 3 (below C4)


BLOCK_HOPS = 4096                # analysis hops per block: what is in memory at a time (~47 s)
CQT_HALO = 3.0                   # s of signal either side of a block for the constant-Q transform:
                                 # its longest filter (C1, ~1.6 s) and the octave resamplers' tails
ONSET_N_FFT = 2048               # librosa's onset strength: its mel spectrogram's frame ...
ONSET_TOP_DB = 80.0              # ... and its floor, this far below the file's loudest mel bin
TRACK_CHUNK = 1 << 16            # samples handed to the beat tracker at a time
SNAP = 0.03                      # s: an offline beat moves onto an onset attack this close
MEL_CHUNK = 2048                 # onset-strength mel frames computed at a time (~16 MB of STFT)


def offline_features(y: np.ndarray, sr: int, fps: float, n_frames: int, bands=BANDS, *,
                     drums=DRUMS, hop: int | None = None, percentile: float = OFFLINE_PERCENTILE,
                     chroma: bool = True, tempo: bool = True,
                     block_hops: int = BLOCK_HOPS) -> dict[str, np.ndarray]:
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
    * beats, downbeats and the bar: the live beat tracker over the whole file, each beat
      moved onto an onset attack a few ms away (:func:`beat_features`).

    A 2-D ``y`` is averaged to mono over its shorter axis. The analysis runs over the
    signal a block at a time (``block_hops`` analysis hops), exactly as
    :func:`file_features` does over a file it never holds whole.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim > 1:
        y = y.mean(axis=int(np.argmin(y.shape)))
    return _analyse(_ArraySignal(y), int(sr), fps, n_frames, bands, drums=drums, hop=hop,
                    percentile=percentile, chroma=chroma, tempo=tempo, block_hops=block_hops)


def file_features(path, fps: float, n_frames: int | None = None, **kwargs
                  ) -> tuple[dict[str, np.ndarray], int, float, int]:
    """:func:`offline_features` of an audio file, read a block at a time (three passes
    over the file; its samples are never all in memory): (features, sample rate,
    duration s, n_frames). ``n_frames`` defaults to the file's length in frames,
    rounded. Raises AudioError for a missing, unreadable or empty file."""
    from engine.signals.audio import AudioError, AudioReader
    with AudioReader(path, mono=True) as reader:
        signal = _FileSignal(reader)
        n = signal.length()
        if n == 0:
            raise AudioError(f"audio file has no samples: {path}")
        duration = n / reader.sr
        if n_frames is None:
            n_frames = max(1, int(round(duration * fps)))
        feats = _analyse(signal, reader.sr, fps, n_frames, **kwargs)
        return feats, reader.sr, duration, n_frames


def file_length(path) -> tuple[int, int]:
    """(samples, sample rate) of an audio file, without analysing it: the container's count,
    or one decoding pass when it has none. Raises AudioError like :func:`file_features`."""
    from engine.signals.audio import AudioError, AudioReader
    with AudioReader(path, mono=True) as reader:
        n = _FileSignal(reader).length()
        if n == 0:
            raise AudioError(f"audio file has no samples: {path}")
        return n, reader.sr


class _ArraySignal:
    """A mono signal in memory, handed out a block at a time like a file."""

    def __init__(self, y: np.ndarray):
        self.y = y

    def blocks(self, size: int):
        for s in range(0, len(self.y), size):
            yield self.y[s:s + size]


class _FileSignal:
    """A mono signal read from a file by :class:`engine.signals.audio.AudioReader`, from
    the start on every pass."""

    def __init__(self, reader):
        self.reader = reader

    def blocks(self, size: int):
        return self.reader.blocks(size)

    def length(self) -> int:
        """Samples in the file: the container's count, or a decoding pass when it has none."""
        if self.reader.exact:
            return int(self.reader.frames)
        return sum(len(b) for b in self.blocks(1 << 20))


class _Window:
    """Samples [a, b) of a signal that arrives a block at a time (zeros outside the
    signal), for a window that only moves forward: what lies before :meth:`drop`'s
    point is let go. ``n``: the signal's length, once its end has been read."""

    def __init__(self, blocks):
        self._blocks = iter(blocks)
        self._chunks: list[np.ndarray] = []
        self._start = self._end = 0
        self.n: int | None = None

    def _extend(self, b: int) -> None:
        while self.n is None and self._end < b:
            y = next(self._blocks, None)
            if y is None:
                self.n = self._end
                break
            self._chunks.append(np.asarray(y, np.float32))
            self._end += len(y)

    def _buffer(self) -> np.ndarray:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else np.zeros(0, np.float32)

    def ends_before(self, b: int) -> bool:
        """Whether the signal ends before sample ``b`` (reading up to it if needed)."""
        self._extend(b + 1)
        return self.n is not None and self.n < b

    def get(self, a: int, b: int) -> np.ndarray:
        assert max(a, 0) >= self._start, "the window moved past the samples asked for"
        self._extend(b)
        out = np.zeros(max(0, b - a), np.float32)
        lo, hi = max(a, self._start), min(b, self._end)
        if hi > lo:
            buf = self._buffer()
            out[lo - a:hi - a] = buf[lo - self._start:hi - self._start]
        return out

    def drop(self, a: int) -> None:
        if a > self._start:
            buf = self._buffer()
            self._chunks = [buf[min(a, self._end) - self._start:]]
            self._start = min(a, self._end)


def _blockwise(signal, size: int, halo: int, step) -> int:
    """One pass over ``signal``: ``step(win, s, e, n)`` for the blocks [s, e) of
    ``size`` samples in turn, the window holding at least [s - halo, e + halo);
    ``n`` is the signal's length on the last block, else None. A step that returns
    True ends the pass early. Returns the length (None when ended early)."""
    win = _Window(signal.blocks(size))
    s = 0
    while True:
        e = s + size
        last = win.ends_before(e + halo) and win.n < e
        if step(win, s, e, win.n if last else None) or last:
            return win.n
        win.drop(e - halo)
        s = e


def _frames_in(s: int, e: int, n: int | None, hop: int) -> tuple[int, int]:
    """The analysis frames (centres j * hop, the signal's frames 0 .. n // hop) centred
    in the block [s, e), or from s on for the last block (``n`` given)."""
    return s // hop, (n // hop + 1) if n is not None else e // hop


class _FrameSums:
    """Sums over each video frame's analysis frames (``idx`` / ``valid`` from
    :func:`_fine_frames`), fed the analysis frames a block at a time."""

    def __init__(self, idx: np.ndarray, valid: np.ndarray, columns: int | None = None):
        self.idx, self.valid = idx, valid
        self.sums = np.zeros((len(idx),) if columns is None else (len(idx), columns))

    def add(self, j0: int, values: np.ndarray) -> None:
        j1 = j0 + len(values)
        if not len(values) or not len(self.idx):
            return
        rows = np.flatnonzero((self.idx[:, -1] >= j0) & (self.idx[:, 0] < j1))
        if not len(rows):
            return
        sub = self.idx[rows]
        mask = self.valid[rows] & (sub >= j0) & (sub < j1)
        v = np.asarray(values, np.float64)[np.clip(sub - j0, 0, len(values) - 1)]
        self.sums[rows] += (v * (mask if v.ndim == 2 else mask[..., None])).sum(axis=1)


def _analyse(signal, sr: int, fps: float, n_frames: int, bands=BANDS, *, drums=DRUMS,
             hop: int | None = None, percentile: float = OFFLINE_PERCENTILE, chroma: bool = True,
             tempo: bool = True, block_hops: int = BLOCK_HOPS) -> dict[str, np.ndarray]:
    """:func:`offline_features` over ``signal`` (``blocks(size)``), a block at a time.

    Pass 1 finds the length, whether there is any sound, and the loudest mel bin (the
    onset strength's dB floor hangs on it); pass 2 analyses each block with enough of
    its neighbours around it (halos) that every analysis frame comes out as it would
    from the whole signal; pass 3 reads the few milliseconds around each onset and drum
    hit to find its attack. Whole-file curves with a few values per analysis frame
    (flux, drum novelty, onset strength) are kept for peak picking and beat tracking;
    everything else is reduced to video frames as it goes."""
    import librosa

    n_frames = int(n_frames)
    fps = float(fps)
    hop = int(hop or default_hop(sr))
    n_fft = 2 * hop
    oenv_hop = hop // 2
    block = hop * int(block_hops)
    names, floors, rel = level_spec(bands)
    octaves = int(min(7, max(4, math.floor(math.log2(0.45 * sr / C1)))))   # below Nyquist
    cqt_halo = hop * int(math.ceil(CQT_HALO * sr / hop))
    stft_halo = HPSS_KERNEL // 2                        # frames: the HPSS median filters' reach
    halo = max(cqt_halo, (stft_halo + 1) * hop + hop, ONSET_N_FFT // 2 + oenv_hop) + hop

    def mel_db(win, k0, k1):
        """The onset strength's mel spectrogram (dB, not floored) of frames [k0, k1),
        a few thousand frames at a time: its STFT is 16 times the size of the samples."""
        parts = []
        for c0 in range(k0, k1, MEL_CHUNK):
            c1 = min(k1, c0 + MEL_CHUNK)
            seg = win.get(c0 * oenv_hop - ONSET_N_FFT // 2, (c1 - 1) * oenv_hop + ONSET_N_FFT // 2)
            S = np.abs(librosa.feature.melspectrogram(y=seg, sr=sr, n_fft=ONSET_N_FFT, hop_length=oenv_hop,
                                                      center=False, fmax=0.5 * sr))
            parts.append(10.0 * np.log10(np.maximum(1e-10, S)))
        return np.concatenate(parts, axis=1)

    # -- pass 1: length, silence, loudest mel bin ---------------------------------------
    first = {"sound": False, "top": None}

    def scan(win, s, e, n):
        first["sound"] = first["sound"] or bool(np.any(win.get(s, e)))
        k0, k1 = _frames_in(s, e, n, oenv_hop)
        if k1 > k0:
            top = mel_db(win, k0, k1).max()
            first["top"] = top if first["top"] is None else max(first["top"], top)

    n = _blockwise(signal, block, halo, scan)
    duration = n / sr
    has_audio = n_frames > 0 and n >= n_fft and first["sound"]
    db_floor = first["top"] - np.float32(ONSET_TOP_DB) if has_audio else None

    # video frames covering the whole file (for normalisation) and the requested ones
    n_all = max(n_frames, int(math.ceil(duration * fps)))
    t = np.arange(n_all) / fps
    lo_s, hi_s = np.round((t - 0.5 / fps) * sr), np.round((t + 0.5 / fps) * sr)
    a = np.clip(lo_s.astype(np.int64), 0, n)
    b = np.clip(hi_s.astype(np.int64), 0, n)
    csum_a, csum_b = np.zeros(n_all), np.zeros(n_all)     # the running sum of y^2 at a and b
    running = [0.0]

    # STFT (centred frames): band power, SuperFlux, centroid, magnitudes for HPSS
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    power_scale = 2.0 / (n_fft * float(np.sum(window.astype(np.float64) ** 2)))
    mag_scale = 2.0 / float(np.sum(window))
    bins = band_bins(sr, n_fft, bands)
    fb, fb_freqs = log_filterbank(sr, n_fft)
    fb = fb * mag_scale
    memory = max(1, round(FLUX_MEMORY * sr / hop))
    assert memory <= stft_halo
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr).astype(np.float32)
    n_fine = n // hop + 1
    drum_slices = [band_slice(fb_freqs, lo, hi) for lo, hi in drums.values()]
    flux = np.zeros(n_fine, np.float32)
    nov = np.zeros((len(drum_slices), n_fine), np.float32)
    idx, valid = _fine_frames(t, fps, sr, hop, n_fine)
    band_sum = _FrameSums(idx, valid, len(bins))
    e_sums = {k: _FrameSums(idx, valid) for k in ("all", "h", "p", "c_num", "c_den")}
    do_chroma = chroma and has_audio
    bass_sum = _FrameSums(idx[:n_frames], valid[:n_frames], 12)
    treble_sum = _FrameSums(idx[:n_frames], valid[:n_frames], 12)
    chroma_top = [1e-12]
    n_oenv = n // oenv_hop + 1
    oenv_raw = np.zeros(max(n_oenv - 1, 0), np.float32)

    def analyse(win, s, e, n_last):
        # exact RMS from the running sum of y^2, carried from block to block so that it
        # adds up in the same order, to the same bits, as over the whole signal
        end = min(e, n)
        csum = np.cumsum(np.concatenate([running, win.get(s, end).astype(np.float64) ** 2]))
        running[0] = csum[-1]
        for pts, at in ((a, csum_a), (b, csum_b)):
            r0, r1 = np.searchsorted(pts, s, side="left"), np.searchsorted(pts, end, side="right")
            at[r0:r1] = csum[pts[r0:r1] - s]

        # STFT frames of the block, with the HPSS filters' reach either side
        j0, j1 = _frames_in(s, e, n_last, hop)
        f0, f1 = max(0, j0 - stft_halo), min(n_fine, j1 + stft_halo)
        seg = win.get(f0 * hop - hop, (f1 - 1) * hop + hop)
        frames = np.lib.stride_tricks.sliding_window_view(seg, n_fft)[::hop]
        spec = np.fft.rfft(frames * window, axis=-1)
        power = spec.real * spec.real + spec.imag * spec.imag
        mag = np.sqrt(power).astype(np.float32)
        inner = slice(j0 - f0, j1 - f0)
        band_sum.add(j0, band_levels(power[inner], bins, power_scale) ** 2)
        e_sums["c_num"].add(j0, mag[inner, 1:] @ freqs[1:])
        e_sums["c_den"].add(j0, mag[inner, 1:].sum(axis=1))
        d = superflux(np.log1p(LOG_GAMMA * (mag @ fb)), memory)[inner]   # [frames, log bands]
        flux[j0:j1] = d.mean(axis=1)
        for k, sl in enumerate(drum_slices):
            nov[k, j0:j1] = d[:, sl].mean(axis=1)
        harm, perc = librosa.decompose.hpss(mag.T, kernel_size=HPSS_KERNEL)
        e_sums["all"].add(j0, (mag[inner].astype(np.float64) ** 2).sum(axis=1))
        e_sums["h"].add(j0, (harm[:, inner].astype(np.float64) ** 2).sum(axis=0))
        e_sums["p"].add(j0, (perc[:, inner].astype(np.float64) ** 2).sum(axis=0))
        del harm, perc, spec, power, mag

        if do_chroma:
            bass, treble = _chroma_block(win, j0, j1, sr, hop, cqt_halo, octaves)
            chroma_top[0] = max(chroma_top[0], float(bass.max()), float(treble.max()))
            bass_sum.add(j0, bass.T)
            treble_sum.add(j0, treble.T)

        if has_audio:        # onset strength: librosa's, one mel frame of context back
            k0, k1 = _frames_in(s, e, n_last, oenv_hop)
            k_prev = max(k0 - 1, 0)
            if k1 - k_prev > 1:
                S = np.maximum(mel_db(win, k_prev, k1), db_floor)
                oenv_raw[k_prev:k1 - 1] = np.maximum(0.0, S[:, 1:] - S[:, :-1]).mean(axis=0)

    _blockwise(signal, block, halo, analyse)

    # exact RMS over each frame period
    rms = np.sqrt(np.maximum(csum_b - csum_a, 0.0) / np.maximum(hi_s - lo_s, 1))

    count = np.maximum(valid.sum(axis=1), 1)
    levels = np.sqrt(band_sum.sums / count[:, None])
    frame_flux = np.where(valid, flux[idx], 0.0).max(axis=1)
    tot = e_sums["all"].sums
    ratio_h = np.sqrt(np.divide(e_sums["h"].sums, tot, out=np.zeros_like(tot), where=tot > 0))
    ratio_p = np.sqrt(np.divide(e_sums["p"].sums, tot, out=np.zeros_like(tot), where=tot > 0))
    den = e_sums["c_den"].sums
    centroid_hz = np.divide(e_sums["c_num"].sums, den, out=np.zeros_like(den), where=den > 1e-9)
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

    oenv = None
    if has_audio:        # librosa's onset strength: centred, so shifted by half a frame and lag 1
        shift = 1 + ONSET_N_FFT // (2 * oenv_hop)
        oenv = np.zeros(n_oenv, np.float32)
        oenv[shift:] = oenv_raw[:max(0, n_oenv - shift)]

    # onsets: librosa on the whole onset strength; drums: band-limited SuperFlux, where the
    # change is concentrated in the drum's bands (and, for a narrow band, big next to the
    # loudest onsets nearby), as live; both then moved onto their attacks (pass 3)
    on = _onset_frames(oenv, sr, oenv_hop) if has_audio else np.zeros(0)
    from scipy.ndimage import maximum_filter1d
    flux_gain = np.maximum(maximum_filter1d(flux, size=2 * int(GAIN_RELEASE * sr / hop) + 1,
                                            mode="nearest"), FLUX_FLOOR)
    hits = []
    for k, sl in enumerate(drum_slices):
        allowed = nov[k] > DRUM_REL * flux
        if sl.stop - sl.start < WIDE_DRUM_BANDS:
            allowed &= nov[k] > NARROW_REL * flux_gain
        peaks, strength = pick_peaks(nov[k], sr / hop, allowed=allowed) if has_audio else ([], [])
        hits.append((np.asarray(peaks, dtype=np.float64) * hop / sr, strength))
    refined = _refine_pass(signal, block, halo, n, sr, [(on, 2.0 * oenv_hop / sr, 0.002)] + [
        (times, hop / sr, hop / sr) for times, _ in hits])
    on = refined[0]
    _add_events(out, ONSET, on, norm[:n_frames, names.index(FLUX)], fps, n_frames)
    for name, times, (_, strength) in zip(drum_names(drums), refined[1:], hits):
        _add_events(out, name, times, None, fps, n_frames, values=strength)

    if chroma:
        out.update(_chroma_frames(bass_sum, treble_sum, chroma_top[0], count[:n_frames], rms[:n_frames],
                                  n_frames, do_chroma))
    if tempo:
        out.update(beat_features(track_signal(signal.blocks(TRACK_CHUNK), sr), t[:n_frames], fps, onsets=on))
    return out


def _onset_frames(oenv, sr, hop) -> np.ndarray:
    """librosa's onset times (s, unrefined) on the whole onset strength."""
    import librosa
    return np.asarray(librosa.onset.onset_detect(onset_envelope=oenv, sr=sr, hop_length=hop, units="time",
                                                 backtrack=False), dtype=np.float64)


def _chroma_block(win, j0, j1, sr, hop, halo, octaves):
    """Bass and treble chroma [12, frames] of the analysis frames [j0, j1), from a
    constant-Q transform of the block and ``halo`` samples either side."""
    import warnings

    import librosa
    # the segment stops at the signal's ends, never padded past them: the transform's
    # octave resamplers treat an end their own way, and the whole signal's frames there
    # come out only from a segment that ends the same way
    a, b = max(0, j0 * hop - halo), (j1 - 1) * hop + halo
    if win.ends_before(b):
        b = win.n
    seg = win.get(a, b)
    with warnings.catch_warnings():       # short files: "n_fft is too large" for the low octaves
        warnings.simplefilter("ignore", UserWarning)
        C = np.abs(librosa.cqt(seg, sr=sr, hop_length=hop, fmin=C1, n_bins=octaves * CHROMA_BINS,
                               bins_per_octave=CHROMA_BINS))
    C = C[:, j0 - a // hop:j1 - a // hop]
    split = 3 * CHROMA_BINS
    bass = librosa.feature.chroma_cqt(C=C[:split], sr=sr, fmin=C1, bins_per_octave=CHROMA_BINS, norm=None)
    treble = librosa.feature.chroma_cqt(C=C[split:], sr=sr, fmin=C1 * 8, bins_per_octave=CHROMA_BINS,
                                        norm=None)
    return bass, treble


def _chroma_frames(bass_sum, treble_sum, top, count, rms, n_frames, has_audio) -> dict[str, np.ndarray]:
    """Constant-Q chroma (C1..C8, 36 bins per octave; fewer octaves where the sample rate
    is too low for them), bass (C1..B3) and treble (C4 up), averaged over each frame
    period and scaled so each frame's largest class is 1 (frames 60 dB below the
    loudest, and silent frames, scale down towards 0)."""
    if not has_audio or n_frames == 0:
        return {name: np.zeros((n_frames, 12), np.float32) for name in (CHROMA, CHROMA_BASS, CHROMA_TREBLE)}
    out = {}
    floor = 1e-3 * top
    bass, treble = bass_sum.sums, treble_sum.sums
    for name, c in ((CHROMA, bass + treble), (CHROMA_BASS, bass), (CHROMA_TREBLE, treble)):
        cf = c / count[:, None]
        m = np.maximum(cf.max(axis=1, keepdims=True), floor)
        v = np.clip(cf / m, 0.0, 1.0)
        v[rms <= 0] = 0.0
        out[name] = v.astype(np.float32)
    return out


def _refine_pass(signal, block, halo, n, sr, groups) -> list[np.ndarray]:
    """:func:`refine_onsets` for several groups of times (times, before, after), in
    one pass over ``signal`` that reads only the blocks around them."""
    w = max(8, int(0.002 * sr))
    out = [np.asarray(times, dtype=np.float64).copy() for times, _, _ in groups]
    jobs = sorted((a, b, g, i) for g, (times, before, after) in enumerate(groups)
                  for i, (a, b) in enumerate(_refine_range(t, n, sr, before, after, w) for t in out[g]))
    if not jobs:
        return out
    state = {"next": 0}

    def step(win, s, e, n_last):
        k = state["next"]
        while k < len(jobs) and (jobs[k][0] < e or n_last is not None):
            a, b, g, i = jobs[k]
            out[g][i] = _refined(win.get(a, b), a, out[g][i], sr, w)
            k += 1
        state["next"] = k
        return k == len(jobs)         # the rest of the file holds nothing to refine

    _blockwise(signal, block, halo, step)
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
    out = np.asarray(times, dtype=np.float64).copy()
    for k, t in enumerate(out):
        a, b = _refine_range(t, len(y), sr, before, after, w)
        out[k] = _refined(y[a:b], a, t, sr, w)
    return out


def _refine_range(t: float, n: int, sr: int, before: float, after: float, w: int) -> tuple[int, int]:
    """The samples :func:`refine_onsets` looks at for an onset at ``t``."""
    return max(0, int((t - before) * sr) - w), min(n, int((t + after) * sr) + w)


def _refined(seg: np.ndarray, a: int, t: float, sr: int, w: int) -> float:
    """The onset time within ``seg`` (samples from ``a``): the largest rise of the log
    energy; ``t`` when the segment is too short to tell."""
    h = w // 2
    seg = seg.astype(np.float64)
    if len(seg) < 3 * w:
        return t
    energy = np.lib.stride_tricks.sliding_window_view(seg * seg, w)[::h].mean(axis=1)
    rise = np.diff(np.log10(energy + 1e-10))
    i = int(np.argmax(rise)) + 1
    return (a + i * h + 0.5 * w) / sr


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


def beat_features(tracked: dict, t, fps, onsets=(), within: float = SNAP) -> dict[str, np.ndarray]:
    """Beats, downbeats and the bar at the frame times ``t``, from the live beat tracker
    run over the whole file (``beat_file.track_signal``: the same beats as live). Looking
    ahead, the seconds the live tracker spends finding the beat are replaced by its
    settled grid carried back to where the sound begins (:func:`settled`), and each
    beat moves onto a refined onset attack within ``within`` s, if there is one. ``audio.bpm`` is the local tempo (the median of the nearby beat intervals),
    ``audio.beat_phase`` rises 0..1 from beat to beat and ``audio.bar_phase`` from
    downbeat to downbeat (extrapolated before the first and after the last, where
    ``audio.beat_confidence`` is 0; 1 in between)."""
    t = np.asarray(t, dtype=np.float64)
    n_frames = len(t)
    first = float(np.min(onsets)) if len(onsets) else 0.0       # where the sound begins
    beats = snap(settled(np.asarray(tracked["beats"], dtype=np.float64), first), onsets, within)
    downs = snap(settled(np.asarray(tracked["downbeats"], dtype=np.float64), first), onsets, within)
    out = {BPM: np.zeros(n_frames, np.float32), BEAT_PHASE: np.zeros(n_frames, np.float32),
           BEAT_CONFIDENCE: np.zeros(n_frames, np.float32), BAR_PHASE: np.zeros(n_frames, np.float32)}
    if len(beats) >= 2:
        ibi = np.diff(beats)
        # local tempo: the median of the beat intervals within 4 beats either side
        local = np.array([np.median(ibi[max(0, i - 4):i + 5]) for i in range(len(ibi))])
        phase, inside = _phase(beats, t, local)
        out[BPM] = (60.0 / local[np.clip(np.searchsorted(beats, t, side="right") - 1, 0, len(ibi) - 1)]
                    ).astype(np.float32)
        out[BEAT_PHASE] = phase
        out[BEAT_CONFIDENCE] = inside.astype(np.float32)
    if len(downs) >= 2:
        out[BAR_PHASE], _ = _phase(downs, t, np.diff(downs))
    _add_events(out, BEAT, beats, None, fps, n_frames)
    _add_events(out, DOWNBEAT, downs, None, fps, n_frames)
    return out


def settled(marks: np.ndarray, start: float, run: int = 4, tol: float = 0.08, warm: float = 8.0) -> np.ndarray:
    """Marks (beats or downbeats) with everything before the first ``run`` intervals at
    the tempo the tracker holds after its warm-up (the median interval ``warm``..2
    ``warm`` s after ``start``, within ``tol``) replaced by that grid carried back to
    ``start``: what a causal tracker got wrong while it was still listening. Later
    tempo changes are the tracker's own business."""
    if len(marks) <= 2 * run:
        return marks
    d = np.diff(marks)
    after = (marks[1:] >= start + warm) & (marks[1:] < start + 2 * warm)
    if after.sum() < run:
        return marks
    ref = float(np.median(d[after]))
    for i in range(len(d) - run + 1):
        if marks[i] > start + 2 * warm:
            break
        p = float(np.median(d[i:i + run]))
        if abs(p / ref - 1.0) <= tol and np.all(np.abs(d[i:i + run] / p - 1.0) <= tol):
            k = int(np.floor((marks[i] - start) / p + 0.25))
            back = marks[i] - p * np.arange(k, 0, -1)
            return np.concatenate([back, marks[i:]])
    return marks


def _phase(marks: np.ndarray, t: np.ndarray, period: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0..1 from each mark to the next at the times ``t`` (extrapolated at ``period``,
    per interval, outside them), and whether each time lies between two marks."""
    i = np.searchsorted(marks, t, side="right") - 1            # the mark at or before t
    seg = np.clip(i, 0, len(marks) - 2)
    inside = (i >= 0) & (i < len(marks) - 1)
    span = np.where(inside, marks[np.clip(i + 1, 0, len(marks) - 1)] - marks[np.clip(i, 0, None)], period[seg])
    since = t - marks[np.clip(i, 0, None)]
    phase = np.where(inside, since / span, (since / period[seg]) % 1.0)
    return np.clip(phase, 0.0, 1.0 - 1e-6).astype(np.float32), inside


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


def silence() -> dict:
    """The channels :class:`FrameFeed` puts on the bus for a silent frame (no events)."""
    from engine.signals.features import DB_FLOOR, feature_names, vector_names
    out = {name: 0.0 for name in feature_names()}
    out[RMS_DB] = DB_FLOOR
    out.update((name, np.zeros(12, np.float32)) for name in vector_names())
    return out
