"""Audio stage, first version: band levels, silence, onsets, offline features, sources."""
from __future__ import annotations

import logging
import threading
import time
import types

import numpy as np
import pytest
import soundfile as sf

from engine.signals import audio
from engine.signals.audio import (AudioError, BlockAnalyzer, FileSource, InputSource,
                                  list_devices, load_audio)
from engine.signals.offline import offline_features
from engine.signals.bus import SignalBus

SR = 44100
BLOCK = 512
RNG = np.random.default_rng(1234)


def sine(freq, seconds=1.0, amp=0.5, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds, db=0.0, sr=SR):
    return (RNG.standard_normal(int(seconds * sr)) * 0.3 * 10 ** (db / 20)).astype(np.float32)


def click_track(seconds=6.0, period=0.5, first=0.25, amp=0.8, sr=SR):
    """Short decaying noise bursts (5 ms) every `period` s; returns (y, click times)."""
    y = np.zeros(int(seconds * sr), np.float32)
    times = np.arange(first, seconds - 0.05, period)
    n = int(0.005 * sr)
    burst = (RNG.standard_normal(n) * np.exp(-np.arange(n) / (0.001 * sr))).astype(np.float32)
    for t in times:
        i = int(round(t * sr))
        y[i:i + n] += amp * burst
    return y, times


def analyse(y, an=None, sr=SR):
    """Run y through a BlockAnalyzer; (list of feature dicts, onset times at block ends)."""
    an = an or BlockAnalyzer(sr, BLOCK)
    values, onsets = [], []
    for i in range(0, len(y) - BLOCK + 1, BLOCK):
        v, events = an.process(y[i:i + BLOCK])
        values.append(v)
        strength = events.get("audio.onset")
        if strength is not None:
            assert 0.0 <= strength <= 1.0
            onsets.append((i + BLOCK) / sr)
    return values, onsets


def tail_mean(values, name, n=20):
    return float(np.mean([v[name] for v in values[-n:]]))


# --------------------------------------------------------------------------- bands

@pytest.mark.parametrize("freq, band", [(60, "audio.low"), (1000, "audio.mid"), (8000, "audio.high")])
def test_sine_drives_its_band(freq, band):
    values, _ = analyse(sine(freq))
    level = tail_mean(values, band)
    others = [tail_mean(values, b) for b in audio.band_names() if b != band]
    assert level > 0.9
    assert max(others) < 0.2 * level, (band, level, others)
    assert tail_mean(values, "audio.rms") > 0.9
    assert -12 < tail_mean(values, "audio.rms_db") < -6      # 0.5 amplitude sine: -9 dBFS


def test_low_vs_high_are_far_apart():
    lo, _ = analyse(sine(60))
    hi, _ = analyse(sine(8000))
    assert tail_mean(lo, "audio.low") > 20 * tail_mean(lo, "audio.high") + 1e-3
    assert tail_mean(hi, "audio.high") > 20 * tail_mean(hi, "audio.low") + 1e-3


def test_all_names_present_and_in_range():
    values, _ = analyse(noise(1.0))
    names = set(audio.feature_names())
    assert {"audio.rms", "audio.low", "audio.mid", "audio.high", "audio.flux", "audio.onset",
            "audio.rms_db", "audio.kick", "audio.snare", "audio.hat", "audio.centroid",
            "audio.bpm", "audio.beat", "audio.beat_phase"} <= names
    vectors = set(audio.vector_names())
    assert vectors == {"audio.chroma", "audio.chroma_bass", "audio.chroma_treble"}
    for v in values:
        assert set(v) == names | vectors
        for k, x in v.items():
            if k in vectors:
                assert x.shape == (12,) and x.min() >= 0.0 and x.max() <= 1.0
                continue
            assert isinstance(x, float)
            if k not in audio.UNNORMALISED:
                assert 0.0 <= x <= 1.0, (k, x)


def test_custom_bands():
    bands = {"sub": (20, 150), "air": (2000, 20000)}
    values, _ = analyse(sine(50), BlockAnalyzer(SR, BLOCK, bands))
    assert tail_mean(values, "audio.sub") > 10 * tail_mean(values, "audio.air")
    values, _ = analyse(sine(5000), BlockAnalyzer(SR, BLOCK, bands))
    assert tail_mean(values, "audio.air") > 10 * tail_mean(values, "audio.sub")


def test_steady_tone_does_not_blow_up_other_bands():
    """Per-band gains release over ~10 s, but a band that only holds window leakage
    must not be amplified to 1 (bands are floored relative to the overall level)."""
    values, _ = analyse(sine(60, 30.0))
    assert tail_mean(values, "audio.low") > 0.9
    assert tail_mean(values, "audio.high") < 0.05
    assert tail_mean(values, "audio.mid") < 0.2


