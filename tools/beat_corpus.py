#!/usr/bin/env python3
"""Build an evaluation corpus for beat tracking: rendered full-band music with ground
truth beats and downbeats from the MIDI it was rendered from.

    python tools/beat_corpus.py build --out build/beat_corpus [--quick] [--jobs 2]

    python tools/beat_corpus.py build --sources lmms,fof   # (re)build those, keep the rest

Sources: the music lumps of the Freedoom WADs (Debian package ``freedoom``), OpenTTD's
OpenMSX music (``openttd-openmsx``, held out whole), and hard
cases made by tests/beat_material.py (swing, off-beat hats, tempo changes, a quiet
intro, no drums, 3/4). Each MIDI is rendered with the ``fluidsynth`` CLI through three
General MIDI soundfonts; a 30 s mono excerpt of each render is written with its beats
to DIR/corpus.json. Two more sources are not MIDI: LMMS's demo songs (``lmms``, rendered
by LMMS itself; tools/lmms_songs.py) and Frets on Fire's produced recordings (``fof``,
held out whole; tools/fof_songs.py), several excerpts of each song.
Generated audio and MIDI stay in DIR (build/ is git-ignored).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import beat_material as bm  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
import fof_songs  # noqa: E402
import lmms_songs  # noqa: E402

WADS = ["/usr/share/games/doom/freedoom1.wad", "/usr/share/games/doom/freedoom2.wad"]
FREEDOOM_COPYRIGHT = "/usr/share/doc/freedoom/copyright"
EXCERPT = 30.0
MIN_EXCERPT = 20.0
FREEDOOM_START = 10.0
OPENMSX = "/usr/share/games/openttd/baseset/openmsx"
OPENMSX_COPYRIGHT = "/usr/share/doc/openttd-openmsx/copyright"
OPENMSX_START = 5.0   # its pieces are short (a minute or two) and start at once
ON_BEAT_MIN = 0.2     # below: the notes ignore the file's beat grid (chance is 0.125)
SONG_START = 15.0     # a whole song (LMMS, Frets on Fire): its first excerpt starts here ...
SONG_STEP = 45.0      # ... and the next this much later, while one fits
SOURCES = ("hard", "freedoom", "openmsx", "lmms", "fof")


def split_of(track: str) -> str:
    """~1/3 of tracks 'tune', the rest 'held', by the sha1 of the track name."""
    return "tune" if int(hashlib.sha1(track.encode()).hexdigest(), 16) % 3 == 0 else "held"


def _render_one(job: dict) -> dict:
    """Render one MIDI with one soundfont and cut its excerpt (runs in a worker)."""
    import mido
    out = Path(job["out"])
    mid_path = out / job["midi"]
    tmp = out / "tmp" / f"{job['id']}.wav"
    wav = out / job["audio"]
    mid = mido.MidiFile(str(mid_path))
    cut = tmp.with_suffix(".mid")               # only what the excerpt needs, plus 2 s
    bm.truncated(mid, job["start"] + EXCERPT + 2.0).save(str(cut))
    bm.render(cut, job["sf2"], tmp)
    length, rms = bm.excerpt(tmp, wav, job["start"], EXCERPT)
    tmp.unlink(missing_ok=True)
    cut.unlink(missing_ok=True)
    beats, downs, bpb = bm.beat_grid(mid)
    shift = job["start"] - job["offset"]             # rendered sounds start `offset` s late
    b = beats - shift
    d = downs - shift
    b = b[(b >= 0) & (b < length)]
    d = d[(d >= 0) & (d < length)]
    item = {k: job[k] for k in ("id", "audio", "source", "track", "soundfont", "tags", "split")}
    item.update(beats=[round(float(x), 5) for x in b], downbeats=[round(float(x), 5) for x in d],
                beats_per_bar=bpb, bpm=round(bm.median_bpm(b), 3), start=job["start"],
                duration=round(length, 4), render_offset_ms=round(job["offset"] * 1000, 3),
                midi=job["midi"], rms=rms)
    return item


def _midi_track(track: str, data: bytes, source: str, midi_dir: Path, log, start_at: float) -> dict | None:
    """One MIDI file as a corpus track, or None (said why) when it has no usable ground truth."""
    import mido
    path = midi_dir / f"{track.replace('/', '_')}.mid"
    path.write_bytes(data)
    try:
        mid = mido.MidiFile(str(path))
        first = bm.first_note_time(mid)
        length = mid.length
    except Exception as e:                      # noqa: BLE001 - a broken file
        log(f"{track}: unreadable MIDI ({e}), skipped")
        return None
    fit = bm.on_beat_fraction(mid)
    if fit < ON_BEAT_MIN:
        log(f"{track}: only {fit:.0%} of its notes on its own beat grid (tpb {mid.ticks_per_beat}), "
            "no ground truth, skipped")
        return None
    start = max(start_at, first)
    if not np.isfinite(first) or length - start < MIN_EXCERPT:
        log(f"{track}: excerpt too short ({length:.1f} s long, start {start:.1f} s), skipped")
        return None
    return {"track": track, "midi": str(path.relative_to(midi_dir.parent)), "start": round(start, 4),
            "source": source, "tags": []}


def freedoom_tracks(midi_dir: Path, log) -> list[dict]:
    """Extract the Freedoom music lumps that are standard MIDI; duplicates (same bytes)
    once, under their first name."""
    tracks, seen = [], {}
    for wad in WADS:
        if not Path(wad).exists():
            log(f"missing {wad} (apt-get install freedoom)")
            continue
        midis, skipped = bm.wad_midi_lumps(Path(wad).read_bytes())
        if skipped:
            log(f"{Path(wad).name}: skipped non-MIDI (MUS) lumps: {', '.join(skipped)}")
        for name, data in midis:
            h = hashlib.sha1(data).hexdigest()
            track = f"{Path(wad).stem}/{name}"
            if h in seen:
                log(f"{track}: same MIDI as {seen[h]}, skipped")
                continue
            seen[h] = track
            t = _midi_track(track, data, "freedoom", midi_dir, log, FREEDOOM_START)
            if t:
                tracks.append(t)
    return tracks


def openmsx_tracks(midi_dir: Path, log) -> list[dict]:
    """OpenTTD's OpenMSX music (Debian package openttd-openmsx): never tuned or trained
    on, so every render is held out."""
    files = sorted(Path(OPENMSX).glob("*.mid"))
    if not files:
        log(f"missing {OPENMSX} (apt-get install openttd-openmsx)")
    tracks = []
    for f in files:
        t = _midi_track(f"openmsx/{f.stem}", f.read_bytes(), "openmsx", midi_dir, log, OPENMSX_START)
        if t:
            t["split"] = "held"
            tracks.append(t)
    return tracks


def hard_tracks(midi_dir: Path, quick: bool) -> list[dict]:
    tracks = []
    for category, bpm, seed in bm.hard_case_plan(quick):
        mid, _, _ = bm.hard_case(category, bpm, seed)
        name = f"{category}_{int(round(bpm))}_s{seed}"
        path = midi_dir / f"hard_{name}.mid"
        mid.save(str(path))
        tracks.append({"track": f"hard/{name}", "midi": str(path.relative_to(midi_dir.parent)), "start": 0.0,
                       "source": "hard", "tags": bm.tags_for(category), "category": category})
    # split hard cases by rank of the sha1 within each category: both splits get members
    by_cat: dict[str, list[dict]] = {}
    for t in tracks:
        by_cat.setdefault(t["category"], []).append(t)
    for members in by_cat.values():
        members.sort(key=lambda t: hashlib.sha1(t["track"].encode()).hexdigest())
        n_tune = max(1, round(len(members) / 3)) if len(members) > 1 else 0
        for i, t in enumerate(members):
            t["split"] = "tune" if i < n_tune else "held"
    return tracks


def song_starts(length: float, first: float = 0.0) -> list[float]:
    """Where a whole song's excerpts start: from SONG_START (or its first beat), every
    SONG_STEP s while an excerpt of at least MIN_EXCERPT s fits."""
    out, t = [], max(SONG_START, first)
    while t + MIN_EXCERPT <= length:
        out.append(round(t, 3))
        t += SONG_STEP
    return out


def _song_items(y, sr, beats, downs, bpb, meta: dict, out: Path) -> list[dict]:
    """The excerpts of one song in memory, with the beats (s from the song's start)."""
    items = []
    for start in song_starts(len(y) / sr, float(beats[0]) if len(beats) else 0.0):
        ident = f"{meta['track'].replace('/', '_')}@{int(start)}s"
        length, rms = bm.excerpt_of(y, sr, out / "audio" / f"{ident}.wav", start, EXCERPT)
        b = beats - start
        b = b[(b >= 0) & (b < length)]
        d = None
        if downs is not None:
            d = downs - start
            d = [round(float(x), 5) for x in d[(d >= 0) & (d < length)]]
        items.append({**meta, "id": ident, "audio": f"audio/{ident}.wav",
                      "beats": [round(float(x), 5) for x in b], "downbeats": d, "beats_per_bar": bpb,
                      "bpm": round(bm.median_bpm(b), 3), "start": start, "duration": round(length, 4),
                      "render_offset_ms": 0.0, "midi": None, "rms": rms})
    return items


def _lmms_one(job) -> tuple[list[dict], str]:
    path, out = Path(job[0]), Path(job[1])
    try:
        info = lmms_songs.song_info(path)
    except (OSError, ValueError) as e:
        return [], f"lmms {path.name}: {e}, skipped"
    if info is None:
        return [], f"lmms {path.name}: tempo automated or missing, skipped"
    import soundfile as sf
    tmp = out / "tmp" / f"lmms_{path.stem}.wav"
    try:
        lmms_songs.render(path, tmp)
        y, sr = sf.read(str(tmp), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as e:
        return [], f"lmms {path.name}: {e}, skipped"
    finally:
        tmp.unlink(missing_ok=True)
    y = y.mean(axis=1)
    period = 60.0 / info["bpm"]
    beats = np.arange(0.0, len(y) / sr, period)            # LMMS renders notes on their grid exactly
    bpb = info["beats_per_bar"]
    downs = beats[::bpb] if bpb else None
    meta = {"source": "lmms", "track": f"lmms/{path.stem}", "soundfont": "lmms", "tags": [],
            "split": "tune" if info["trainable"] else "held"}
    items = _song_items(y, sr, beats, downs, bpb, meta, out)
    return items, (f"lmms {path.name}: {info['bpm']:g} bpm, {bpb or '-'}/4, {len(y) / sr:.0f} s, "
                   f"{len(items)} excerpts, {meta['split']}")


def lmms_items(out: Path, jobs: int, log) -> list[dict]:
    """LMMS's demo songs, rendered by LMMS: trainable licences tune, the rest held."""
    import shutil
    if shutil.which("lmms") is None or not lmms_songs.PROJECTS.is_dir():
        log("lmms or its demo songs missing (apt-get install lmms), no lmms items")
        return []
    items = []
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as ex:
        for got, note in ex.map(_lmms_one, [(str(p), str(out)) for p in lmms_songs.songs()]):
            log(note)
            items += got
    return items


def fof_items(out: Path, log) -> list[dict]:
    """Frets on Fire's recordings, their beats from the chart's tempo map moved by the
    offset measured from the guitar stem: all held out."""
    songs = fof_songs.songs()
    if not songs:
        log(f"no Frets on Fire songs in {fof_songs.SONGS} (apt-get install {fof_songs.PACKAGES})")
    items = []
    for song in songs:
        track = f"fof/{song.parent.name}/{song.name}".replace(" ", "_")
        try:
            mid = fof_songs.chart(song)
            y, sr, g, gsr = fof_songs.load(song)
        except Exception as e:                  # noqa: BLE001 - a broken file
            log(f"{track}: unreadable ({e}), skipped")
            continue
        notes = fof_songs.guitar_note_times(mid)
        if len(notes) < 50 or not len(g):
            log(f"{track}: {len(notes)} chart notes, guitar stem {'found' if len(g) else 'missing'}: skipped")
            continue
        lag, clarity = fof_songs.onset_lag(g, gsr, notes)
        offset = lag - fof_songs.ONSET_LAG
        beats, downs, bpb = bm.beat_grid(mid)
        mix_lag, _ = fof_songs.onset_lag(y, sr, beats)
        beats = beats + offset
        downs = downs + offset if fof_songs.has_meter(mid) else None
        bpb = bpb if downs is not None else None
        meta = {"source": "fof", "track": track, "soundfont": "recording", "tags": ["recording"],
                "split": "held"}
        got = _song_items(y, sr, beats, downs, bpb, meta, out)
        for item in got:
            item["render_offset_ms"] = round(offset * 1000, 1)
        items += got
        log(f"{track}: {bm.median_bpm(beats):.1f} bpm, chart offset {offset * 1000:+.0f} ms (guitar stem, "
            f"clarity {clarity:.1f}; the full mix's onsets peak at {(mix_lag - fof_songs.ONSET_LAG) * 1000:+.0f} ms), "
            f"{'no time signature: no bars, ' if bpb is None else ''}{len(got)} excerpts")
    return items


README = """# Beat-tracking evaluation corpus

Built by `tools/beat_corpus.py`; scored by `tools/beat_eval.py`. `corpus.json` lists the
items: a 30 s mono 16-bit 44.1 kHz excerpt (`audio`), its ground-truth `beats` and
`downbeats` (seconds from the excerpt start) from the MIDI's tempo map and time
signatures, shifted by the measured start delay of rendered hits (`render_offset_ms`,
per soundfont), `bpm` (median of the ground truth), `source`, `track`, `soundfont`,
`tags` and `split` (by track: all renders of a MIDI share it; MuseScore renders are
always held). A MIDI whose notes do not follow its own beat grid (under 20 %
of note starts within 1/16 beat of it, chance 12.5 %: the MUS conversions at 89 ticks per
beat) has no ground truth and is left out.

Soundfonts: FluidR3_GM (MIT), TimGM6mb (GPL-2), MuseScore_General_Lite (MIT), from
Debian packages fluid-soundfont-gm, timgm6mb-soundfont, musescore-general-soundfont-small.

## Freedoom music

The `freedoom` items are renders of the music lumps of the Freedoom IWADs (Debian
package `freedoom`), used under the Freedoom licence:

{licence}

## OpenMSX music

The `openmsx` items are renders of OpenTTD's OpenMSX music set (Debian package
`openttd-openmsx`, GPL-2.0; its authors are named in the package's readme.txt). No
render of it was ever used to tune the tracker or train its network: all are held out.
A piece in 5/4 or 6/8 counts for beats, not for the 4/4 downbeat figure.

{openmsx_licence}

## LMMS demo songs

The `lmms` items are LMMS's demo songs (Debian package `lmms-common`), rendered by LMMS
itself at their own tempo, each with its authors' licence (Artistic-2.0, BSD-2-Clause,
GPL-2+ or CC-BY-SA; see below). Their notes start exactly on the project's grid, so the
beats are the grid. Songs under Artistic-2.0 or BSD-2-Clause are in the tune split (they
may train the beat network); the GPL and CC-BY-SA ones are held out.

{lmms_licence}

## Frets on Fire recordings

The `fof` items are excerpts of the produced recordings (the band and the guitar stem
together) of the Frets on Fire song packs by Muldjord (CC-BY-SA-3.0) and Sectoid
(MIT-style), Debian packages `fretsonfire-songs-muldjord` and `fretsonfire-songs-sectoid`.
The beats are the game chart's tempo map, moved by the chart's offset, measured per song
from the guitar stem (build notes below). All are held out.

{fof_licence}
"""


def _note_prefixes(sources) -> tuple[str, ...]:
    """How the build notes of each source begin (so a rebuild of a source replaces its notes)."""
    by = {"lmms": ("lmms",), "fof": ("fof/", "no Frets"), "freedoom": ("freedoom", "missing /usr/share/games/doom"),
          "openmsx": ("openmsx", "missing /usr/share/games/openttd"), "hard": ("hard",)}
    midi = ("render offset", "soundfont") if set(sources) & {"hard", "freedoom", "openmsx"} else ()
    return tuple(p for s in sources for p in by.get(s, ())) + midi


def _text(path, fallback: str) -> str:
    return Path(path).read_text() if Path(path).exists() else fallback


def build(out: Path, quick: bool, jobs: int, sources: tuple[str, ...] = SOURCES) -> None:
    """Render ``sources`` into ``out``; the items of any other source already in its
    corpus.json are kept."""
    t_start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("midi", "audio", "tmp"):
        (out / sub).mkdir(exist_ok=True)
    notes = []

    def log(msg):
        notes.append(msg)
        print(msg, flush=True)

    kept = []
    if set(sources) != set(SOURCES) and (out / "corpus.json").exists():
        kept = [i for i in json.loads((out / "corpus.json").read_text()) if i["source"] not in sources]
        readme = out / "README.md"
        if readme.exists() and "\n## Build notes\n\n" in readme.read_text():
            notes += [ln[2:] for ln in readme.read_text().split("\n## Build notes\n\n", 1)[1].splitlines()
                      if ln.startswith("- ") and not any(ln[2:].startswith(p) for p in _note_prefixes(sources))]
    if not bm.have_fluidsynth():
        sys.exit("fluidsynth not found (apt-get install fluidsynth)")
    fonts = {k: v for k, v in bm.SOUNDFONTS.items() if Path(v).exists()}
    for k in set(bm.SOUNDFONTS) - set(fonts):
        log(f"soundfont {k} missing: {bm.SOUNDFONTS[k]}")
    if quick:
        fonts = {k: v for k, v in fonts.items() if k == "FluidR3"}
    tracks = hard_tracks(out / "midi", quick) if "hard" in sources else []
    if not quick:
        if "freedoom" in sources:
            tracks += freedoom_tracks(out / "midi", log)
        for t in tracks:
            if t["source"] == "freedoom":
                t["split"] = split_of(t["track"])
        if "openmsx" in sources:
            tracks += openmsx_tracks(out / "midi", log)
    # the start delay of rendered drum hits after their MIDI time, per soundfont
    ref_mid, _, _ = bm.hard_case("rock", 120.0, 1)
    offsets = {}
    for k, sf2 in fonts.items() if tracks else ():
        o = bm.measure_offset(ref_mid, sf2, out / "tmp")
        offsets[k] = float(np.median(o)) if len(o) else 0.0
        log(f"render offset {k}: median {offsets[k] * 1000:.2f} ms over {len(o)} hits "
            f"(quartiles {np.percentile(o, 25) * 1000:.2f}..{np.percentile(o, 75) * 1000:.2f} ms)")
    jobs_list = []
    for t in tracks:
        for k, sf2 in fonts.items():
            stem = t["track"].replace("/", "_")
            jobs_list.append({
                "id": f"{stem}@{k}", "audio": f"audio/{stem}@{k}.wav", "midi": t["midi"], "sf2": sf2,
                "out": str(out), "start": t["start"], "offset": offsets[k], "source": t["source"],
                "track": t["track"], "soundfont": k, "tags": list(t["tags"]),
                "split": "held" if k == "MuseScore" else t["split"]})
    items = []
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as ex:
        for item in ex.map(_render_one, jobs_list):
            if item["source"] != "hard" and (item["rms"] < 1e-4 or item["duration"] < MIN_EXCERPT
                                                or len(item["beats"]) < 8):
                log(f"{item['id']}: silent or short excerpt (rms {item['rms']:.2g}, "
                    f"{item['duration']:.1f} s, {len(item['beats'])} beats), skipped")
                (out / item["audio"]).unlink(missing_ok=True)
                continue
            items.append(item)
    if not quick and "lmms" in sources:
        items += lmms_items(out, jobs, log)
    if not quick and "fof" in sources:
        items += fof_items(out, log)
    items = kept + items
    (out / "corpus.json").write_text(json.dumps(items, indent=1))
    (out / "README.md").write_text(README.format(
        licence=_text(FREEDOOM_COPYRIGHT, "(see the Freedoom project)"),
        openmsx_licence=_text(OPENMSX_COPYRIGHT, "(see the OpenMSX project)"),
        lmms_licence=_text(lmms_songs.COPYRIGHT, "(see the LMMS project)"),
        fof_licence="\n\n".join(_text(p, f"(see {p})") for p in fof_songs.COPYRIGHTS))
        + "\n## Build notes\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    try:
        (out / "tmp").rmdir()
    except OSError:
        pass
    # summary
    from collections import Counter
    split = Counter(i["split"] for i in items)
    src = Counter((i["source"], i["split"]) for i in items)
    tags = Counter((tag, i["split"]) for i in items for tag in i["tags"])
    print(f"{len(items)} items in {time.time() - t_start:.0f} s: {dict(split)}; by source {dict(src)}")
    print("tags:", ", ".join(f"{t}/{s}={n}" for (t, s), n in sorted(tags.items())))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="render the corpus")
    b.add_argument("--out", default=str(ROOT / "build" / "beat_corpus"))
    b.add_argument("--quick", action="store_true", help="three hard cases, FluidR3 only")
    b.add_argument("--jobs", type=int, default=2)
    b.add_argument("--sources", default=",".join(SOURCES),
                   help=f"which to (re)build, comma-separated ({', '.join(SOURCES)}); the rest are kept")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        sources = tuple(x.strip() for x in args.sources.split(",") if x.strip())
        unknown = set(sources) - set(SOURCES)
        if unknown:
            ap.error(f"--sources: no such source {', '.join(sorted(unknown))} (known: {', '.join(SOURCES)})")
        build(Path(args.out), args.quick, args.jobs, sources)


if __name__ == "__main__":
    main()
