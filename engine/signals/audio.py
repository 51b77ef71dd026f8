"""Audio in: files and live input become ``audio.*`` channels and events on the bus.

* :class:`FileSource` plays a file in real time (audible through sounddevice when an
  output device exists, silently otherwise), analysing it block by block;
* :class:`InputSource` analyses live input (a sounddevice input stream);
* :func:`load_audio` decodes WAV, FLAC, OGG, MP3 (soundfile) and anything else with an
  audio track (PyAV).

Both sources analyse with :class:`engine.signals.features.BlockAnalyzer` (causal, one
block at a time) and publish each block's channels and events in one atomic
:meth:`SignalBus.publish` (source ``"audio"``) with the block's capture time: a
snapshot holds a whole block or none of it, and each frame's ``Snapshot.newest_input``
knows how old the newest audio it used is. The offline path for ``vj render`` is
:mod:`engine.signals.offline`. No device, no PortAudio, a device that fails: one
warning, and the engine runs on (silence).

The channel names and the analysis live in :mod:`engine.signals.features`; the names
are re-exported here.

Input gain: both sources pass :meth:`set_gain` (mode, dB) on to their analyzer and publish
``audio.gain_db`` (the gain applied) with every block; :class:`GainStage` applies the
``/vj/audio/gain*`` commands (bus events ``audio.gain``, ``audio.gain.mode``,
``audio.gain.lock``) to every source between frames and puts the gain's state in the
frame's status for OSC out, OSCQuery and the HUD.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time

import numpy as np

from engine.signals.features import (  # noqa: F401 - re-exported: the audio stage's names
    BANDS, BEAT, BEAT_PHASE, BPM, CHROMA, CHROMA_BASS, CHROMA_TREBLE, DB_FLOOR, DRUMS, FLUX,
    GAIN_DB, GAIN_DB_RANGE, GAIN_MODES, HARMONIC, MAX_SAMPLE, ONSET, PERCUSSIVE, PREFIX, RMS, RMS_DB,
    UNNORMALISED,
    BlockAnalyzer, band_names, drum_names, event_names, feature_names, vector_names)

__all__ = [
    "AudioError", "AudioReader", "FileSource", "InputSource", "GainStage", "list_devices", "load_audio",
    "GAIN_DB", "GAIN_DB_RANGE", "GAIN_MODES",
    "DEFAULT_BLOCK", "BlockAnalyzer", "BANDS", "DRUMS", "PREFIX", "RMS", "RMS_DB", "FLUX", "ONSET",
    "HARMONIC", "PERCUSSIVE", "CHROMA", "CHROMA_BASS", "CHROMA_TREBLE", "BPM", "BEAT", "BEAT_PHASE",
    "DB_FLOOR", "UNNORMALISED", "band_names", "drum_names", "event_names", "feature_names", "vector_names",
]

log = logging.getLogger(__name__)

DEFAULT_BLOCK = 512


class AudioError(RuntimeError):
    """A file that cannot be found, read or decoded."""


# ---------------------------------------------------------------------------------------
# files

READ_SECONDS = 0.25     # what one decode step reads: small enough for the audio thread


class AudioReader:
    """An audio file opened for reading a block at a time, never held whole: soundfile
    for WAV, FLAC, OGG, MP3, PyAV (streaming decode) for anything else with an audio
    track. ``read(n)`` returns up to ``n`` frames (fewer only at the end), float32, mono
    ``(n,)`` or ``(n, channels)``; ``sr`` given and unlike the file's, each block is
    resampled on the way (a streaming soxr resampler, so block seams leave no trace).
    ``frames`` is the length in frames at ``sr`` (``exact`` when soundfile reads the file
    at its own rate; otherwise an estimate, None when a PyAV container has none). ``rewind()`` starts over. Raises AudioError for a missing or
    undecodable file."""

    def __init__(self, path, sr: int | None = None, mono: bool = True):
        self.path = os.fspath(path)
        self.mono = mono
        if not os.path.isfile(self.path):
            raise AudioError(f"audio file not found: {self.path}")
        self._sf = None
        self._av = None
        self._said_bad = False
        try:
            import soundfile as sf
            self._sf = sf.SoundFile(self.path)
            self.file_sr, self.channels = int(self._sf.samplerate), int(self._sf.channels)
            frames = int(self._sf.frames)
        except Exception as sf_err:  # noqa: BLE001 - fall back to PyAV for other formats
            try:
                frames = self._open_av()
            except Exception as av_err:  # noqa: BLE001
                raise AudioError(f"cannot decode audio file {self.path}: {sf_err}; {av_err}") from av_err
        self.sr = int(sr) if sr else self.file_sr
        self.frames = None if frames is None else int(round(frames * self.sr / self.file_sr))
        self.exact = self._sf is not None and self.sr == self.file_sr     # ``frames`` is the count read
        self._chunk = max(256, int(READ_SECONDS * self.file_sr))
        self._resampler = None
        self._buf: list[np.ndarray] = []
        self._buffered = 0
        self._eof = False
        self.rewind()

    # -- opening ------------------------------------------------------------------------
    def _open_av(self) -> int | None:
        import av
        container = av.open(self.path)
        try:
            if not container.streams.audio:
                raise AudioError("no audio stream")
            stream = container.streams.audio[0]
            self.file_sr = int(stream.rate)
            self.channels = 1 if (stream.channels or 1) == 1 else 2   # PyAV mixes down to stereo
        except BaseException:
            container.close()
            raise
        frames = None
        if stream.duration and stream.time_base:
            frames = float(stream.duration * stream.time_base) * self.file_sr
        elif container.duration:
            frames = container.duration / 1e6 * self.file_sr
        self._av = container
        self._av_frames = None
        return None if frames is None else int(frames)

    def _av_decode(self):
        import av
        stream = self._av.streams.audio[0]
        layout = "mono" if self.channels == 1 else "stereo"
        resampler = av.AudioResampler(format="flt", layout=layout, rate=self.file_sr)
        for frame in self._av.decode(stream):
            for out in resampler.resample(frame):
                yield out.to_ndarray().reshape(-1, self.channels)
        for out in resampler.resample(None):
            yield out.to_ndarray().reshape(-1, self.channels)

    def rewind(self) -> None:
        """Back to the first frame."""
        if self._sf is not None:
            self._sf.seek(0)
        else:
            if self._av_frames is not None:    # a decoder cannot be wound back: reopen
                self._av.close()
                import av
                self._av = av.open(self.path)
            self._av_frames = self._av_decode()
        if self.sr != self.file_sr:
            import soxr
            self._resampler = soxr.ResampleStream(self.file_sr, self.sr, self.channels, dtype="float32",
                                                  quality="HQ")
        self._buf, self._buffered, self._eof = [], 0, False

    # -- reading ------------------------------------------------------------------------
    def _raw(self) -> np.ndarray | None:
        """The next decoded chunk (frames, channels) at the file's rate; None at the end."""
        try:
            if self._sf is not None:
                y = self._sf.read(self._chunk, dtype="float32", always_2d=True)
                y = y if len(y) else None
            else:
                y = next(self._av_frames, None)
        except Exception as e:  # noqa: BLE001 - a file damaged part way is still a file error
            raise AudioError(f"cannot decode audio file {self.path}: {e}") from e
        return None if y is None else self._bounded(y)

    def _bounded(self, y: np.ndarray) -> np.ndarray:
        """Samples as every analysis can take them: a float file may hold NaN, inf or 1e30
        (damaged or hostile), which would poison the resampler and every running state after
        it; they become 0 or +-MAX_SAMPLE, said once per file."""
        if np.isfinite(y).all() and float(np.abs(y).max(initial=0.0)) <= MAX_SAMPLE:
            return y
        if not self._said_bad:
            self._said_bad = True
            log.warning("audio file %s: samples that are not numbers or beyond +-%g set to 0 or clipped",
                        self.path, MAX_SAMPLE)
        return np.clip(np.nan_to_num(y, nan=0.0, posinf=MAX_SAMPLE, neginf=-MAX_SAMPLE), -MAX_SAMPLE, MAX_SAMPLE)

    def _fill(self, n: int) -> None:
        while self._buffered < n and not self._eof:
            y = self._raw()
            if self._resampler is not None:
                last = y is None
                y = self._resampler.resample_chunk(
                    np.zeros((0, self.channels), np.float32) if last else y, last=last)
                if last:
                    self._eof = True
            elif y is None:
                self._eof = True
                break
            if len(y):
                self._buf.append(np.asarray(y, dtype=np.float32).reshape(-1, self.channels))
                self._buffered += len(self._buf[-1])

    def read(self, n: int) -> np.ndarray:
        """Up to ``n`` frames from where the last read stopped; fewer only at the end."""
        self._fill(n)
        y = np.concatenate(self._buf) if len(self._buf) > 1 else (
            self._buf[0] if self._buf else np.zeros((0, self.channels), np.float32))
        out, rest = y[:n], y[n:]
        self._buf, self._buffered = ([rest] if len(rest) else []), len(rest)
        if self.mono:
            out = out.mean(axis=1) if out.shape[1] > 1 else out[:, 0]
        return np.ascontiguousarray(out, dtype=np.float32)

    def blocks(self, size: int):
        """The whole file from the start, ``size`` frames at a time (the last one shorter)."""
        self.rewind()
        while True:
            y = self.read(size)
            if not len(y):
                return
            yield y
            if len(y) < size:
                return

    def close(self) -> None:
        for f in (self._sf, self._av):
            if f is not None:
                try:
                    f.close()
                except Exception:  # noqa: BLE001 - closing a file we only read
                    pass

    def __enter__(self) -> "AudioReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_audio(path, sr: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """The whole file in memory (short files, tests; long files go through
    :class:`AudioReader`): float32 samples and their rate, mono -> shape (n,), else
    (n, channels) (the soundfile / sounddevice layout). Native sample rate unless ``sr``
    is given (resampled with librosa / soxr). Raises AudioError for a missing,
    unreadable or empty file."""
    with AudioReader(path, mono=False) as r:
        chunks = list(r.blocks(1 << 20))
        file_sr = r.sr
    if not chunks:
        raise AudioError(f"audio file has no samples: {os.fspath(path)}")
    y = np.concatenate(chunks)
    if mono:
        y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
    y = np.ascontiguousarray(y, dtype=np.float32)
    if sr is not None and int(sr) != int(file_sr):
        import librosa
        y = librosa.resample(y, orig_sr=file_sr, target_sr=int(sr), axis=0).astype(np.float32)
        file_sr = int(sr)
    return y, int(file_sr)


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


def _analyse(analyzer, block, t: float) -> tuple[dict, dict]:
    """One block through the analyzer: its channels (with the input gain applied, dB) and events."""
    values, events = analyzer.process(block, t)
    values[GAIN_DB] = analyzer.gain_db
    return values, events


def _publish(bus, t: float, values: dict, events: dict) -> None:
    """One block's channels and events, stamped with its capture time ``t``, in one
    atomic bus write: a snapshot holds the whole block or none of it."""
    bus.publish(values, events, t=t, source="audio")


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

    def __init__(self, bus, path, block: int = DEFAULT_BLOCK, loop: bool = False, play: bool = True,
                 bands=BANDS, device=None, drums=DRUMS):
        self.bus = bus
        self.path = os.fspath(path)
        self.block = int(block)
        self.loop = loop
        self.play = play
        self.device = device
        # read a block at a time as it plays: a long file never sits in memory
        self._reader = AudioReader(self.path, mono=False)
        self.sr, self.channels = self._reader.sr, self._reader.channels
        if not len(self._reader.read(1)):
            self._reader.close()
            raise AudioError(f"audio file has no samples: {self.path}")
        self._reader.rewind()
        self.duration = None if self._reader.frames is None else self._reader.frames / self.sr
        self.analyzer = BlockAnalyzer(self.sr, self.block, bands, drums=drums)
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

    def close(self) -> None:
        """Stop and let go of the file."""
        self.stop()
        self._reader.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def set_tempo(self, bpm: float | None, phase_time: float | None = None, **how) -> None:
        """Seed the beat tracker with a tempo (``phase_time``: time.monotonic() of a beat);
        see :meth:`BlockAnalyzer.set_tempo`."""
        self.analyzer.set_tempo(bpm, phase_time, **how)

    def set_gain(self, mode: str | None = None, db: float | None = None) -> None:
        """The input gain's mode and dB (None: unchanged); see :meth:`BlockAnalyzer.set_gain`."""
        self.analyzer.set_gain(mode, db)

    # -- internals ----------------------------------------------------------------------
    def _open_stream(self):
        sd, err = _import_sounddevice()
        if sd is None:
            log.warning("audio: PortAudio unavailable (%s): playing %s silently, still analysed; "
                        "fix: sudo apt install libportaudio2 (vj doctor checks)", err, os.path.basename(self.path))
            return None
        try:
            channels = min(self.channels, 2)
            stream = sd.OutputStream(samplerate=self.sr, blocksize=self.block, channels=channels,
                                     dtype="float32", device=self.device, latency="low")
            stream.start()
            return stream
        except Exception as e:  # noqa: BLE001
            log.warning("audio: cannot open output device %r (%s): playing %s silently, still analysed; "
                        "fix: free or plug in the device (vj devices lists them), or --mute",
                        self.device, e, os.path.basename(self.path))
            return None

    def _close_stream(self):
        stream, self._stream = self._stream, None
        _close_quietly(stream)

    def _next_block(self) -> np.ndarray:
        """The next (block, ch) slice of the file, zero-padded, looping if asked."""
        B = self.block
        out = np.zeros((B, self.channels), np.float32)
        filled = 0
        rewound = False           # a rewind that yields nothing again: the file went empty
        while filled < B and not self.finished:
            y = self._reader.read(B - filled)
            out[filled:filled + len(y)] = y
            filled += len(y)
            self.position += len(y)
            if len(y):
                rewound = False
            if filled < B:        # the end of the file
                if self.loop and not rewound:
                    self._reader.rewind()
                    self.position, rewound = 0, True
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
        pending: collections.deque = collections.deque()   # (t_heard, values, events)
        t0 = time.monotonic()
        k = 0                                               # blocks since t0
        while not self._stop.is_set():
            frames = self._next_block()
            mono = frames.mean(axis=1) if frames.shape[1] > 1 else frames[:, 0]
            stream = self._stream
            if stream is not None:
                try:
                    stream.write(np.ascontiguousarray(frames[:, :stream.channels]))
                    t_heard = time.monotonic() + float(stream.latency or 0.0)
                except Exception as e:  # noqa: BLE001
                    log.warning("audio: output device failed (%s): continuing silently, still analysed; "
                                "fix: reconnect it and restart the show, or --mute", e)
                    self._close_stream()
                    self.audible = False
                    now = time.monotonic()
                    pending.append((now, *_analyse(self.analyzer, mono, now)))
                    t0, k = now, 0
                    continue
                pending.append((t_heard, *_analyse(self.analyzer, mono, t_heard)))
                now = time.monotonic()
                while pending and pending[0][0] <= now:
                    _publish(self.bus, *pending.popleft())
                continue
            # silent: the block is "heard" when its last sample would be
            while pending:                    # flush anything held back for the device
                _publish(self.bus, *pending.popleft())
            k += 1
            due = t0 + k * dt
            if due - time.monotonic() < -0.25:   # fell far behind (suspend, debugger): resync
                t0, k = time.monotonic(), 0
                due = t0
            values, events = _analyse(self.analyzer, mono, due)
            wait = due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            _publish(self.bus, due, values, events)