# --------------------------------------------------------------------------- silence

def test_silence_is_zero():
    values, onsets = analyse(np.zeros(SR, np.float32))
    assert onsets == []
    for name in ("audio.rms", "audio.low", "audio.mid", "audio.high", "audio.flux", "audio.onset"):
        assert max(v[name] for v in values) == 0.0
    assert values[-1]["audio.rms_db"] == -100.0


def test_silence_after_loud_stays_zero():
    an = BlockAnalyzer(SR, BLOCK)
    analyse(noise(2.0, 0.0), an)
    values, onsets = analyse(np.zeros(15 * SR, np.float32), an)   # longer than the release
    assert onsets == []
    for name in ("audio.rms", "audio.low", "audio.mid", "audio.high", "audio.flux"):
        assert tail_mean(values, name, 200) < 1e-6, name
    assert values[-1]["audio.onset"] < 1e-6


def test_faint_noise_after_silence_is_not_amplified():
    """-90 dBFS hiss (a quiet interface) after a long silence stays near 0: the gain floor."""
    an = BlockAnalyzer(SR, BLOCK)
    analyse(np.zeros(15 * SR, np.float32), an)
    values, onsets = analyse(noise(2.0, -80.0), an)     # noise() is 0.3 * 10^(db/20) rms
    assert tail_mean(values, "audio.rms") < 0.05
    assert max(tail_mean(values, b) for b in audio.band_names()) < 0.05


def test_gain_releases_slowly():
    """After a loud passage, a quiet one reads low at first and is brought up over ~10 s."""
    an = BlockAnalyzer(SR, BLOCK)
    analyse(noise(2.0, 0.0), an)
    early, _ = analyse(noise(1.0, -20.0), an)
    late, _ = analyse(noise(30.0, -20.0), an)
    assert tail_mean(early, "audio.rms") < 0.2
    assert tail_mean(late, "audio.rms") > 0.8


# --------------------------------------------------------------------------- onsets

def test_click_track_live_onsets():
    y, clicks = click_track()
    values, onsets = analyse(y)
    onsets = np.array(onsets)
    matched = 0
    for c in clicks:
        d = onsets - c
        hit = d[(d >= 0) & (d <= 0.030)]
        matched += len(hit) == 1
    assert matched >= len(clicks) - 1, (clicks, onsets)
    assert len(onsets) <= len(clicks)          # nothing between the clicks
    # the envelope jumps to 1 and decays with ~0.15 s
    env = np.array([v["audio.onset"] for v in values])
    assert env.max() == 1.0
    k = int(np.argmax(env))
    after = env[k + round(0.15 * SR / BLOCK)]
    assert 0.25 < after < 0.5


def test_click_track_over_faint_noise():
    y, clicks = click_track()
    y = y + noise(len(y) / SR, -40.0)
    _, onsets = analyse(y)
    onsets = np.array([t for t in onsets if t > 0.1])    # the noise starting is an onset
    hits = sum(np.any((onsets - c >= 0) & (onsets - c <= 0.030)) for c in clicks)
    assert hits >= len(clicks) - 1
    assert len(onsets) <= len(clicks) + 1


def test_min_gap():
    """Two clicks 20 ms apart give one onset."""
    y = np.zeros(SR, np.float32)
    burst = click_track(0.1, first=0.0)[0][:220]
    for t in (0.3, 0.32):
        i = int(t * SR)
        y[i:i + 220] += burst
    _, onsets = analyse(y)
    assert len(onsets) == 1


# --------------------------------------------------------------------------- offline

def test_offline_shapes_and_names():
    y = noise(2.0)
    feats = offline_features(y, SR, fps=30, n_frames=75)       # longer than the audio
    events = audio.event_names()
    assert set(feats) == (set(audio.feature_names()) | set(audio.vector_names())
                          | {e + ":event" for e in events} | {e + ":value" for e in events})
    for name, arr in feats.items():
        assert arr.shape == ((75, 12) if name in audio.vector_names() else (75,)), name
    assert feats["audio.onset:event"].dtype == bool
    for name in audio.feature_names():
        if name not in audio.UNNORMALISED:
            assert feats[name].min() >= 0.0 and feats[name].max() <= 1.0, name
    assert feats["audio.rms"][65:].max() == 0.0           # past the end: silence
    assert offline_features(y, SR, fps=30, n_frames=0)["audio.rms"].shape == (0,)


