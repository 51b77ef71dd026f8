"""Frets on Fire's song packs (Debian ``fretsonfire-songs-muldjord`` and
``fretsonfire-songs-sectoid``) as beat-tracking material: produced recordings of full
bands (metal and rock), each with a note chart, ``notes.mid``, made to play along with it.

The chart's tempo map is the song's beat grid. It was aligned to the recording by ear
for the game, with its own constant offset: ``offset`` measures it from the guitar stem,
against the chart's own guitar notes (which notes sound when, not where the beat is, so
a syncopated mix cannot pull it half a beat), less what the same measurement reads on
music whose grid is exact (``ONSET_LAG``). A chart without a time signature gives beats
but no bars.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SONGS = Path("/usr/share/games/fretsonfire/data/songs")
COPYRIGHTS = [Path("/usr/share/doc/fretsonfire-songs-muldjord/copyright"),
              Path("/usr/share/doc/fretsonfire-songs-sectoid/copyright")]
PACKAGES = "fretsonfire-songs-muldjord fretsonfire-songs-sectoid"
GUITAR_NOTES = range(96, 101)       # the chart's expert part
# the lag librosa's onset strength (hop 64 at 22.05 kHz) reads on LMMS renders, whose
# notes start exactly on their grid: median over its 25 demo songs, 19 to 39 ms
ONSET_LAG = 0.027
SEARCH = 0.2                        # s either side


def songs() -> list[Path]:
    return sorted(p.parent for p in SONGS.glob("*/*/notes.mid") if (p.parent / "song.ogg").is_file())


def chart(song: Path):
    import mido
    return mido.MidiFile(str(song / "notes.mid"))


def has_meter(mid) -> bool:
    return any(m.type == "time_signature" for tr in mid.tracks for m in tr)


def guitar_note_times(mid) -> np.ndarray:
    t, out = 0.0, []
    for msg in mid:                     # merged tracks, times in seconds
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0 and msg.note in GUITAR_NOTES:
            out.append(t)
    return np.unique(np.round(np.asarray(out), 4))


def onset_lag(y: np.ndarray, sr: int, times: np.ndarray) -> tuple[float, float]:
    """(lag s, peak over median) at which ``y``'s onset strength is highest on average
    at ``times`` + lag, within +-SEARCH."""
    import librosa
    y = librosa.resample(np.asarray(y, np.float32), orig_sr=sr, target_sr=22050)
    hop = 64
    fr = 22050 / hop
    env = librosa.onset.onset_strength(y=y, sr=22050, hop_length=hop, aggregate=np.median)
    lags = np.arange(-SEARCH, SEARCH, 1.0 / fr)
    v = np.array([env[np.clip(np.round((times + lag) * fr).astype(int), 0, len(env) - 1)].mean()
                  for lag in lags])
    return float(lags[int(np.argmax(v))]), float(v.max() / max(np.median(v), 1e-9))


def load(song: Path) -> tuple[np.ndarray, int, np.ndarray, int]:
    """(the full mix, mono; its rate; the guitar stem alone, mono; its rate). In the
    game the band (song.ogg) and the guitar (guitar.ogg) play together."""
    import soundfile as sf
    y, sr = sf.read(str(song / "song.ogg"), dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    g = np.zeros(0, np.float32)
    gsr = sr
    if (song / "guitar.ogg").is_file():
        g, gsr = sf.read(str(song / "guitar.ogg"), dtype="float32", always_2d=True)
        g = g.mean(axis=1)
        if gsr == sr:
            n = min(len(y), len(g))
            y = y[:n] + g[:n]
    return y, sr, g, gsr