class InputSource:
    """Live input through sounddevice.InputStream (device by name or index, None = the
    default input). The stream callback only copies the block (mono mix) into a bounded
    deque with its capture time; a worker thread analyses and publishes with that time
    (monotonic s of the block's last sample, from the callback's ADC time when the host
    provides it). No device, no PortAudio, or a device error: logs one warning,
    publishes nothing (patches read 0.0), never raises into the caller."""

    def __init__(self, bus, device=None, block: int = DEFAULT_BLOCK, sr: int | None = None,
                 bands=BANDS, channels: int = 1, drums=DRUMS):
        self.bus = bus
        self.device = device
        self.block = int(block)
        self.sr = sr
        self.bands = bands
        self.drums = drums
        self.channels = channels
        self.analyzer: BlockAnalyzer | None = None
        self._gain: tuple[str, float] = ("auto", 0.0)    # set_gain before the stream opens
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
            return self._fail(f"PortAudio unavailable ({err})", "sudo apt install libportaudio2 (vj doctor checks)")
        try:
            stream = sd.InputStream(samplerate=self.sr, blocksize=self.block, device=self.device,
                                    channels=self.channels, dtype="float32",
                                    callback=self._callback, finished_callback=self._finished)
            self.sr = int(stream.samplerate)
            self.analyzer = BlockAnalyzer(self.sr, self.block, self.bands, drums=self.drums)
            self.analyzer.set_gain(*self._gain)
            self._stop.clear()
            self._thread = threading.Thread(target=self._worker, name="audio-input", daemon=True)
            self._thread.start()
            self._stream = stream
            stream.start()
        except Exception as e:  # noqa: BLE001
            self._stream = None
            self._stop.set()
            self._ready.set()
            which = "the default input" if self.device is None else f"input device {self.device!r}"
            return self._fail(f"cannot open {which} ({e})",
                              "--audio-in NAME or INDEX of an input vj devices lists")
        return self

    def set_tempo(self, bpm: float | None, phase_time: float | None = None, **how) -> None:
        """Seed the beat tracker with a tempo (``phase_time``: time.monotonic() of a beat);
        see :meth:`BlockAnalyzer.set_tempo`. Ignored while no stream is open."""
        if self.analyzer is not None:
            self.analyzer.set_tempo(bpm, phase_time, **how)

    def set_gain(self, mode: str | None = None, db: float | None = None) -> None:
        """The input gain's mode and dB (None: unchanged); see :meth:`BlockAnalyzer.set_gain`.
        Kept and applied when the stream opens, if it is not open yet."""
        self._gain = (mode or self._gain[0], self._gain[1] if db is None else db)
        if self.analyzer is not None:
            self.analyzer.set_gain(mode, db)

    def stop(self) -> None:
        self._stop.set()
        self._ready.set()
        stream, self._stream = self._stream, None
        _close_quietly(stream)
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    # -- internals ----------------------------------------------------------------------
    def _fail(self, why: str, fix: str) -> "InputSource":
        self.error = why
        log.warning("audio: %s: running without audio input, audio.* channels stay 0; fix: %s", why, fix)
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
            log.warning("audio: input stream from device %r stopped unexpectedly (unplugged, or taken by "
                        "another program): running without audio input; fix: reconnect it and restart the show",
                        self.device)
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
                    _publish(self.bus, t, *_analyse(self.analyzer, block, t))
                except Exception:  # noqa: BLE001
                    log.exception("audio: analysis failed")


