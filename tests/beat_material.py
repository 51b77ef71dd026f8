"""Beat-tracking test material: hard-case MIDI arrangements made by our own code, the
beat grid of any MIDI file (its tempo map and time signatures), a WAD lump reader,
rendering through the ``fluidsynth`` CLI and excerpt cutting.

Shared by ``tools/beat_corpus.py`` (which puts this folder on sys.path) and the tests.
Needs ``mido`` and ``soundfile``; rendering needs the ``fluidsynth`` program. Nothing
here needs Freedoom.
"""
from __future__ import annotations

import math
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np

SR = 44100
TPB = 480                                   # ticks per quarter note of the generated files
DRUM_CH = 9                                 # General MIDI channel 10
KICK, SNARE, CLAP, CLOSED_HAT, OPEN_HAT, RIDE, CRASH, SIDE_STICK = 36, 38, 39, 42, 46, 51, 49, 37

# (a new category goes at the end: each one's random stream is seeded by its index)
CATEGORIES = ("rock", "swing", "offbeat", "tempo_step", "tempo_ramp", "quiet_intro", "no_drums", "waltz",
              "shuffle")
SOUNDFONTS = {
    "FluidR3": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "TimGM6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "MuseScore": "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
}

# chord progressions as scale degrees of a major key (root offsets, minor flag)
_PROGRESSIONS = [
    [(0, 0), (7, 0), (9, 1), (5, 0)],       # I V vi IV
    [(9, 1), (5, 0), (0, 0), (7, 0)],       # vi IV I V
    [(0, 0), (5, 0), (7, 0), (5, 0)],       # I IV V IV
    [(2, 1), (7, 0), (0, 0), (9, 1)],       # ii V I vi
]
_PENTA = [0, 2, 4, 7, 9, 12, 14, 16]


# --------------------------------------------------------------------------- beat grid

def _merged(mid) -> list[tuple[int, object]]:
    """All messages of all tracks as (absolute tick, message), in tick order."""
    out = []
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            out.append((tick, msg))
    out.sort(key=lambda p: p[0])
    return out


class TempoMap:
    """Ticks to seconds from the set_tempo messages of all tracks (120 bpm until the
    first)."""

    def __init__(self, mid):
        self.tpb = mid.ticks_per_beat
        changes = [(t, m.tempo) for t, m in _merged(mid) if m.type == "set_tempo"]
        ticks, tempos = [0], [500000]
        for t, tempo in changes:
            if t == ticks[-1]:
                tempos[-1] = tempo
            else:
                ticks.append(t)
                tempos.append(tempo)
        self.ticks = np.array(ticks, np.int64)
        self.tempos = np.array(tempos, np.float64)
        seg = np.diff(self.ticks) * self.tempos[:-1] / 1e6 / self.tpb
        self.secs = np.concatenate([[0.0], np.cumsum(seg)])

    def seconds(self, tick):
        tick = np.asarray(tick, np.float64)
        i = np.searchsorted(self.ticks, tick, side="right") - 1
        return self.secs[i] + (tick - self.ticks[i]) * self.tempos[i] / 1e6 / self.tpb


