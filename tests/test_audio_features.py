"""The live (causal, block by block) audio features against synthetic audio with known
events: onsets, tempo, beats, chroma, drums, centroid, HPSS, an outside tempo, cost."""
from __future__ import annotations

import time

import numpy as np
import pytest

from audio_synth import (SR, chord, click_track, drum_track, f_measure, hat, kick, nearest_errors,
                         place, run_blocks, tone)
from engine.signals import audio
from engine.signals.features import BlockAnalyzer, centroid_unit
from engine.signals.bar_pointer import BarPointer

TEMPOS = [90, 100, 120, 137, 160]


def analyse(y, block=512, sr=SR, **kw):
    """Run y through a fresh BlockAnalyzer: (analyzer, values, {event: times}, block end times)."""
    an = BlockAnalyzer(sr, block, **kw)
    values, events = run_blocks(y, an)
    t = np.arange(1, len(values) + 1) * block / sr
    return an, values, events, t


# --------------------------------------------------------------------------- onsets

@pytest.mark.parametrize("block, sr", [(256, SR), (512, SR), (512, 48000)])
@pytest.mark.parametrize("bpm, noise_db", [(90, None), (120, -40), (137, None), (160, -30)])
def test_click_track_onsets_f_measure(bpm, noise_db, block, sr):
    y, clicks = click_track(bpm, seconds=10.0, noise_db=noise_db, sr=sr)
    _, _, events, _ = analyse(y, block, sr=sr)
    onsets = events.get("audio.onset", np.zeros(0))
    if noise_db is not None:
        onsets = onsets[onsets > 0.05]              # the noise starting is an onset too
    f, p, r = f_measure(onsets, clicks, 0.030)
    print(f"\nclicks at {bpm} bpm, noise {noise_db} dBFS, block {block} at {sr} Hz: onset F {f:.3f} "
          f"(P {p:.3f}, R {r:.3f})")
    assert f >= 0.95
    late = nearest_errors(onsets, clicks)
    assert np.all(late >= -0.001) and np.all(late <= 0.030)     # causal: never before the click


def test_onset_envelope_and_event_values():
    y, clicks = click_track(120, seconds=4.0)
    _, values, events, t = analyse(y)
    env = np.array([v["audio.onset"] for v in values])
    assert env.max() == 1.0
    k = int(np.argmax(env))
    assert 0.25 < env[k + round(0.15 * SR / 512)] < 0.5         # ~0.15 s time constant


# --------------------------------------------------------------------------- tempo and beats

@pytest.mark.parametrize("bpm, sr", [(b, SR) for b in TEMPOS] + [(126, 48000)])
def test_tempo_within_2_percent_after_8_seconds(bpm, sr):
    y, _ = click_track(bpm, seconds=14.0, first=0.37, sr=sr)
    _, values, _, t = analyse(y, sr=sr)
    est = np.array([v["audio.bpm"] for v in values])[t >= 8.0]
    err = np.abs(est / bpm - 1.0)
    print(f"\n{bpm} bpm: estimate at 8 s {est[0]:.2f}, worst relative error after 8 s {100 * err.max():.2f} %")
    assert err.max() < 0.02


@pytest.mark.parametrize("bpm, sr, block", [(b, SR, 512) for b in TEMPOS] + [(126, 48000, 256)])
def test_beats_within_40_ms(bpm, sr, block):
    y, clicks = click_track(bpm, seconds=14.0, first=0.23, sr=sr)
    _, values, events, t = analyse(y, block, sr=sr)
    beats = events["audio.beat"]
    late = beats[beats >= 8.0]
    err = nearest_errors(late, clicks)
    expected = np.sum((clicks >= 8.0 - 0.04) & (clicks <= t[-1] - 0.04))
    print(f"\n{bpm} bpm: {len(late)} beats after 8 s, error mean {1e3 * err.mean():.1f} ms, "
          f"worst {1e3 * np.abs(err).max():.1f} ms")
    assert np.abs(err).max() <= 0.040
    assert abs(len(late) - expected) <= 1
    # the phase rises from 0 to 1 between beats and the confidence is high
    phase = np.array([v["audio.beat_phase"] for v in values])
    assert phase.min() >= 0.0 and phase.max() < 1.0
    k = np.searchsorted(t, beats[-3])
    assert phase[k] < 0.2 and phase[k + 3] > phase[k]
    assert values[-1]["audio.beat_confidence"] > 0.3


def test_tempo_of_accented_pattern_is_the_beat_not_its_double():
    """Kick on the beat, hi-hat on the eighths: the tempo is the kick's."""
    bpm = 110
    beat = 60.0 / bpm
    y = np.zeros(14 * SR, np.float32)
    place(y, np.arange(0.2, 13.5, beat), kick())
    place(y, np.arange(0.2, 13.5, beat / 2), hat())
    _, values, _, t = analyse(y)
    est = np.array([v["audio.bpm"] for v in values])[(t >= 8.0) & (t < 13.5)]     # while it plays
    assert np.abs(est / bpm - 1.0).max() < 0.02