# ---------------------------------------------------------------------------------------
# the input gain from the control plane

class GainStage:
    """A frame stage (front, with ``vj run --audio`` / ``--audio-in``): applies the
    ``/vj/audio/gain`` (dB), ``/vj/audio/gain/mode`` and ``/vj/audio/gain/lock`` commands,
    which arrive as ``audio.gain*`` bus events (``engine.control.namespace``), to every audio
    source, and publishes the state in ``frame.status`` (``audio_gain_db``,
    ``audio_gain_mode``, ``audio_gain_locked``) and for the HUD (:meth:`hud_line`). A lock
    (1, or a toggle without a value) switches to ``locked``; unlocking goes back to the mode
    before it."""

    name = "audio gain"

    def __init__(self, sources=(), mode: str = "auto", db: float = 0.0):
        self.sources = list(sources)
        self.mode, self.db = mode, float(db)
        self.unlocked = "auto" if mode == "locked" else mode    # the mode an unlock returns to
        self.rms_db = DB_FLOOR
        if mode != "auto" or db:
            self._apply(mode, db)

    def _apply(self, mode: str | None, db: float | None) -> None:
        for src in self.sources:
            try:
                src.set_gain(mode, db)
            except Exception as e:  # noqa: BLE001 - a source never takes the frame down
                log.warning("audio gain not applied to %s: %s", type(src).__name__, e)

    def set(self, mode: str | None = None, db: float | None = None, lock: bool | None = None) -> None:
        """What the commands do (also callable directly): ``lock`` True/False locks or unlocks."""
        if lock is not None:
            if lock and self.mode != "locked":
                self.unlocked, mode = self.mode, "locked"
            elif not lock and self.mode == "locked":
                mode = self.unlocked
        if mode is not None:
            if mode not in GAIN_MODES:
                log.warning("audio gain mode %r is not one of %s; unchanged", mode, ", ".join(GAIN_MODES))
                mode = None
            elif mode != "locked":
                self.unlocked = mode
        if db is not None:
            db = min(GAIN_DB_RANGE[1], max(GAIN_DB_RANGE[0], float(db)))
        if mode is None and db is None:
            return
        changed_mode = mode is not None and mode != self.mode
        self.mode = self.mode if mode is None else mode
        self.db = self.db if db is None else db
        if changed_mode:
            log.info("audio gain: %s", self.describe())
        self._apply(mode, db)

    def run(self, frame) -> None:
        ev = frame.snap.events
        for e in ev.get("audio.gain.mode", ()):
            self.set(mode=e.value)
        for e in ev.get("audio.gain.lock", ()):
            self.set(lock=(self.mode != "locked") if e.value is None else bool(e.value))
        for e in ev.get("audio.gain", ()):
            self.set(db=e.value)
        v = frame.snap.values.get(RMS_DB)
        self.rms_db = v if isinstance(v, float) else DB_FLOOR
        st = frame.status
        st["audio_gain_db"] = self.db
        st["audio_gain_mode"] = self.mode
        st["audio_gain_locked"] = 1.0 if self.mode == "locked" else 0.0

    def describe(self) -> str:
        """``auto``, ``locked``, ``manual +6 dB`` (the dB shown whenever it is not 0)."""
        return self.mode + (f" {self.db:+.0f} dB" if round(self.db) or self.mode == "manual" else "")

    def hud_line(self) -> str:
        """``audio -12 dB  gain manual +6 dB``: the level the analysis hears, and the gain."""
        level = "silent" if self.rms_db <= DB_FLOOR else f"{self.rms_db:.0f} dB"
        return f"audio {level}  gain {self.describe()}"
