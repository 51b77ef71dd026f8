#!/usr/bin/env python3
"""Build an evaluation corpus for beat tracking: rendered full-band music with ground
truth beats and downbeats from the MIDI it was rendered from.

    python tools/beat_corpus.py build --out build/beat_corpus [--quick] [--jobs 2]

Sources: the music lumps of the Freedoom WADs (Debian package ``freedoom``), OpenTTD's
OpenMSX music (``openttd-openmsx``, held out whole), and hard
cases made by tests/beat_material.py (swing, off-beat hats, tempo changes, a quiet
intro, no drums, 3/4). Each MIDI is rendered with the ``fluidsynth`` CLI through three
General MIDI soundfonts; a 30 s mono excerpt of each render is written with its beats
to DIR/corpus.json. Generated audio and MIDI stay in DIR (build/ is git-ignored).
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

WADS = ["/usr/share/games/doom/freedoom1.wad", "/usr/share/games/doom/freedoom2.wad"]
FREEDOOM_COPYRIGHT = "/usr/share/doc/freedoom/copyright"
EXCERPT = 30.0
MIN_EXCERPT = 20.0
FREEDOOM_START = 10.0
OPENMSX = "/usr/share/games/openttd/baseset/openmsx"
OPENMSX_COPYRIGHT = "/usr/share/doc/openttd-openmsx/copyright"
OPENMSX_START = 5.0   # its pieces are short (a minute or two) and start at once
ON_BEAT_MIN = 0.2     # below: the notes ignore the file's beat grid (chance is 0.125)


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
"""


def build(out: Path, quick: bool, jobs: int) -> None:
    t_start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("midi", "audio", "tmp"):
        (out / sub).mkdir(exist_ok=True)
    notes = []

    def log(msg):
        notes.append(msg)
        print(msg, flush=True)

    if not bm.have_fluidsynth():
        sys.exit("fluidsynth not found (apt-get install fluidsynth)")
    fonts = {k: v for k, v in bm.SOUNDFONTS.items() if Path(v).exists()}
    for k in set(bm.SOUNDFONTS) - set(fonts):
        log(f"soundfont {k} missing: {bm.SOUNDFONTS[k]}")
    if quick:
        fonts = {k: v for k, v in fonts.items() if k == "FluidR3"}
    tracks = hard_tracks(out / "midi", quick)
    if not quick:
        tracks += freedoom_tracks(out / "midi", log)
        for t in tracks:
            if t["source"] == "freedoom":
                t["split"] = split_of(t["track"])
        tracks += openmsx_tracks(out / "midi", log)
    # the start delay of rendered drum hits after their MIDI time, per soundfont
    ref_mid, _, _ = bm.hard_case("rock", 120.0, 1)
    offsets = {}
    for k, sf2 in fonts.items():
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
    (out / "corpus.json").write_text(json.dumps(items, indent=1))
    lic = Path(FREEDOOM_COPYRIGHT).read_text() if Path(FREEDOOM_COPYRIGHT).exists() else "(see the Freedoom project)"
    omsx = Path(OPENMSX_COPYRIGHT).read_text() if Path(OPENMSX_COPYRIGHT).exists() else "(see the OpenMSX project)"
    (out / "README.md").write_text(README.format(licence=lic, openmsx_licence=omsx) + "\n## Build notes\n\n"
                                   + "\n".join(f"- {n}" for n in notes) + "\n")
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
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build(Path(args.out), args.quick, args.jobs)


if __name__ == "__main__":
    main()
