"""Offline features (vj render): the same names as live, computed with the whole file,
sampled at the frame times; the frame feed; the clock following the audio's tempo."""
from __future__ import annotations

import numpy as np
import pytest

from audio_synth import SR, chord, click_track, drum_track, f_measure, nearest_errors, tone
from engine.signals import audio
from engine.signals.bus import SignalBus
from engine.signals.clock import VirtualClock, follow_audio
from engine.signals.offline import FrameFeed, offline_features, pick_peaks, snap

FPS = 100.0                      # fine frames: event times to within 10 ms


def event_times(feats, name, fps=FPS):
    return np.flatnonzero(feats[f"{name}:event"]) / fps


@pytest.fixture(scope="module")
def clicks_120():
    y, clicks = click_track(120, seconds=12.0, first=0.33)
    return y, clicks, offline_features(y, SR, FPS, int(12.0 * FPS))


def test_offline_onsets_tempo_and_beats_on_a_click_track(clicks_120):
    _, clicks, f = clicks_120
    fm = f_measure(event_times(f, "audio.onset"), clicks, 0.030)
    assert fm[0] >= 0.95
    beats = event_times(f, "audio.beat")
    err = nearest_errors(beats, clicks)
    print(f"\noffline, clicks at 120 bpm: onset F {fm[0]:.3f}, {len(beats)} beats, worst error "
          f"{1e3 * np.abs(err).max():.1f} ms, tempo {np.median(f['audio.bpm']):.2f}")
    assert np.abs(err).max() <= 0.040
    assert len(beats) >= len(clicks) - 2
    inside = f["audio.beat_confidence"] > 0
    assert np.abs(f["audio.bpm"][inside] / 120.0 - 1).max() < 0.02
    # phase: 0 at the beats, rising to 1 in between
    k = np.flatnonzero(f["audio.beat:event"])
    assert np.all(f["audio.beat_phase"][k] < 0.2)
    mid = ((k[2:-2] + 25) % len(f["audio.beat_phase"]))             # half a beat later
    assert np.all(np.abs(f["audio.beat_phase"][mid] - 0.5) < 0.2)
    assert np.all(f["audio.beat"][k] == 1.0)


def test_offline_drums_fire_on_their_own_bursts():
    y, truth = drum_track(["kick", "hat", "snare", "hat"], seconds=10.0)
    f = offline_features(y, SR, FPS, int(10 * FPS), chroma=False, tempo=False)
    for drum in ("kick", "snare", "hat"):
        got = event_times(f, f"audio.{drum}")
        assert f_measure(got, truth[drum], 0.030)[0] >= 0.9, drum
        for other in ("kick", "snare", "hat"):
            if other != drum:
                assert f_measure(got, truth[other], 0.030)[0] == 0.0, (drum, other)
        vals = f[f"audio.{drum}:value"][f[f"audio.{drum}:event"]]
        assert np.all((vals > 0) & (vals <= 1))


@pytest.mark.parametrize("midi", [43, 52, 62, 69, 77])
def test_offline_chroma_argmax(midi):
    f = offline_features(tone(midi, 1.5), SR, 30, 45, tempo=False)
    mid = f["audio.chroma"][10:35]
    assert np.all(np.argmax(mid, axis=1) == midi % 12)
    register = "audio.chroma_bass" if midi < 60 else "audio.chroma_treble"
    assert np.all(np.argmax(f[register][10:35], axis=1) == midi % 12)


def test_offline_harmonic_percussive_centroid():
    fps = 30
    y = np.concatenate([chord([60, 64, 67], 3.0, amp=0.05), click_track(240, seconds=3.0)[0]])
    f = offline_features(y, SR, fps, 180, chroma=False, tempo=False)
    h, p = f["audio.harmonic"], f["audio.percussive"]
    assert h[10:80].mean() > 0.8 and h[100:170].max() < 0.1     # the chord is harmonic,
    assert p[100:170].max() > 0.9 and p[10:80].mean() < 0.3     # the clicks percussive
    low = offline_features(tone(40, 1.0, harmonics=(1.0,)), SR, fps, 30, chroma=False, tempo=False)
    high = offline_features(tone(96, 1.0, harmonics=(1.0,)), SR, fps, 30, chroma=False, tempo=False)
    assert low["audio.centroid"][10:20].max() < high["audio.centroid"][10:20].min()
    assert high["audio.centroid_hz"][15] == pytest.approx(440 * 2 ** ((96 - 69) / 12), rel=0.05)


def test_offline_silence_has_no_events_no_tempo():
    f = offline_features(np.zeros(3 * SR, np.float32), SR, 30, 90)
    for e in audio.event_names():
        assert not f[f"{e}:event"].any()
    assert f["audio.bpm"].max() == 0.0
    assert f["audio.chroma"].max() == 0.0


def test_pick_peaks_and_snap():
    nov = np.zeros(200)
    nov[[20, 22, 80, 150]] = [1.0, 0.8, 0.5, 0.004]          # 22 is within 30 ms of 20; 150 is tiny
    peaks, strength = pick_peaks(nov, 100.0)
    assert peaks == [20, 80]
    assert strength[0] == pytest.approx(1.0)
    assert list(snap(np.array([1.0, 2.0, 3.0]), [1.03, 2.2], 0.05)) == [1.03, 2.0, 3.0]


def test_frame_feed_publishes_channels_vectors_and_events(clicks_120):
    _, _, f = clicks_120
    feed = FrameFeed(f)
    bus = SignalBus()
    k = int(np.flatnonzero(f["audio.onset:event"])[3])
    feed(bus, k, k / FPS)
    s = bus.snapshot()
    assert s["audio.rms"] == pytest.approx(float(f["audio.rms"][k]))
    assert s["audio.chroma"].shape == (12,)
    assert s.fired("audio.onset") and 0 < s.events_of("audio.onset")[0] <= 1
    assert s.times["audio.rms"] == k / FPS
    assert not any(name.endswith((":event", ":value")) for name in s.values)


def test_clock_follows_the_audio_tempo_and_phase(clicks_120):
    """--follow-audio-tempo: the clock takes audio.bpm at once and pulls its beat onto
    the audio's beats without ever jumping or running backwards."""
    _, clicks, f = clicks_120
    fps = 30.0
    n = int(12.0 * fps)
    f30 = offline_features(clicks_120[0], SR, fps, n)
    feed, bus, clock = FrameFeed(f30), SignalBus(), VirtualClock(fps, bpm=97.0)
    beats = []
    for k in range(n):
        feed(bus, k, k / fps)
        clock.tick()
        snapshot = bus.snapshot(**clock.fields())
        follow_audio(clock, snapshot)
        beats.append(clock.beat)
    beats = np.array(beats)
    assert np.all(np.diff(beats) > 0)
    assert clock.bpm == pytest.approx(120.0, rel=0.02)
    t = np.arange(n) / fps
    late = t > 6.0
    phase_at_clicks = np.interp(clicks[clicks > 6.5], t[late], beats[late]) % 1.0
    off = np.minimum(phase_at_clicks, 1 - phase_at_clicks)
    assert off.max() < 0.1                       # within a tenth of a beat (50 ms at 120 bpm)
