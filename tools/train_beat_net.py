"""Train the live beat tracker's activation network (engine/signals/beat_net.py).

    python tools/train_beat_net.py data --out build/beat_train
    python tools/train_beat_net.py train --data build/beat_train --out engine/signals/beat_net.npz

``data`` renders the training material: the *tune* split of the evaluation corpus only
(never a held-out track, never the held-out MuseScore soundfont): every tune Freedoom
track whole, through FluidR3 and TimGM6mb, at its own tempo and sped up or slowed down
by up to 12 % (its tempo map scaled), some at 48 kHz; and hard cases from our own
generator with seeds the corpus does not use. Beats and downbeats come from each MIDI
file's tempo map and time signatures. It stores each render's band magnitudes (what
the live analyser computes block by block) and its beat and downbeat frame labels.

``train`` fits the network (a dense layer, a GRU, a softmax over none / beat /
downbeat) on random 10 s crops with random gain (-24..0 dB, applied before the log
compression, as a quieter input would be), and writes its weights with the feature
normalisation. Needs torch (CPU is enough: a few minutes on two cores).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import beat_material as bm  # noqa: E402
sys.path.insert(0, str(ROOT / "tools"))
import lmms_songs  # noqa: E402
from engine.signals.beat_file import band_magnitudes  # noqa: E402
from engine.signals.beat_net import group_matrix  # noqa: E402
from engine.signals.features import LOG_GAMMA  # noqa: E402

BLOCK = 512
TRAIN_FONTS = ("FluidR3", "TimGM6mb")
HARD_SEEDS = range(101, 109)          # the corpus uses seeds 1..6, the tests 201
# the hard-case categories of beat_net.npz's data (beat_net_shuffle.npz's adds "shuffle"; beat_net.md)
TRAIN_CATEGORIES = ("rock", "swing", "offbeat", "tempo_step", "tempo_ramp", "quiet_intro", "no_drums", "waltz")
MMA_LIB = Path("/usr/share/mma/lib/stdlib")
# chord progressions (one chord a bar, "/" two in a bar) for MMA's grooves to accompany
PROGRESSIONS = ["C Am F G", "C G Am F", "Dm G C C", "Am F C G", "C C F F G G C C", "Em C G D",
                "C/F G/C Am F/G", "A D E D", "Cm Ab Bb Cm", "C7 F7 C7 C7 F7 F7 C7 C7 G7 F7 C7 G7"]


def mma_grooves() -> list[str]:
    """The grooves of MMA's standard library in 3/4 or 4/4 (Debian package mma)."""
    out = []
    for f in sorted(MMA_LIB.glob("*.mma")):
        text = f.read_text(errors="replace")
        times = {ln.split()[1] for ln in text.splitlines() if ln.strip().lower().startswith("time ")
                 and len(ln.split()) > 1}
        if not times <= {"3", "4"}:
            continue
        out += [ln.split()[1] for ln in text.splitlines() if ln.strip().lower().startswith("defgroove ")
                and len(ln.split()) > 1]
    # intros, endings and fills are a bar or two, not a song's groove
    return [g for g in out if not any(w in g.lower() for w in ("intro", "end", "fill"))]


