"""MIDI-synthesised music: a General MIDI song written with mido, rendered to audio by
fluidsynth with Debian's FluidR3 soundfont, analysed live (block by block) and offline;
detected onsets, beats and tempo against the note and beat times in the MIDI file."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from audio_synth import f_measure, nearest_errors, run_blocks
from engine.signals.audio import load_audio
from engine.signals.features import BlockAnalyzer
from engine.signals.offline import offline_features

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
pytestmark = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not SOUNDFONT.is_file(),
    reason="needs fluidsynth and the FluidR3 GM soundfont (Debian: apt install fluidsynth fluid-soundfont-gm)")

TPQ = 480
CHORDS = [[60, 64, 67], [57, 60, 64], [65, 69, 72], [67, 71, 74]]    # C, Am, F, G
BASS = [36, 33, 41, 43]


def write_song(path, bpm: float, bars: int) -> dict:
    """Piano chords on each bar, a bass note every two beats, kick on 1 and 3, snare on
    2 and 4, closed hi-hat on every eighth. Returns the truth: note onset times, beat
    times, kick times (s)."""
    import mido
    notes = []                                        # (tick, channel, note, velocity, length)
    for b in range(bars * 4):
        t, bar = b * TPQ, b // 4
        notes.append((t, 9, 36 if b % 2 == 0 else 38, 110 if b % 2 == 0 else 100, TPQ // 4))
        notes += [(t, 9, 42, 70, TPQ // 8), (t + TPQ // 2, 9, 42, 60, TPQ // 8)]
        if b % 4 == 0:
            notes += [(t, 0, n, 80, 4 * TPQ - 10) for n in CHORDS[bar % 4]]
        if b % 2 == 0:
            notes.append((t, 1, BASS[bar % 4], 100, TPQ - 10))
    msgs = []
    for t, ch, n, v, d in notes:
        msgs.append((t, 1, mido.Message("note_on", channel=ch, note=n, velocity=v)))
        msgs.append((t + d, 0, mido.Message("note_off", channel=ch, note=n, velocity=0)))
    msgs.sort(key=lambda m: (m[0], m[1]))
    mid = mido.MidiFile(ticks_per_beat=TPQ)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    track.append(mido.Message("program_change", channel=0, program=0, time=0))     # piano
    track.append(mido.Message("program_change", channel=1, program=33, time=0))    # finger bass
    last = 0
    for t, _, m in msgs:
        track.append(m.copy(time=t - last))
        last = t
    mid.save(str(path))
    sec = 60.0 / bpm / TPQ
    return {"onsets": np.array(sorted({t for t, *_ in notes})) * sec,
            "beats": np.arange(bars * 4) * TPQ * sec,
            "kicks": np.array(sorted(t for t, ch, n, *_ in notes if ch == 9 and n == 36)) * sec,
            "end": bars * 4 * TPQ * sec}


@pytest.fixture(scope="module", params=[96, 128])
def song(request, tmp_path_factory):
    bpm = request.param
    d = tmp_path_factory.mktemp(f"midi{bpm}")
    truth = write_song(d / "song.mid", bpm, bars=8 if bpm < 100 else 10)
    wav = d / "song.wav"
    subprocess.run(["fluidsynth", "-ni", "-F", str(wav), "-r", "44100", str(SOUNDFONT), str(d / "song.mid")],
                   check=True, capture_output=True, timeout=120)
    y, sr = load_audio(wav)
    return bpm, truth, y, sr


def test_live_analysis_of_midi_music(song):
    bpm, truth, y, sr = song
    an = BlockAnalyzer(sr, 512)
    values, events = run_blocks(y, an)
    t = np.arange(1, len(values) + 1) * 512 / sr
    onset_f = f_measure(events["audio.onset"], truth["onsets"], 0.030)
    kick_f = f_measure(events.get("audio.kick", []), truth["kicks"], 0.030)
    playing = (t >= 8.0) & (t <= truth["end"])
    tempo = np.array([v["audio.bpm"] for v in values])[playing]
    beats = events["audio.beat"]
    beats = beats[(beats >= 8.0) & (beats <= truth["end"] - 0.1)]
    err = nearest_errors(beats, truth["beats"])
    print(f"\nMIDI at {bpm} bpm, live: onset F {onset_f[0]:.3f} (P {onset_f[1]:.3f} R {onset_f[2]:.3f}), "
          f"kick F {kick_f[0]:.3f}, tempo after 8 s {tempo.min():.2f}..{tempo.max():.2f}, "
          f"{len(beats)} beats, error mean {1e3 * err.mean():.1f} ms, worst {1e3 * np.abs(err).max():.1f} ms")
    assert onset_f[0] >= 0.9
    assert kick_f[0] >= 0.9
    assert np.abs(tempo / bpm - 1).max() < 0.02
    assert np.abs(err).max() <= 0.040
    expected = np.sum((truth["beats"] >= 8.0) & (truth["beats"] <= truth["end"] - 0.1))
    assert len(beats) >= expected - 1


def test_offline_analysis_of_midi_music(song):
    bpm, truth, y, sr = song
    fps = 100.0
    f = offline_features(y, sr, fps, int(len(y) / sr * fps))
    onsets = np.flatnonzero(f["audio.onset:event"]) / fps
    beats = np.flatnonzero(f["audio.beat:event"]) / fps
    beats = beats[beats <= truth["end"] - 0.1]
    onset_f = f_measure(onsets, truth["onsets"], 0.030)
    kick_f = f_measure(np.flatnonzero(f["audio.kick:event"]) / fps, truth["kicks"], 0.030)
    err = nearest_errors(beats, truth["beats"])
    tempo = f["audio.bpm"][f["audio.beat_confidence"] > 0]
    print(f"\nMIDI at {bpm} bpm, offline: onset F {onset_f[0]:.3f}, kick F {kick_f[0]:.3f}, "
          f"tempo {np.median(tempo):.2f}, {len(beats)} beats, worst error {1e3 * np.abs(err).max():.1f} ms")
    assert onset_f[0] >= 0.9
    assert kick_f[0] >= 0.85
    assert np.abs(err).max() <= 0.040
    assert len(beats) >= len(truth["beats"]) - 2
    assert abs(np.median(tempo) / bpm - 1) < 0.02