def test_no_tempo_and_no_beats_in_silence_or_noise():
    _, values, events, _ = analyse(np.zeros(6 * SR, np.float32))
    assert "audio.beat" not in events and values[-1]["audio.bpm"] == 0.0
    y = (np.random.default_rng(3).standard_normal(8 * SR) * 0.1).astype(np.float32)
    _, values, events, _ = analyse(y)
    assert len(events.get("audio.beat", [])) <= 2 or values[-1]["audio.beat_confidence"] < 0.3


def test_beats_stop_after_the_music_stops():
    y, clicks = click_track(120, seconds=10.0)
    y = np.concatenate([y, np.zeros(6 * SR, np.float32)])
    _, _, events, _ = analyse(y)
    assert events["audio.beat"].max() < 10.0 + 2.5


def test_set_tempo_seeds_but_the_music_overrules_a_wrong_tempo():
    """An outside tempo (tap, MIDI clock, OSC) seeds the tracker; when the music says
    otherwise, the music wins once the seed's hold is over."""
    y, _ = click_track(100, seconds=20.0)
    an = BlockAnalyzer(SR, 512)
    an.set_tempo(128.0, phase_time=0.05, hold=4.0)
    values, _ = run_blocks(y, an)
    assert abs(values[-1]["audio.bpm"] - 100.0) < 2.0
    with pytest.raises(ValueError):
        an.set_tempo(120.0, weight=0.0)


def test_set_tempo_without_phase_keeps_locking_to_the_audio():
    y, clicks = click_track(120, seconds=12.0, first=0.31)
    an = BlockAnalyzer(SR, 512)
    an.set_tempo(120.0)
    values, events = run_blocks(y, an)
    late = events["audio.beat"][events["audio.beat"] > 4.0]
    assert np.abs(nearest_errors(late, clicks)).max() <= 0.040


def test_set_tempo_uses_the_capture_time_base():
    """Sources pass capture times (time.monotonic()); a tap's time is in that base. In
    silence nothing overrules the seed: tempo and phase are the tap's."""
    an = BlockAnalyzer(SR, 512)
    offset = 1000.0
    block = np.zeros(512, np.float32)
    for k in range(20):
        an.process(block, t=offset + (k + 1) * 512 / SR)
    an.set_tempo(90.0, phase_time=offset + 0.5)
    for k in range(20, 60):
        v, _ = an.process(block, t=offset + (k + 1) * 512 / SR)
    expected = ((60 * 512 / SR - 0.5) * 90 / 60) % 1.0
    assert v["audio.bpm"] == pytest.approx(90.0, rel=0.01)
    err = (v["audio.beat_phase"] - expected + 0.5) % 1.0 - 0.5
    assert abs(err) < 0.03
    with pytest.raises(ValueError):
        an.set_tempo(1000.0)


def test_bar_pointer_alone():
    """The state space on its own: a pulse every 0.5 s at 100 frames/s, every fourth
    one marked as the downbeat: 120 bpm, 4/4, beats on the pulses, the bar on the one."""
    m = BarPointer(100.0)
    beats, downs = [], []
    last = 0.0
    for k in range(1200):
        pulse = k % 50 == 0
        s = m.step(0.6 if pulse and k % 200 else 0.02, 0.6 if pulse and not k % 200 else 0.02)
        bpm, phase, bar, bpb = m.describe(s)
        if phase < last:
            beats.append(k)
            if m.beat_index[s] == 0:
                downs.append(k)
        last = phase
    assert bpm == pytest.approx(120.0, rel=0.01) and bpb == 4
    late = np.array([b for b in beats if b > 600])
    assert np.all(late % 50 <= 1) or np.all((late % 50 <= 1) | (late % 50 >= 49))
    assert all(d % 200 <= 1 for d in downs if d > 600)


# --------------------------------------------------------------------------- chroma

@pytest.mark.parametrize("midi", [40, 45, 50, 55, 61, 64, 69, 72, 78, 83, 88])
def test_chroma_argmax_is_the_played_pitch_class(midi):
    _, values, _, _ = analyse(tone(midi, 1.0))
    v = values[-1]
    assert int(np.argmax(v["audio.chroma"])) == midi % 12
    register = "audio.chroma_bass" if midi < 60 else "audio.chroma_treble"
    assert int(np.argmax(v[register])) == midi % 12
    assert v["audio.chroma"].dtype == np.float32 and v["audio.chroma"].max() == pytest.approx(1.0)


