"""The corpus's whole-song sources (tools/lmms_songs.py, tools/fof_songs.py): what a
project or a chart says about the beat, read safely, and where excerpts are cut."""
from __future__ import annotations

import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import fof_songs  # noqa: E402
import lmms_songs  # noqa: E402

mido = pytest.importorskip("mido")


def _project(bpm="140", num="4", den="4", automated=False) -> bytes:
    auto = ('<automationpattern name="tempo"><time pos="0" value="120"/><object id="77"/>'
            '</automationpattern>') if automated else ""
    return (f'<?xml version="1.0"?><lmms-project version="1.0"><head timesig_numerator="{num}" '
            f'timesig_denominator="{den}" mastervol="100"><bpm value="{bpm}" id="77"/></head>'
            f'<song><trackcontainer>{auto}</trackcontainer></song></lmms-project>').encode()


def _mmpz(xml: bytes, claim: int | None = None) -> bytes:
    return (len(xml) if claim is None else claim).to_bytes(4, "big") + zlib.compress(xml)


def test_an_lmms_project_gives_its_tempo_and_meter(tmp_path):
    p = tmp_path / "song.mmpz"
    p.write_bytes(_mmpz(_project("128")))
    info = lmms_songs.song_info(p)
    assert info == {"bpm": 128.0, "beats_per_bar": 4, "trainable": False}
    plain = tmp_path / "waltz.mmp"
    plain.write_bytes(_project("90", "3"))
    assert lmms_songs.song_info(plain)["beats_per_bar"] == 3
    odd = tmp_path / "odd.mmp"
    odd.write_bytes(_project("140", "1", "1"))
    assert lmms_songs.song_info(odd)["beats_per_bar"] is None      # beats, no bars
    # an automated tempo has no fixed grid: no ground truth
    auto = tmp_path / "auto.mmp"
    auto.write_bytes(_project(automated=True))
    assert lmms_songs.song_info(auto) is None
    # the tempo a render asks for is the one the project then says
    root = lmms_songs.read_project(p)
    lmms_songs.set_tempo(root, 117.5)
    assert lmms_songs.song_info(p, root)["bpm"] == 117.5


def test_a_hostile_lmms_project_is_refused_not_unpacked(tmp_path):
    claim = tmp_path / "claim.mmpz"
    claim.write_bytes(_mmpz(_project(), claim=1 << 31))
    with pytest.raises(ValueError, match="unpacked"):
        lmms_songs.read_project(claim)
    bomb = tmp_path / "bomb.mmpz"                 # says small, unpacks to 64 MiB of zeros
    bomb.write_bytes(_mmpz(b"<a>" + bytes(64 << 20) + b"</a>", claim=100))
    with pytest.raises(ValueError, match="larger"):
        lmms_songs.read_project(bomb)
    # a billion laughs: entities that expand to gigabytes
    ents = "".join(f'<!ENTITY e{i + 1} "{("&e%d;" % i) * 10}">' for i in range(9))
    laughs = tmp_path / "laughs.mmp"
    laughs.write_text(f'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY e0 "ha">{ents}]><l>&e9;</l>')
    with pytest.raises(ValueError, match="not a project"):
        lmms_songs.read_project(laughs)
    junk = tmp_path / "junk.mmpz"
    junk.write_bytes(b"\x00\x00\x00\x10not zlib at all")
    with pytest.raises(ValueError, match="not a packed project"):
        lmms_songs.read_project(junk)


def test_only_permissive_lmms_songs_may_train():
    names = [Path("demos/Saber-FinalStep.mmpz"), Path("demos/Skiessi/Skiessi-Onion.mmpz"),
             Path("demos/Alf42red-Mauiwowi.mmpz"), Path("shorties/Greshz-CoolSnip.mmpz")]
    import fnmatch
    allowed = [any(fnmatch.fnmatch(str(n), p) for p in lmms_songs.TRAINABLE) for n in names]
    assert allowed == [True, False, False, True]        # BSD-2, CC-BY-SA-4, CC-BY-SA-3, Artistic-2


@pytest.mark.skipif(shutil.which("lmms") is None or not lmms_songs.PROJECTS.is_dir(),
                    reason="lmms is not installed (apt-get install lmms): LMMS renders are not checked")
def test_an_lmms_render_starts_its_notes_on_the_grid(tmp_path):
    """The corpus takes an LMMS song's beats to be its grid from the first sample."""
    import beat_material as bm
    import soundfile as sf
    song = lmms_songs.PROJECTS / "demos" / "CapDan" / "CapDan-ReggaetonTry.mmpz"
    if not song.is_file():
        pytest.skip(f"{song} missing")
    w = lmms_songs.render(song, tmp_path / "r.wav", bpm=150.0)
    y, sr = sf.read(str(w), dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    grid = np.arange(60.0 / 150.0, len(y) / sr - 1.0, 60.0 / 150.0)
    offs = [o - t for t in grid if (o := bm.onset_near(y, sr, float(t), before=0.01, after=0.01)) is not None]
    assert len(offs) > 0.5 * len(grid)
    assert abs(float(np.median(offs))) < 0.002


def _chart(tmp_path, notes_s, bpm=150.0) -> Path:
    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    tr.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    tick = 0
    for i, t in enumerate(notes_s):
        at = int(round(t * bpm / 60.0 * 480))
        note = 96 + i % 5 if i % 3 else 60           # the expert part, and another difficulty's notes
        tr.append(mido.Message("note_on", note=note, velocity=100, time=at - tick))
        tr.append(mido.Message("note_off", note=note, velocity=0, time=0))
        tick = at
    mid.tracks.append(tr)
    d = tmp_path / "song"
    d.mkdir()
    mid.save(str(d / "notes.mid"))
    return d


def test_a_chart_offset_is_read_from_the_guitar_notes(tmp_path):
    """onset_lag finds how far the stem's hits sit from the chart's notes, whatever the
    beat, to a few ms."""
    rng = np.random.default_rng(3)
    notes = np.sort(rng.uniform(1.0, 40.0, 160)).round(3)
    song = _chart(tmp_path, notes)
    mid = fof_songs.chart(song)
    got = fof_songs.guitar_note_times(mid)
    expert = np.array([t for i, t in enumerate(notes) if i % 3])
    assert len(got) == len(np.unique(expert)) and np.allclose(got, np.unique(expert), atol=0.002)
    assert not fof_songs.has_meter(mid)
    sr = 22050
    n = int(0.12 * sr)
    hit = np.sin(2 * np.pi * 196.0 * np.arange(n) / sr) * np.exp(-np.arange(n) / sr * 25.0)

    def stem(shift):
        y = np.zeros(int(42 * sr), np.float32)
        for t in got:
            a = int(round((t + shift) * sr))
            y[a:a + n] += hit
        return y
    base, clarity = fof_songs.onset_lag(stem(0.0), sr, got)
    assert clarity > 3.0
    for shift in (0.045, -0.08):
        lag, _ = fof_songs.onset_lag(stem(shift), sr, got)
        assert lag - base == pytest.approx(shift, abs=0.006)


def test_whole_songs_are_cut_into_excerpts_that_fit():
    import beat_corpus as bc
    assert bc.song_starts(100.0) == [15.0, 60.0]                # 105 + 20 > 100
    assert bc.song_starts(30.0) == []
    assert bc.song_starts(200.0, first=22.5) == [22.5, 67.5, 112.5, 157.5]