def beat_grid(mid, end_tick: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(beat times s, downbeat times s, beats per bar of the first time signature) of a
    MIDI file, to its last event. For x/4 (and x/2) the beat is the quarter note (half
    note), for compound 6/8, 9/8, 12/8 the dotted quarter; other x/8 count eighths."""
    merged = _merged(mid)
    tpb = mid.ticks_per_beat
    if end_tick is None:
        end_tick = max((t for t, _ in merged), default=0)
    sigs = [(t, m.numerator, m.denominator) for t, m in merged if m.type == "time_signature"]
    if not sigs or sigs[0][0] > 0:
        sigs.insert(0, (0, 4, 4))
    clean = []
    for s in sigs:                          # a later signature at the same tick wins
        if clean and clean[-1][0] == s[0]:
            clean[-1] = s
        else:
            clean.append(s)
    beats, downs, first_bpb = [], [], None
    for k, (t0, num, den) in enumerate(clean):
        t1 = clean[k + 1][0] if k + 1 < len(clean) else end_tick + 1
        unit = tpb * 4 / den
        if den == 8 and num in (6, 9, 12):
            beat, bpb = 3 * unit, num // 3
        else:
            beat, bpb = unit, num
        if first_bpb is None:
            first_bpb = bpb
        bar = beat * bpb
        tick = float(t0)
        while tick < t1:
            downs.append(tick)
            for j in range(bpb):
                b = tick + j * beat
                if b < t1:
                    beats.append(b)
            tick += bar
    tm = TempoMap(mid)
    return tm.seconds(np.array(beats)), tm.seconds(np.array(downs)), int(first_bpb)


def first_note_time(mid) -> float:
    """Seconds to the first note-on with velocity > 0 (inf if none)."""
    tm = TempoMap(mid)
    for t, m in _merged(mid):
        if m.type == "note_on" and m.velocity > 0:
            return float(tm.seconds(t))
    return math.inf


def on_beat_fraction(mid) -> float:
    """The share of note starts within 1/16 of a beat of the file's own quarter-note grid
    (chance: 1/8). Music written to its grid scores 0.3 and up; a file whose ticks do
    not follow the music (a MUS conversion at 140 ticks/s, a free recording) scores
    about chance, and its beat grid is no ground truth."""
    tpb = mid.ticks_per_beat
    ticks = np.array([t for t, m in _merged(mid) if m.type == "note_on" and m.velocity > 0], np.float64)
    if not len(ticks):
        return 0.0
    r = np.mod(ticks, tpb)
    return float(np.mean(np.minimum(r, tpb - r) <= tpb / 16))


def median_bpm(beats) -> float:
    beats = np.asarray(beats, np.float64)
    if len(beats) < 2:
        return 0.0
    return float(60.0 / np.median(np.diff(beats)))


# --------------------------------------------------------------------------- hard cases

class _Song:
    """Notes by (tick, channel, note, velocity, length ticks) and tempo/meter meta."""

    def __init__(self):
        self.notes = []
        self.meta = []                                          # (tick, MetaMessage)
        self.programs = {}

    def note(self, tick, ch, note, vel, length):
        vel = int(max(1, min(127, vel)))
        self.notes.append((int(round(tick)), ch, int(note), vel, max(1, int(round(length)))))

    def to_midi(self, name):
        import mido
        mid = mido.MidiFile(type=1, ticks_per_beat=TPB)
        meta = mido.MidiTrack()
        meta.append(mido.MetaMessage("track_name", name=name, time=0))
        evs = sorted(self.meta, key=lambda p: p[0])
        _append_abs(meta, evs)
        mid.tracks.append(meta)
        for ch in sorted({n[1] for n in self.notes}):
            tr = mido.MidiTrack()
            evs = []
            if ch != DRUM_CH:
                evs.append((0, 0, mido.Message("program_change", channel=ch, program=self.programs.get(ch, 0))))
            for tick, c, note, vel, length in self.notes:
                if c != ch:
                    continue
                evs.append((tick + length, 0, mido.Message("note_off", channel=ch, note=note, velocity=0)))
                evs.append((tick, 1, mido.Message("note_on", channel=ch, note=note, velocity=vel)))
            evs.sort(key=lambda p: (p[0], p[1]))                # note-offs before note-ons
            _append_abs(tr, [(t, m) for t, _, m in evs])
            mid.tracks.append(tr)
        return mid


def _append_abs(track, events):
    last = 0
    for tick, msg in events:
        track.append(msg.copy(time=int(tick - last)))
        last = tick


def hard_case(category: str, bpm: float, seed: int, seconds: float = 32.0):
    """A deterministic full-band arrangement (drums on channel 10, bass, chords or pad,
    a lead) of one hard-case ``category`` (see CATEGORIES) at ``bpm``, at least
    ``seconds`` long: (mido.MidiFile, beat times s, downbeat times s)."""
    import mido
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")
    rng = np.random.default_rng(seed * 1000 + int(bpm) + 7919 * CATEGORIES.index(category))
    song = _Song()
    bpb = 3 if category == "waltz" else 4
    song.meta.append((0, mido.MetaMessage("time_signature", numerator=bpb, denominator=4)))
    song.meta.append((0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))))
    bar = bpb * TPB
    # tempo changes, and how many bars make `seconds`
    lo_bpm = bpm
    if category == "tempo_step":
        factor = float(rng.choice([0.82, 0.88, 1.15, 1.22]))
        step_bar = int(round(14.0 / (bpb * 60.0 / bpm)))
        song.meta.append((step_bar * bar, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm * factor))))
        lo_bpm = min(bpm, bpm * factor)
    elif category == "tempo_ramp":
        factor = float(rng.choice([0.8, 1.2, 1.25]))
        start_bar = int(round(8.0 / (bpb * 60.0 / bpm)))
        ramp_bars = int(round(14.0 / (bpb * 60.0 / bpm)))
        steps = ramp_bars * bpb * 4                               # one change per sixteenth
        for k in range(1, steps + 1):
            b = bpm * (1 + (factor - 1) * k / steps)
            song.meta.append((start_bar * bar + k * TPB // 4, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(b))))
        lo_bpm = min(bpm, bpm * factor)
    n_bars = int(math.ceil(seconds / (bpb * 60.0 / lo_bpm))) + 1
    intro_bars = 0
    if category == "quiet_intro":
        intro_bars = int(math.ceil(float(rng.uniform(8.0, 10.0)) / (bpb * 60.0 / bpm)))
        n_bars += intro_bars

    key = 40 + int(rng.integers(0, 8))                            # bass root, E2..B2
    prog = _PROGRESSIONS[int(rng.integers(0, len(_PROGRESSIONS)))]
    ch_bass, ch_chord, ch_lead, ch_pad = 0, 1, 2, 3
    song.programs[ch_bass] = int(rng.choice([33, 34, 38]))       # fingered, picked, synth bass
    song.programs[ch_chord] = int(rng.choice([0, 4, 16, 27]))    # piano, e-piano, organ, guitar
    song.programs[ch_lead] = int(rng.choice([80, 73, 65, 56, 81]))
    song.programs[ch_pad] = int(rng.choice([48, 89, 88]))
    swing = category == "swing"

    def pos(beat_in_bar, frac=0.0):
        """ticks within a bar for beat + fraction of a beat (swung eighths)."""
        if swing and abs(frac - 0.5) < 1e-9:
            frac = 2.0 / 3.0
        return (beat_in_bar + frac) * TPB

    def hum(v, spread=8):
        return v + int(rng.integers(-spread, spread + 1))

    if category == "shuffle":
        _shuffle(song, rng, n_bars, bar, bpb, key, prog, hum)
        n_bars = 0                                                 # the band below plays nothing

    for b in range(n_bars):
        t0 = b * bar
        root, minor = prog[b % len(prog)]
        chord = [key + 12 + root, key + 12 + root + (3 if minor else 4), key + 12 + root + 7]
        if b < intro_bars:                                         # soft pad and piano only
            for n in chord:
                song.note(t0, ch_pad, n + 12, hum(32, 4), bar - 10)
            for k in range(bpb):
                song.note(t0 + k * TPB, ch_chord, chord[k % 3] + 12, hum(28, 4), TPB - 40)
            continue
        fill = (b % 8 == 7) and rng.random() < 0.5
        # drums
        if category not in ("no_drums",):
            if b == intro_bars or (b % 8 == 0 and rng.random() < 0.5):
                song.note(t0, DRUM_CH, CRASH, hum(100), TPB)
            if category == "waltz":
                song.note(t0, DRUM_CH, KICK, hum(105), TPB // 2)
                for k in (1, 2):
                    song.note(t0 + k * TPB, DRUM_CH, SIDE_STICK if b % 2 else SNARE, hum(70), TPB // 2)
                for k in range(3):
                    song.note(t0 + k * TPB, DRUM_CH, CLOSED_HAT, hum(60), TPB // 4)
            elif category == "offbeat":
                # open hats and claps between the beats; the kick only on some beats
                for k in range(bpb):
                    song.note(t0 + pos(k, 0.5), DRUM_CH, OPEN_HAT, hum(85), TPB // 3)
                song.note(t0 + pos(1, 0.5), DRUM_CH, CLAP, hum(95), TPB // 4)
                song.note(t0 + pos(3, 0.5), DRUM_CH, CLAP, hum(95), TPB // 4)
                kicks = [0] if b % 2 else [0, 2]
                if rng.random() < 0.3:
                    kicks = [0, 2.75] if 2.75 < bpb else [0]
                for k in kicks:
                    song.note(t0 + k * TPB, DRUM_CH, KICK, hum(100), TPB // 2)
            else:
                hat = RIDE if swing else CLOSED_HAT
                for k in range(bpb):
                    for frac in (0.0, 0.5):
                        song.note(t0 + pos(k, frac), DRUM_CH, hat, hum(75 if frac == 0 else 60), TPB // 4)
                song.note(t0, DRUM_CH, KICK, hum(105), TPB // 2)
                song.note(t0 + 2 * TPB, DRUM_CH, KICK, hum(100), TPB // 2)
                if rng.random() < 0.4:
                    song.note(t0 + pos(2, 0.5), DRUM_CH, KICK, hum(85), TPB // 2)
                if fill:
                    for s in range(4):
                        song.note(t0 + 3 * TPB + s * TPB // 4, DRUM_CH, SNARE, hum(70 + 8 * s), TPB // 4)
                    song.note(t0 + TPB, DRUM_CH, SNARE, hum(100), TPB // 2)
                else:
                    for k in (1, 3):
                        song.note(t0 + k * TPB, DRUM_CH, SNARE, hum(100), TPB // 2)
        # bass
        if category == "waltz":
            song.note(t0, ch_bass, key + root, hum(95), TPB - 20)
            song.note(t0 + 2 * TPB, ch_bass, key + root + 7, hum(80), TPB - 20)
        elif category == "offbeat":
            for k in range(bpb):
                song.note(t0 + pos(k, 0.5), ch_bass, key + root + (12 if k % 2 else 0), hum(90), TPB // 2 - 20)
        elif swing:
            walk = [0, 4 if not minor else 3, 7, 9 if rng.random() < 0.5 else 5]
            for k in range(bpb):
                song.note(t0 + k * TPB, ch_bass, key + root + walk[k], hum(90), TPB - 30)
        elif category == "no_drums":
            for k in range(bpb):
                song.note(t0 + k * TPB, ch_bass, key + root + (7 if k % 2 else 0), hum(95 if k == 0 else 80), TPB - 40)
        else:
            for k in range(bpb):
                for frac in (0.0, 0.5):
                    song.note(t0 + pos(k, frac), ch_bass, key + root, hum(92 if frac == 0 else 75), TPB // 2 - 20)
        # chords
        if category == "waltz":
            for k in (1, 2):
                for n in chord:
                    song.note(t0 + k * TPB, ch_chord, n + 12, hum(70), TPB - 60)
        elif category == "no_drums":
            # rhythmic comping: eighths accented on the beats, plus sustained strings
            for k in range(bpb):
                for frac in (0.0, 0.5):
                    for n in chord:
                        song.note(t0 + pos(k, frac), ch_chord, n + 12, hum(88 if frac == 0 else 55), TPB // 2 - 30)
            for n in chord:
                song.note(t0, ch_pad, n, hum(55), bar - 10)
        elif swing or category == "offbeat":
            for k in range(bpb):
                for n in chord:
                    song.note(t0 + pos(k, 0.5), ch_chord, n + 12, hum(68), TPB // 3)
        else:
            for n in chord:
                song.note(t0, ch_chord, n + 12, hum(72), 2 * TPB - 20)
                song.note(t0 + 2 * TPB, ch_chord, n + 12, hum(66), 2 * TPB - 20)
            for n in chord:
                song.note(t0, ch_pad, n, hum(45), bar - 10)
        # lead: a pentatonic line, quarters and eighths, some rests
        if category != "no_drums" or b % 2 == 0:
            k = 0.0
            while k < bpb:
                step = float(rng.choice([0.5, 1.0, 1.0, 1.5])) if not swing else float(rng.choice([1.0, 0.5, 1.0]))
                frac = k - int(k)
                if rng.random() < 0.8:
                    note = key + 24 + root + _PENTA[int(rng.integers(0, len(_PENTA)))]
                    song.note(t0 + pos(int(k), frac), ch_lead, note, hum(78), step * TPB * 0.9)
                k += step
    name = f"{category}_{int(round(bpm))}_s{seed}"
    mid = song.to_midi(name)
    beats, downs, _ = beat_grid(mid)
    return mid, beats, downs


def _shuffle(song, rng, n_bars, bar, bpb, key, prog, hum) -> None:
    """A piano boogie shuffle: the left hand rolls swung eighths, on the beat and two thirds
    through it, as loud as each other; the right hand's chords mostly land on the swung
    eighth (anticipating the beat); a walking bass on some beats, brushes on 2 and 4 or no
    drums. Where the beat is, is said only by the bass, the brushes and the harmony."""
    ch_bass, ch_left, ch_right = 0, 1, 2
    song.programs[ch_bass] = 32                                  # acoustic bass
    piano = int(rng.choice([0, 1, 2, 3]))
    song.programs[ch_left] = song.programs[ch_right] = piano
    drums = rng.random() < 0.5
    roll = [0, 4, 7, 9, 10, 9, 7, 4]                             # the boogie figure, eighth by eighth
    for b in range(n_bars):
        t0 = b * bar
        root, minor = prog[b % len(prog)]
        chord = [key + 24 + root, key + 24 + root + (3 if minor else 4), key + 24 + root + 7]
        for k in range(bpb):
            for i, frac in enumerate((0.0, 2.0 / 3.0)):
                song.note(t0 + (k + frac) * TPB, ch_left, key + 12 + root + roll[(2 * k + i) % 8], hum(80),
                          TPB // 3)
            r = rng.random()
            if r < 0.6:                                          # a stab on the swung eighth
                for n in chord:
                    song.note(t0 + (k + 2.0 / 3.0) * TPB, ch_right, n + 12, hum(92), TPB // 4)
            elif r < 0.8:
                for n in chord:
                    song.note(t0 + k * TPB, ch_right, n + 12, hum(70), TPB // 4)
            if rng.random() < 0.5:
                song.note(t0 + k * TPB, ch_bass, key + root + roll[2 * k % 8], hum(78), TPB - 40)
            if drums and k % 2 == 1:
                song.note(t0 + k * TPB, DRUM_CH, 40, hum(55), TPB // 4)        # a brushed snare
                song.note(t0 + k * TPB, DRUM_CH, 44, hum(50), TPB // 4)        # the hat's pedal


def hard_case_plan(quick: bool = False) -> list[tuple[str, float, int]]:
    """(category, bpm, seed) of the corpus' hard cases: ~40, or 3 with ``quick``."""
    if quick:
        return [("rock", 120.0, 1), ("swing", 100.0, 1), ("waltz", 150.0, 1)]
    plan = [("rock", b, s) for s, b in enumerate((85, 100, 118, 132, 150, 175), 1)]
    plan += [("swing", b, s) for s, b in enumerate((92, 112, 128, 150), 1)]
    plan += [("offbeat", b, s) for s, b in enumerate((96, 118, 124, 140), 1)]
    plan += [("tempo_step", b, s) for s, b in enumerate((90, 110, 128, 145), 1)]
    plan += [("tempo_ramp", b, s) for s, b in enumerate((88, 104, 120, 140), 1)]
    plan += [("quiet_intro", b, s) for s, b in enumerate((80, 98, 116, 136), 1)]
    plan += [("no_drums", b, s) for s, b in enumerate((84, 100, 112, 126), 1)]
    plan += [("waltz", b, s) for s, b in enumerate((96, 120, 144, 168), 1)]
    plan += [("shuffle", b, s) for s, b in enumerate((96, 108, 120, 132, 144, 156), 1)]
    return [(c, float(b), s) for c, b, s in plan]


def tags_for(category: str) -> list[str]:
    tags = [category, "3/4" if category == "waltz" else "4/4"]
    if category in ("tempo_step", "tempo_ramp"):
        tags.append("tempo_change")
    return tags


# --------------------------------------------------------------------------- WAD files

def read_wad(data: bytes) -> list[tuple[str, bytes]]:
    """The lumps of a Doom WAD (IWAD or PWAD) as (name, bytes), in directory order."""
    if len(data) < 12 or data[:4] not in (b"IWAD", b"PWAD"):
        raise ValueError("not a WAD file (no IWAD/PWAD header)")
    n, off = struct.unpack_from("<ii", data, 4)
    if n < 0 or off < 12 or off + 16 * n > len(data):
        raise ValueError("WAD directory out of range")
    lumps = []
    for i in range(n):
        pos, size, raw = struct.unpack_from("<ii8s", data, off + 16 * i)
        name = raw.split(b"\0", 1)[0].decode("ascii", "replace").upper()
        if pos < 0 or size < 0 or pos + size > len(data):
            raise ValueError(f"lump {name} out of range")
        lumps.append((name, data[pos:pos + size]))
    return lumps


def wad_midi_lumps(data: bytes) -> tuple[list[tuple[str, bytes]], list[str]]:
    """(standard MIDI music lumps D_* as (name, bytes), names of D_* lumps skipped
    because they are not standard MIDI: MUS format or other)."""
    midis, skipped = [], []
    for name, lump in read_wad(data):
        if not name.startswith("D_"):
            continue
        if lump[:4] == b"MThd":
            midis.append((name, lump))
        else:
            skipped.append(name)
    return midis, skipped


# --------------------------------------------------------------------------- rendering

def have_fluidsynth() -> bool:
    return shutil.which("fluidsynth") is not None


def render(midi_path, sf2, out_wav, gain: float = 0.6, sr: int = SR) -> Path:
    """Render a MIDI file through the fluidsynth CLI to a stereo 16-bit WAV."""
    out_wav = Path(out_wav)
    cmd = ["fluidsynth", "-ni", "-q", "-g", str(gain), "-r", str(sr), "-F", str(out_wav), str(sf2), str(midi_path)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if res.returncode != 0 or not out_wav.exists() or out_wav.stat().st_size < 100:
        raise RuntimeError(f"fluidsynth failed ({res.returncode}): {res.stderr.strip()[-400:]}")
    return out_wav


def excerpt(wav_in, wav_out, start: float, seconds: float = 30.0, peak_db: float = -1.0) -> tuple[float, float]:
    """Mono excerpt [start, start + seconds) of a rendered file, peak-normalised to
    ``peak_db`` dBFS, written as 16-bit mono WAV: (its length s, its RMS before
    normalising)."""
    import soundfile as sf
    y, sr = sf.read(str(wav_in), dtype="float32", always_2d=True)
    return excerpt_of(y.mean(axis=1), sr, wav_out, start, seconds, peak_db)


def excerpt_of(y: np.ndarray, sr: int, wav_out, start: float, seconds: float = 30.0,
               peak_db: float = -1.0) -> tuple[float, float]:
    """:func:`excerpt` of a mono signal already in memory."""
    import soundfile as sf
    a = int(round(start * sr))
    y = y[a:a + int(round(seconds * sr))]
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) if len(y) else 0.0
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 0:
        y = y * (10 ** (peak_db / 20.0) / peak)
    sf.write(str(wav_out), y, sr, subtype="PCM_16")
    return len(y) / sr, rms


def onset_near(y: np.ndarray, sr: int, t: float, before: float = 0.03, after: float = 0.03,
               rise: float = 0.1) -> float | None:
    """The start of the hit nearest ``t``: the first sample in [t - before, t + after]
    whose 1 ms envelope exceeds the floor before it by ``rise`` of the rise to the
    window's peak. None if nothing rises there."""
    w = max(1, int(0.001 * sr))
    a, b = int((t - before) * sr), int((t + after) * sr)
    if a < 0 or b > len(y):
        return None
    seg = np.abs(y[a:b])
    n = len(seg) // w
    env = seg[:n * w].reshape(n, w).max(axis=1)
    floor = float(np.min(env[: max(1, int(before * 1000) - 3)]))
    peak = float(env.max())
    if peak < 3 * floor + 1e-4:
        return None
    i = int(np.argmax(env > floor + rise * (peak - floor)))
    if i == 0:                                  # no rise inside the window: a decaying tail
        return None
    j = np.argmax(seg[i * w:(i + 1) * w] > floor + rise * (peak - floor))   # within the ms
    return (a + i * w + int(j)) / sr


def drum_check_midi(mid):
    """A copy of ``mid`` with only its kicks and snares sounding (other notes muted):
    hits whose starts are easy to find in the rendered audio."""
    out = mid.__class__(type=mid.type, ticks_per_beat=mid.ticks_per_beat)
    for track in mid.tracks:
        tr = track.__class__()
        for msg in track:
            if msg.type == "note_on" and not (msg.channel == DRUM_CH and msg.note in (KICK, SNARE, SIDE_STICK)):
                msg = msg.copy(velocity=0)
            tr.append(msg)
        out.tracks.append(tr)
    return out


def measure_offset(mid, sf2, workdir, max_beats: int = 40) -> np.ndarray:
    """Offsets (s) of the rendered kick/snare starts from the ground-truth beats they
    fall on, for a hard case with a kick or snare on every beat (``rock``)."""
    import soundfile as sf
    workdir = Path(workdir)
    m = drum_check_midi(mid)
    p = workdir / "_offset_check.mid"
    m.save(str(p))
    w = render(p, sf2, workdir / "_offset_check.wav")
    y, sr = sf.read(str(w), dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    beats, _, _ = beat_grid(mid)
    offs = []
    for t in beats[1:max_beats]:
        o = onset_near(y, sr, float(t))
        if o is not None:
            offs.append(o - t)
    p.unlink(missing_ok=True)
    w.unlink(missing_ok=True)
    return np.array(offs)


def truncated(mid, seconds: float):
    """A copy of ``mid`` without the events after ``seconds`` (faster to render when
    only the start is needed), ending with all sound off on every channel (a held note
    would keep fluidsynth rendering for ever)."""
    import mido
    tm = TempoMap(mid)
    out = mid.__class__(type=mid.type, ticks_per_beat=mid.ticks_per_beat)
    for n, track in enumerate(mid.tracks):
        tr = track.__class__()
        tick = kept = 0
        for msg in track:
            tick += msg.time
            if msg.type == "end_of_track":
                continue
            if tm.seconds(tick) <= seconds:
                tr.append(msg.copy(time=tick - kept))
                kept = tick
        if n == 0:
            end = int(np.searchsorted(tm.secs, seconds))     # a tick at or after `seconds`
            end = max(kept, int(tm.ticks[end - 1] + (seconds - tm.secs[end - 1]) * 1e6 * tm.tpb
                                / tm.tempos[end - 1]) + 1)
            for ch in range(16):
                for cc in (123, 120):
                    tr.append(mido.Message("control_change", channel=ch, control=cc, value=0,
                                           time=end - kept))
                    kept = end
        out.tracks.append(tr)
    return out