@pytest.mark.parametrize("fps, first", [
    (30.0, 0.25),       # clicks mid-way between frames
    (24.0, 0.25),       # clicks exactly on frame times
    (60.0, 0.25),       # likewise
    (30.0, 0.2401),     # 7 ms after a frame: the next frame
])
def test_offline_onset_events_on_right_frames(fps, first):
    y, clicks = click_track(first=first)
    n_frames = int(6.0 * fps)
    feats = offline_features(y, SR, fps, n_frames)
    got = np.flatnonzero(feats["audio.onset:event"])
    want = np.ceil(np.round(np.asarray(clicks) * fps, 6)).astype(int)
    assert len(want) - 1 <= len(got) <= len(want)
    assert set(got) <= set(want), (got, want)
    env = feats["audio.onset"]
    assert np.all(env[got] == 1.0)
    n = round(0.15 * fps)                 # ~one time constant later
    assert env[got[0] + n] == pytest.approx(np.exp(-n / (0.15 * fps)), abs=1e-4)


def test_offline_quiet_then_loud():
    fps = 25.0
    y = np.concatenate([noise(5.0, -40.0), noise(5.0, 0.0)])
    n_frames = int(10 * fps)
    feats = offline_features(y, SR, fps, n_frames)
    rms = feats["audio.rms"]
    first, second = rms[: n_frames // 2 - 2].mean(), rms[n_frames // 2 + 2:].mean()
    assert second > 0.8
    assert first < 0.05
    for band in audio.band_names():
        assert feats[band][n_frames // 2 + 2:].mean() > 10 * feats[band][: n_frames // 2 - 2].mean()
    db = feats["audio.rms_db"]
    assert db[n_frames // 2 + 2:].mean() - db[: n_frames // 2 - 2].mean() == pytest.approx(40, abs=1)


def test_offline_silence():
    feats = offline_features(np.zeros(2 * SR, np.float32), SR, 30, 60)
    assert not feats["audio.onset:event"].any()
    for name in ("audio.rms", "audio.low", "audio.mid", "audio.high", "audio.flux", "audio.onset"):
        assert feats[name].max() == 0.0


def test_offline_matches_sine_bands():
    feats = offline_features(sine(60, 2.0), SR, 30, 60)
    assert feats["audio.low"][5:-5].mean() > 0.9
    assert feats["audio.high"][5:-5].mean() < 0.05


# --------------------------------------------------------------------------- files

def test_load_audio(tmp_path):
    stereo = np.stack([sine(440, 0.5), sine(880, 0.5)], axis=1)
    path = tmp_path / "s.wav"
    sf.write(path, stereo, SR)
    y, sr = load_audio(path)
    assert sr == SR and y.shape == (len(stereo),) and y.dtype == np.float32
    y2, _ = load_audio(path, mono=False)
    assert y2.shape == stereo.shape
    y3, sr3 = load_audio(path, sr=22050)
    assert sr3 == 22050 and abs(len(y3) - len(stereo) // 2) <= 2


def test_load_audio_errors(tmp_path):
    with pytest.raises(AudioError):
        load_audio(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav file at all" * 10)
    with pytest.raises(AudioError):
        load_audio(bad)
    with pytest.raises(AudioError):
        FileSource(SignalBus(), tmp_path / "missing.wav", play=False)


def wait_for(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return False


def test_file_source_publishes(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, sine(440, 1.5), SR)
    bus = SignalBus()
    t_start = time.monotonic()
    src = FileSource(bus, path, play=False).start()
    try:
        assert wait_for(lambda: bus.peek("audio.rms") is not None, 0.5)
        assert time.monotonic() - t_start < 0.5
        assert wait_for(lambda: bus.peek("audio.rms", 0.0) > 0.5, 0.5)
        snap = bus.snapshot()
        assert t_start <= snap.times["audio.rms"] <= time.monotonic() + 0.05
        assert snap["audio.mid"] > 0.5
    finally:
        src.stop()
    assert not src.running


def test_file_source_silence_after_end_and_loop(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, sine(440, 0.2), SR)
    bus = SignalBus()
    src = FileSource(bus, path, play=False).start()
    try:
        assert wait_for(lambda: src.finished, 1.0)
        assert wait_for(lambda: bus.peek("audio.rms") == 0.0, 0.5)
    finally:
        src.stop()
    looping = FileSource(SignalBus(), path, play=False, loop=True).start()
    try:
        time.sleep(0.5)
        assert not looping.finished and looping.bus.peek("audio.rms", 0.0) > 0.5
    finally:
        looping.stop()


def test_file_source_without_portaudio_plays_silently(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(audio, "_import_sounddevice", lambda: (None, OSError("PortAudio library not found")))
    path = tmp_path / "tone.wav"
    sf.write(path, sine(440, 1.0), SR)
    bus = SignalBus()
    with caplog.at_level(logging.WARNING, logger="engine.signals.audio"):
        src = FileSource(bus, path, play=True).start()
        try:
            assert wait_for(lambda: bus.peek("audio.rms") is not None, 0.5)
        finally:
            src.stop()
    assert not src.audible
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "PortAudio" in warnings[0].getMessage()


class FakeOutputStream:
    """Stands in for sounddevice.OutputStream: blocking writes paced like a device."""
    written: list = []

    def __init__(self, samplerate, blocksize, channels, dtype, device, latency):
        self.samplerate, self.channels, self.latency = samplerate, channels, 0.03

    def start(self):
        pass

    def write(self, data):
        assert data.shape[1] == self.channels and data.dtype == np.float32
        FakeOutputStream.written.append(data.copy())
        time.sleep(len(data) / self.samplerate)

    def stop(self):
        pass

    def close(self):
        pass


def test_file_source_plays_through_output_stream(tmp_path, monkeypatch):
    fake = types.SimpleNamespace(OutputStream=FakeOutputStream)
    monkeypatch.setattr(audio, "_import_sounddevice", lambda: (fake, None))
    FakeOutputStream.written = []
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([sine(440, 1.0), sine(440, 1.0)], axis=1), SR)
    bus = SignalBus()
    src = FileSource(bus, path, play=True).start()
    try:
        assert wait_for(lambda: bus.peek("audio.rms", 0.0) > 0.5, 0.5)
        snap = bus.snapshot()
        # held back by the output latency: published when heard, stamped with that time
        assert snap.times["audio.rms"] <= time.monotonic()
        assert len(FakeOutputStream.written) >= 2
    finally:
        src.stop()
    assert src.audible
    assert FakeOutputStream.written[0].shape == (BLOCK, 2)


# --------------------------------------------------------------------------- input

def test_input_source_without_device_does_not_raise(caplog):
    bus = SignalBus()
    with caplog.at_level(logging.WARNING, logger="engine.signals.audio"):
        src = InputSource(bus, device="no such device 1234567").start()
        time.sleep(0.05)
        src.stop()
        src.stop()
    assert src.error
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    assert bus.peek("audio.rms") is None


class FakeInputStream:
    """Stands in for sounddevice.InputStream: calls back from its own thread."""

    def __init__(self, samplerate=None, blocksize=512, device=None, channels=1, dtype="float32",
                 callback=None, finished_callback=None):
        self.samplerate = samplerate or 48000
        self.blocksize = blocksize
        self.callback = callback
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        def run():
            y = sine(1000, 2.0, sr=self.samplerate)
            i = 0
            while not self._stop.is_set():
                block = y[i:i + self.blocksize, None]
                info = types.SimpleNamespace(inputBufferAdcTime=0.0, currentTime=0.0)
                self.callback(block, self.blocksize, info, None)
                i = (i + self.blocksize) % (len(y) - self.blocksize)
                time.sleep(self.blocksize / self.samplerate)
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()

    def close(self):
        pass


def test_input_source_pipeline_with_fake_stream(monkeypatch):
    fake = types.SimpleNamespace(InputStream=FakeInputStream)
    monkeypatch.setattr(audio, "_import_sounddevice", lambda: (fake, None))
    bus = SignalBus()
    t0 = time.monotonic()
    src = InputSource(bus).start()
    try:
        assert src.sr == 48000 and src.error is None
        assert wait_for(lambda: bus.peek("audio.mid", 0.0) > 0.5, 1.0)
        time.sleep(0.1)                    # past the first blocks (the tone starting)
        snap = bus.snapshot()
        assert t0 <= snap.times["audio.mid"] <= time.monotonic()
        assert snap["audio.low"] < 0.2
    finally:
        src.stop()
    assert not src.running


def test_list_devices_never_raises():
    devices = list_devices()
    assert isinstance(devices, list)
    for d in devices:
        assert {"index", "name", "max_input_channels", "max_output_channels"} <= set(d)


# --------------------------------------------------------------------------- speed

def test_block_timing_report():
    """No timing assert (CI machines vary); run with -s to see the numbers."""
    y = noise(60.0)
    an = BlockAnalyzer(SR, BLOCK)
    times = []
    for i in range(0, len(y) - BLOCK + 1, BLOCK):
        block = y[i:i + BLOCK]
        t = time.perf_counter()
        an.process(block)
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    print(f"\nBlockAnalyzer.process, {BLOCK} samples @ {SR} Hz ({1e3 * BLOCK / SR:.1f} ms of audio): "
          f"median {np.median(ms):.4f} ms, p99 {np.percentile(ms, 99):.4f} ms, "
          f"over {len(ms)} blocks")
    assert len(ms) == len(y) // BLOCK