def test_chroma_bass_and_treble_separate_registers():
    y = tone(43, 1.5) + tone(76, 1.5)              # G2 in the bass, E5 on top
    _, values, _, _ = analyse(y)
    v = values[-1]
    assert int(np.argmax(v["audio.chroma_bass"])) == 7
    assert int(np.argmax(v["audio.chroma_treble"])) == 4
    assert v["audio.chroma_bass"][4] < 0.3 and v["audio.chroma_treble"][7] < 0.5


def test_chroma_silence_is_zero():
    _, values, _, _ = analyse(np.zeros(SR, np.float32))
    for name in audio.vector_names():
        assert values[-1][name].max() == 0.0


# --------------------------------------------------------------------------- bands, drums, centroid, HPSS

def test_band_limited_bursts_fire_their_own_drum_only():
    y, truth = drum_track(["kick", "hat", "snare", "hat"], seconds=10.0)
    _, _, events, _ = analyse(y)
    for drum in ("kick", "snare", "hat"):
        got = events.get(f"audio.{drum}", np.zeros(0))
        f, p, r = f_measure(got, truth[drum], 0.030)
        print(f"\n{drum}: F {f:.2f} (P {p:.2f}, R {r:.2f}) over {len(truth[drum])} hits")
        assert f >= 0.95, drum
        for other in ("kick", "snare", "hat"):
            if other != drum:
                assert f_measure(got, truth[other], 0.030)[0] == 0.0, (drum, other)
    # every hit is an onset too
    assert f_measure(events["audio.onset"], np.concatenate(list(truth.values())), 0.03)[0] >= 0.95


def test_bands_follow_the_bursts():
    y, truth = drum_track(["kick", None, "hat", None], seconds=4.0, step=0.5)
    _, values, _, t = analyse(y)
    low = np.array([v["audio.low"] for v in values])
    high = np.array([v["audio.high"] for v in values])

    def peak_after(times, arr):
        return np.mean([arr[(t > s) & (t < s + 0.08)].max() for s in times])
    assert peak_after(truth["kick"], low) > 5 * peak_after(truth["hat"], low)
    assert peak_after(truth["hat"], high) > 5 * peak_after(truth["kick"], high)


def test_centroid_orders_low_mid_high():
    cents = []
    for midi in (36, 69, 100):
        _, values, _, _ = analyse(tone(midi, 0.5, harmonics=(1.0,)))
        cents.append((values[-1]["audio.centroid"], values[-1]["audio.centroid_hz"]))
    assert cents[0][0] < cents[1][0] < cents[2][0]
    assert cents[1][1] == pytest.approx(440.0, rel=0.05)
    assert float(centroid_unit(1000.0)) == pytest.approx(0.5)


def raw_levels(y, names):
    an = BlockAnalyzer(SR, 512)
    out = {n: [] for n in names}
    for i in range(0, len(y) - 511, 512):
        an.process(y[i:i + 512])
        for n in names:
            out[n].append(an.raw[n])
    return {n: np.array(v[50:]) for n, v in out.items()}


def test_harmonic_and_percussive_levels():
    names = ("audio.harmonic", "audio.percussive")
    sustained = raw_levels(chord([60, 64, 67], 3.0, amp=0.2), names)
    assert sustained["audio.harmonic"].mean() > 2 * sustained["audio.percussive"].mean()
    clicks = raw_levels(click_track(240, seconds=3.0)[0], names)
    assert clicks["audio.percussive"].max() > 10 * clicks["audio.harmonic"].max()
    _, values, _, _ = analyse(tone(57, 3.0))
    assert np.mean([v["audio.harmonic"] for v in values[100:]]) > 0.8


# --------------------------------------------------------------------------- the real-time path, 60 s

def test_sixty_seconds_block_by_block_cost_report():
    """No timing assert (the CPU is shared); run with -s to see the figures."""
    y, _ = drum_track(["kick", "hat", "snare", "hat"], seconds=60.0, step=0.25)
    y = y + np.tile(chord([57, 60, 64], 5.0), 12)[:len(y)]
    for block in (512, 256):
        an = BlockAnalyzer(SR, block)
        wall, cpu = [], []
        for i in range(0, len(y) - block + 1, block):
            x = y[i:i + block]
            w0, c0 = time.perf_counter(), time.thread_time()
            an.process(x)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.thread_time() - c0)
        wall, cpu = np.array(wall) * 1e3, np.array(cpu) * 1e3
        print(f"\nBlockAnalyzer.process, all features, 60 s in {len(wall)} blocks of {block} "
              f"({1e3 * block / SR:.2f} ms of audio): median {np.median(wall):.3f} ms, "
              f"p99 {np.percentile(wall, 99):.3f} ms wall; CPU median {np.median(cpu):.3f} ms, "
              f"p99 {np.percentile(cpu, 99):.3f} ms")
        assert len(wall) == len(y) // block