def mma_song(groove: str, bpm: float, progression: str, bars: int) -> bytes | None:
    """A MIDI file of MMA's band playing ``groove`` at ``bpm`` over ``progression``."""
    import subprocess
    chords = progression.split()
    lines = [f"Tempo {bpm:.1f}", f"Groove {groove}"]
    lines += [f"{i + 1} {' '.join(chords[i % len(chords)].split('/'))}" for i in range(bars)]
    with tempfile.TemporaryDirectory() as d:
        src, mid = Path(d) / "song.mma", Path(d) / "song.mid"
        src.write_text("\n".join(lines) + "\n")
        r = subprocess.run(["mma", str(src), "-f", str(mid)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0 or not mid.exists():
            return None
        return mid.read_bytes()


def _scaled(mid, factor: float):
    """A copy of ``mid`` whose every tempo is ``factor`` times faster."""
    import mido
    out = mido.MidiFile(type=mid.type, ticks_per_beat=mid.ticks_per_beat)
    saw_tempo = False
    for track in mid.tracks:
        tr = mido.MidiTrack()
        for msg in track:
            if msg.type == "set_tempo":
                saw_tempo = True
                msg = msg.copy(tempo=max(1, int(round(msg.tempo / factor))))
            tr.append(msg)
        out.tracks.append(tr)
    if not saw_tempo:
        out.tracks[0].insert(0, mido.MetaMessage("set_tempo", tempo=int(round(500000 / factor)), time=0))
    return out


def _remixed(mid, seed: int):
    """A copy of ``mid`` with each channel's velocities scaled by a random gain (-12..0 dB)
    and some channels muted (the drums one time in five, any other one time in seven):
    the same beats under another balance of the band, so the network cannot lean on one
    part always being there at one level."""
    import mido
    rng = random.Random(seed)
    gains = {}
    for ch in range(16):
        mute = rng.random() < (0.2 if ch == 9 else 1 / 7)
        gains[ch] = 0.0 if mute else 10 ** (rng.uniform(-12, 0) / 20)
    out = mido.MidiFile(type=mid.type, ticks_per_beat=mid.ticks_per_beat)
    for track in mid.tracks:
        tr = mido.MidiTrack()
        for msg in track:
            if msg.type == "note_on" and msg.velocity > 0:
                v = int(round(msg.velocity * gains[msg.channel]))
                # a muted note is a note-on of velocity 0 (a note-off) rather than absent, so
                # every delta time still adds up
                msg = msg.copy(velocity=v)
            tr.append(msg)
        out.tracks.append(tr)
    return out


def _labels(beats, downs, n_frames: int, sr: int) -> np.ndarray:
    """Per frame: 0 none, 1 beat, 2 downbeat, for the frame whose block the beat falls in
    (frame k covers samples (k * block, (k + 1) * block])."""
    lab = np.zeros(n_frames, np.int8)
    for times, cls in ((beats, 1), (downs, 2)):
        k = np.ceil(np.asarray(times) * sr / BLOCK).astype(int) - 1
        k = k[(k >= 0) & (k < n_frames)]
        lab[k] = cls
    return lab


def _render_one(job) -> str | None:
    name, midi_bytes, font, sr, factor, out_dir, offset, mix = job
    import io
    import mido
    import soundfile as sf
    out = Path(out_dir) / f"{name}-{font}-{sr}-{factor:.2f}{f'-mix{mix}' if mix else ''}.npz"
    if out.exists():
        return out.name
    mid = mido.MidiFile(file=io.BytesIO(midi_bytes))
    if factor != 1.0:
        mid = _scaled(mid, factor)
    if mix:
        mid = _remixed(mid, zlib.crc32(f"{name}-{mix}".encode()))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.mid"
        mid.save(str(p))
        w = bm.render(p, bm.SOUNDFONTS[font], Path(d) / "x.wav", sr=sr)
        y, got_sr = sf.read(str(w), dtype="float32", always_2d=True)
    beats, downs, bpb = bm.beat_grid(mid)
    return _save(out, y.mean(axis=1), got_sr, beats + offset, downs + offset, bpb)


def _save(out: Path, y: np.ndarray, sr: int, beats, downs, bpb) -> str | None:
    """A render's band magnitudes and frame labels, or None when it is silent."""
    peak = float(np.abs(y).max()) if len(y) else 0.0
    if peak <= 1e-4:
        return None
    y = y * (0.9 / peak)
    mags, freqs = band_magnitudes(y, sr, BLOCK)
    lab = _labels(beats, downs, len(mags), sr)
    np.savez_compressed(out, mags=mags.astype(np.float16), freqs=freqs, labels=lab, sr=sr, bpb=bpb or 0)
    return out.name


def _render_lmms(job) -> str | None:
    """One LMMS demo song at ``factor`` times its tempo; beats on its grid from 0."""
    path, factor, sr, out_dir = job
    import soundfile as sf
    path = Path(path)
    out = Path(out_dir) / f"lmms_{path.stem}-lmms-{sr}-{factor:.2f}.npz"
    if out.exists():
        return out.name
    info = lmms_songs.song_info(path)
    if info is None:
        return None
    bpm = info["bpm"] * factor
    with tempfile.TemporaryDirectory() as d:
        try:
            w = lmms_songs.render(path, Path(d) / "x.wav", bpm=bpm, sr=sr)
        except (RuntimeError, OSError) as e:
            print(f"{path.name}: {e}", flush=True)
            return None
        y, got_sr = sf.read(str(w), dtype="float32", always_2d=True)
    beats = np.arange(0.0, len(y) / got_sr, 60.0 / bpm)
    bpb = info["beats_per_bar"]
    downs = beats[::bpb] if bpb else np.zeros(0)
    return _save(out, y.mean(axis=1), got_sr, beats, downs, bpb)


def _corpus_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("beat_corpus", ROOT / "tools" / "beat_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cmd_data(args) -> None:
    corpus = _corpus_module()
    out_dir = Path(args.out)
    midi_dir = out_dir / "midi"
    midi_dir.mkdir(parents=True, exist_ok=True)
    tracks = corpus.freedoom_tracks(midi_dir, lambda msg: None)
    tune = [t for t in tracks if corpus.split_of(t["track"]) == "tune"]
    print(f"{len(tune)} of {len(tracks)} Freedoom tracks are in the tune split")
    offsets = {}
    ref_mid, _, _ = bm.hard_case("rock", 120.0, 1)
    for font in TRAIN_FONTS:
        o = bm.measure_offset(ref_mid, bm.SOUNDFONTS[font], midi_dir)
        offsets[font] = float(np.median(o)) if len(o) else 0.0
    jobs = []
    rnd = random.Random(7)
    for t in tune:
        b = (out_dir / t["midi"]).read_bytes()
        for font in TRAIN_FONTS:
            for factor in (1.0, rnd.uniform(0.88, 0.96), rnd.uniform(1.04, 1.12)):
                sr = 48000 if rnd.random() < 0.3 else 44100
                jobs.append((t["track"].replace("/", "_"), b, font, sr, round(factor, 2), str(out_dir),
                             offsets[font], 0))
    import io
    for cat in args.categories.split(","):
        for seed in HARD_SEEDS:
            bpm = rnd.uniform(80, 175) if cat != "waltz" else rnd.uniform(90, 180)
            mid, _, _ = bm.hard_case(cat, bpm, seed)
            buf = io.BytesIO()
            mid.save(file=buf)
            for font in TRAIN_FONTS:
                sr = 48000 if rnd.random() < 0.3 else 44100
                jobs.append((f"hard_{cat}_{seed}", buf.getvalue(), font, sr, 1.0, str(out_dir), offsets[font], 0))
    grooves = mma_grooves() if args.mma else []
    if args.mma and not grooves:
        print(f"no MMA grooves in {MMA_LIB} (apt-get install mma): none rendered")
    for i in range(args.mma if grooves else 0):
        groove = rnd.choice(grooves)
        bpm = math.exp(rnd.uniform(math.log(70), math.log(180)))
        song = mma_song(groove, bpm, rnd.choice(PROGRESSIONS), rnd.choice((16, 24, 32)))
        if song is None:
            continue
        font = TRAIN_FONTS[i % len(TRAIN_FONTS)]
        sr = 48000 if rnd.random() < 0.3 else 44100
        jobs.append((f"mma_{i:03d}_{groove}", song, font, sr, 1.0, str(out_dir), offsets[font], 0))
    # remixes come from their own random stream, so the renders above keep their names
    mix_rnd = random.Random(11)
    for t in tune:
        b = (out_dir / t["midi"]).read_bytes()
        for mix in range(1, args.remix + 1):
            font = mix_rnd.choice(TRAIN_FONTS)
            sr = 48000 if mix_rnd.random() < 0.3 else 44100
            jobs.append((t["track"].replace("/", "_"), b, font, sr, round(mix_rnd.uniform(0.9, 1.1), 2),
                         str(out_dir), offsets[font], mix))
    lmms_jobs = []
    if args.lmms:
        songs = [p for p in lmms_songs.songs() if (lmms_songs.song_info(p) or {}).get("trainable")]
        print(f"{len(songs)} LMMS demo songs with a licence that lets them train (the corpus's lmms tune split)")
        for p in songs:
            for factor in (1.0, rnd.uniform(0.88, 0.96), rnd.uniform(1.04, 1.12)):
                lmms_jobs.append((str(p), round(factor, 2), 48000 if rnd.random() < 0.3 else 44100, str(out_dir)))
    t0 = time.time()
    with ProcessPoolExecutor(args.jobs) as ex:
        done = [r for r in ex.map(_render_one, jobs) if r]
        done += [r for r in ex.map(_render_lmms, lmms_jobs) if r]
    print(f"{len(done)} training renders in {time.time() - t0:.0f} s -> {out_dir} (render offsets {offsets})")
    (out_dir / "tracks.json").write_text(json.dumps(
        {"tune_tracks": [t["track"] for t in tune], "renders": done, "offsets": offsets}, indent=1))


# ------------------------------------------------------------------------------ training

def _load(data_dir: Path):
    items = []
    for p in sorted(data_dir.glob("*.npz")):
        with np.load(p) as z:
            items.append((p.stem, z["mags"].astype(np.float32), z["freqs"], z["labels"].astype(np.int64)))
    return items


def _eq(G: np.ndarray, rng, db: float) -> np.ndarray:
    """A random smooth equaliser over the analyser's bands (up to +-``db``): five gains at
    even steps of the groups, interpolated, so no one mix's spectrum is all the network knows."""
    k = G.shape[1]
    anchors = rng.uniform(-db, db, 5)
    per_group = np.interp(np.arange(k), np.linspace(0, k - 1, 5), anchors)
    # each band takes the gain of the group it feeds most
    per_band = per_group[np.argmax(G, axis=1)]
    return 10 ** (per_band / 20)


def cmd_train(args) -> None:
    import torch
    from torch import nn
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    torch.set_num_threads(args.threads)
    items = _load(Path(args.data))
    # the network's inputs: pooled log bands and their rise, per sample rate's bands
    groups = {}
    prepared = []
    for name, mags, freqs, lab in items:
        key = tuple(np.round(freqs).astype(int))
        if key not in groups:
            groups[key] = group_matrix(freqs)
        prepared.append((name, mags, groups[key], lab))
    val_names = {n for n in {p[0].split("-")[0] for p in prepared} if zlib.crc32(n.encode()) % 10 == 0}
    train = [p for p in prepared if p[0].split("-")[0] not in val_names]
    val = [p for p in prepared if p[0].split("-")[0] in val_names] or prepared[:2]

    def feats(mags, G, gain):
        g = np.log1p(LOG_GAMMA * gain * mags) @ G
        d = np.maximum(np.diff(g, axis=0, prepend=g[:1]), 0.0)
        return np.concatenate([g, d], axis=1)

    sample = np.concatenate([feats(m, G, 1.0)[::7] for _, m, G, _ in train[:40]])
    mean, std = sample.mean(axis=0), sample.std(axis=0) + 1e-3
    n_in = sample.shape[1]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(n_in, args.dense)
            self.gru = nn.GRU(args.dense, args.hidden, batch_first=True)
            self.out = nn.Linear(args.hidden, 3)

        def forward(self, x):
            h, _ = self.gru(torch.tanh(self.dense(x)))
            return self.out(h)

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    weight = torch.tensor([1.0, args.beat_weight, args.beat_weight * 1.5])
    L = args.crop

    def batch(pool, n):
        xs, ys = [], []
        for _ in range(n):
            _, m, G, lab = pool[rng.integers(len(pool))]
            if len(m) <= L + 1:
                continue
            a = int(rng.integers(0, len(m) - L))
            gain = 10 ** (rng.uniform(-24, 0) / 20)
            if args.eq_db > 0:
                gain = gain * _eq(G, rng, args.eq_db)
            xs.append((feats(m[a:a + L], G, gain) - mean) / std)
            ys.append(lab[a:a + L])
        return torch.tensor(np.stack(xs), dtype=torch.float32), torch.tensor(np.stack(ys))

    def soft_loss(logits, y):
        # the labelled frame and, at half weight, the frame after it (a beat near the
        # end of a block shows in the next block's spectrum too)
        logp = torch.log_softmax(logits, -1)
        prev = torch.zeros_like(y)
        prev[:, 1:] = y[:, :-1]
        one = torch.nn.functional.one_hot(y, 3).float()
        spill = ((y == 0) & (prev > 0)).unsqueeze(-1)
        target = torch.where(spill, 0.5 * one + 0.5 * torch.nn.functional.one_hot(prev, 3).float(), one)
        return -(target * logp * weight).sum(-1).mean()

    t0 = time.time()
    steps = args.steps
    vx, vy = batch(val, 16)
    best = (math.inf, None)
    for step in range(1, steps + 1):
        x, y = batch(train, args.batch)
        loss = soft_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if step == int(steps * 0.7):
            for g in opt.param_groups:
                g["lr"] *= 0.3
        if step % 50 == 0 or step == steps:
            with torch.no_grad():
                vl = float(soft_loss(net(vx), vy))
            print(f"step {step}/{steps} loss {float(loss):.4f} val {vl:.4f} ({time.time() - t0:.0f} s)", flush=True)
            if vl < best[0]:
                best = (vl, {k: v.detach().clone() for k, v in net.state_dict().items()})
        if args.every and step % args.every == 0:
            # to choose a step on the tune split's music rather than on the validation loss
            _write(Path(args.out).with_name(f"{Path(args.out).stem}.step{step}.npz"), net.state_dict(), mean, std)
    out = _write(Path(args.out), best[1] or net.state_dict(), mean, std)
    n_params = sum(v.size for k, v in out.items() if k not in ("mean", "std"))
    print(f"wrote {args.out}: {n_params} weights, best val loss {best[0]:.4f}, {len(train)} renders, "
          f"{sum(len(p[1]) for p in train)} frames, {time.time() - t0:.0f} s")


def _write(path: Path, state, mean, std) -> dict:
    """A network's weights and its feature normalisation, written whole or not at all."""
    out = {k: v.detach().numpy().astype(np.float32) for k, v in state.items()}
    out["mean"], out["std"] = mean.astype(np.float32), std.astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data")
    d.add_argument("--out", default="build/beat_train")
    d.add_argument("--jobs", type=int, default=2)
    d.add_argument("--categories", default=",".join(TRAIN_CATEGORIES),
                   help="the hard-case categories rendered (tests/beat_material.py: CATEGORIES)")
    d.add_argument("--mma", type=int, default=0, metavar="N",
                   help="N songs of MMA's grooves (Debian package mma) besides the corpus's tune split")
    d.add_argument("--lmms", action="store_true",
                   help="also LMMS's demo songs whose licence lets them train (tools/lmms_songs.py)")
    d.add_argument("--remix", type=int, default=0, metavar="N",
                   help="N more renders of each tune track with its channels rebalanced and some muted")
    t = sub.add_parser("train")
    t.add_argument("--data", default="build/beat_train")
    t.add_argument("--out", default="engine/signals/beat_net.npz")
    t.add_argument("--steps", type=int, default=1500)
    t.add_argument("--batch", type=int, default=24)
    t.add_argument("--crop", type=int, default=860)
    t.add_argument("--dense", type=int, default=32)
    t.add_argument("--hidden", type=int, default=48)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--beat-weight", type=float, default=6.0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--every", type=int, default=0, metavar="STEPS",
                   help="also write the network every STEPS steps (OUT.stepN.npz), besides the best by validation loss")
    t.add_argument("--eq-db", type=float, default=0.0,
                   help="a random smooth equaliser of up to +-N dB on each crop (0: none)")
    args = ap.parse_args(argv)
    {"data": cmd_data, "train": cmd_train}[args.cmd](args)


if __name__ == "__main__":
    main()
