"""The beat-tracking corpus material (tests/beat_material.py: hard-case MIDI, beat
grids, WAD reading, fluidsynth rendering) and the scorer (engine.signals.beat_score)."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import beat_material as bm

mido = pytest.importorskip("mido")


def _fluidr3():
    if not bm.have_fluidsynth():
        pytest.skip("the fluidsynth program is not installed (apt-get install fluidsynth)")
    sf2 = bm.SOUNDFONTS["FluidR3"]
    if not Path(sf2).exists():
        pytest.skip(f"soundfont {sf2} missing (apt-get install fluid-soundfont-gm)")
    return sf2


@pytest.mark.parametrize("category,bpm", [("rock", 128.0), ("waltz", 150.0), ("tempo_step", 110.0)])
def test_rendered_drum_hits_sit_on_the_ground_truth(tmp_path, category, bpm):
    sf2 = _fluidr3()
    mid, beats, downs = bm.hard_case(category, bpm, seed=3)
    assert len(beats) > 40 and beats[0] == 0.0
    assert downs[0] == 0.0 and set(np.round(downs, 6)) <= set(np.round(beats, 6))
    per_bar = 3 if category == "waltz" else 4
    assert np.allclose(np.diff(downs)[:3], per_bar * np.diff(beats)[:1], rtol=1e-6)
    # every beat has a kick or a snare here: their rendered starts sit on the beats
    offs = bm.measure_offset(mid, sf2, tmp_path, max_beats=48) * 1000.0
    assert len(offs) >= 30
    within = np.abs(offs) <= 10.0
    assert within.mean() >= 0.9, np.round(offs, 1)
    assert abs(np.median(offs)) <= 10.0


def test_tempo_map_beats_follow_the_step():
    mid, beats, _ = bm.hard_case("tempo_step", 110.0, seed=1)
    ibi = np.diff(beats)
    assert np.isclose(ibi[0], 60 / 110)
    assert len(set(np.round(ibi, 6))) == 2           # one step: two beat periods
    mid, beats, _ = bm.hard_case("tempo_ramp", 100.0, seed=1)
    ibi = np.diff(beats)
    assert np.isclose(ibi[0], 0.6) and not np.isclose(ibi[-1], 0.6)


def test_compound_meter_beats_are_dotted_quarters():
    m = mido.MidiFile(type=0, ticks_per_beat=96)
    tr = mido.MidiTrack()
    tr.append(mido.MetaMessage("time_signature", numerator=6, denominator=8, time=0))
    tr.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))      # quarter = 0.5 s
    tr.append(mido.Message("note_on", note=60, velocity=90, time=0))
    tr.append(mido.Message("note_off", note=60, velocity=0, time=96 * 12))
    m.tracks.append(tr)
    beats, downs, bpb = bm.beat_grid(m)
    assert bpb == 2
    assert np.allclose(np.diff(beats), 0.75) and np.allclose(np.diff(downs), 1.5)


def test_a_file_off_its_own_grid_is_no_ground_truth():
    """Freedoom's MUS conversions tick at 140 per second with 89 ticks a 'beat': their
    notes land anywhere on that grid, and the corpus leaves them out."""
    mid, _, _ = bm.hard_case("rock", 120.0, seed=3)
    assert bm.on_beat_fraction(mid) >= 0.3
    rng = np.random.default_rng(0)
    m = mido.MidiFile(type=0, ticks_per_beat=89)
    tr = mido.MidiTrack()
    for gap in rng.integers(20, 70, 400):           # notes anywhere between its ticks
        tr.append(mido.Message("note_on", channel=9, note=36, velocity=100, time=int(gap)))
        tr.append(mido.Message("note_on", channel=9, note=36, velocity=0, time=0))
    m.tracks.append(tr)
    assert bm.on_beat_fraction(m) < 0.2
    assert bm.on_beat_fraction(mido.MidiFile()) == 0.0


def test_wad_reader_finds_midi_lumps():
    midi = bm.hard_case("rock", 120.0, 1)[0]
    import io
    buf = io.BytesIO()
    midi.save(file=buf)
    lumps = [("MAP01", b"\x00" * 10), ("D_RUNNIN", buf.getvalue()), ("D_STALKS", b"MUS\x1a" + b"\x00" * 20)]
    data = bytearray(b"PWAD" + struct.pack("<ii", len(lumps), 0))
    pos = []
    for _, body in lumps:
        pos.append(len(data))
        data += body
    off = len(data)
    for (name, body), p in zip(lumps, pos):
        data += struct.pack("<ii8s", p, len(body), name.encode())
    struct.pack_into("<i", data, 8, off)
    got = bm.read_wad(bytes(data))
    assert [n for n, _ in got] == ["MAP01", "D_RUNNIN", "D_STALKS"]
    midis, skipped = bm.wad_midi_lumps(bytes(data))
    assert [n for n, _ in midis] == ["D_RUNNIN"] and skipped == ["D_STALKS"]
    assert midis[0][1] == buf.getvalue()
    with pytest.raises(ValueError):
        bm.read_wad(b"JUNK" + bytes(8))


def test_scorer_on_known_inputs():
    pytest.importorskip("mir_eval")
    from engine.signals.beat_score import score_beats
    ref = np.arange(0.0, 30.0, 0.5)
    s = score_beats(ref, ref, ref[::4], ref[::4], ref_bpm=120.0)
    assert s["f"] == 1.0 and s["cmlc"] == 1.0 and s["amlc"] == 1.0 and s["downbeat_f"] == 1.0
    assert s["tempo_ok"] and abs(s["latency_ms"]) < 1e-6
    assert s["n_ref"] == np.sum(ref >= 8.0)
    off = score_beats(ref + 0.25, ref, ref_bpm=120.0)       # half a beat late: the off-beats
    assert off["f"] == 0.0 and off["cmlc"] == 0.0
    assert off["amlc"] >= 0.95                                # off-beat is an allowed metrical level
    half = score_beats(ref[::2], ref, ref_bpm=120.0)         # every other beat: half tempo
    assert half["cmlc"] == 0.0 and half["amlc"] >= 0.95
    assert not half["tempo_ok"] and half["tempo_ok_octave"]
    late = score_beats(ref + 0.02, ref)
    assert late["f"] == 1.0 and abs(late["latency_ms"] - 20.0) < 1e-6
    empty = score_beats([], ref)
    assert empty["f"] == 0.0 and empty["latency_ms"] is None


def test_live_beats_on_a_click_track():
    from audio_synth import click_track
    from engine.signals.beat_score import live_beats
    y, _ = click_track(120.0, seconds=12.0)
    r = live_beats(y, bm.SR)
    assert len(r["bpm"]) == len(y) // 512 and len(r["block_us"]) == len(r["bpm"])
    assert r["times"][-1] == pytest.approx((len(y) // 512) * 512 / bm.SR)
    assert len(r["beats"]) > 5


def test_the_shuffle_rolls_on_the_beat_and_the_swung_eighth():
    """The piano shuffle's notes start on a beat or two thirds through one, nowhere else, and
    its chords mostly on the swung eighth: the ground truth is the beat the bass and brushes
    mark, with the loudest chords between."""
    mid, beats, downs = bm.hard_case("shuffle", 120.0, seed=5)
    tpb = mid.ticks_per_beat
    starts = [(t, m) for t, m in bm._merged(mid) if m.type == "note_on" and m.velocity > 0]
    frac = np.array([(t % tpb) / tpb for t, _ in starts])
    assert np.all(np.isclose(frac, 0.0, atol=1e-3) | np.isclose(frac, 2 / 3, atol=1e-3))
    right = [(t % tpb) / tpb for t, m in starts if m.channel == 2]
    assert np.mean(np.isclose(right, 2 / 3, atol=1e-3)) > 0.6
    assert np.allclose(np.diff(beats)[:8], 0.5) and np.allclose(np.diff(downs)[:4], 2.0)
