"""vj: the command line. This module only parses and dispatches: each command is a module
of ``engine/commands/``, a thin layer over a Session (``engine/session.py``).

    vj run [PATCH] [--headless] [--record OUT.mp4] ...   live, paced to the wall clock (--hands leap ...)
    vj render --audio FILE --patch PATCH --out OUT.mp4   offline, frame-exact with the audio (--start/--duration: a part)
    vj bench                                             frames per second, whole loop and generator
    vj models [list | info FILE]                         the model registry, one model
    vj models convert IN OUT.safetensors [--overwrite]   a safe, fast-loading copy of a model
    vj models sample FILE --z Z.npy --out OUT.npy        raw images for given latents
    vj models random ARCH --out FILE.safetensors         random weights, official layout: benchmarks
    vj models get NAME [--accept-licence] | --list       a pretrained model: download, verify, convert, register
    vj analyze FILE --out features.csv [--offline]       what the engine hears (CSV, --plot PNG)
    vj devices                                           audio devices and monitors
    vj doctor                                            what works on this machine
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from engine.limits import (BPM, CUTOFF, FPS, FRAMES, MONITOR, PORT, PSI, RATE, SEED, SOAK_MINUTES, WORKERS, block_size,
                           parse_size)
from engine.memory import limit_malloc_arenas
from engine.session import DEFAULT_SIZE, ControlOptions


def hand_source(spec: str) -> str:
    """``--hands``: checked here, at the edge (engine/signals/hand_sources.py)."""
    from engine.signals.hand_sources import parse
    try:
        parse(spec)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return spec


def hands_box(text: str) -> dict:
    from engine.signals.hand_sources import parse_box
    try:
        return parse_box(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="vj: %(message)s", stream=sys.stderr, force=True)


def add_control_arguments(r) -> None:
    """The control plane's flags on the `vj run` parser."""
    g = r.add_argument_group("control: OSC, OSCQuery, MIDI (docs/patches.md, README)")
    g.add_argument("--osc-port", type=PORT, default=ControlOptions.osc_port, metavar="P", help="OSC in, UDP (default 9000)")
    g.add_argument("--osc-bind", default="127.0.0.1", metavar="ADDR",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for the LAN)")
    g.add_argument("--osc-allow", action="append", default=[], metavar="ADDR[,ADDR]",
                   help="accept OSC only from these sender addresses")
    g.add_argument("--no-osc", action="store_true", help="no OSC in (nor OSCQuery)")
    g.add_argument("--oscquery-port", type=PORT, default=ControlOptions.oscquery_port, metavar="Q",
                   help="OSCQuery HTTP + WebSocket (default 9001)")
    g.add_argument("--no-oscquery", action="store_true")
    g.add_argument("--oscquery-origin", action="append", default=[], metavar="ORIGIN",
                   help="let web pages from this origin (e.g. http://localhost:8080) use the OSCQuery "
                        "WebSocket; repeatable (default: none: browsers are refused)")
    g.add_argument("--osc-out", action="append", default=[], metavar="HOST:PORT",
                   help="send state (tempo, beat, audio, parameters) here; repeatable")
    g.add_argument("--osc-out-rate", type=RATE, metavar="HZ", help="state updates per second (default: every frame)")
    g.add_argument("--osc-out-bundle", action="store_true", help="one bundle per frame")
    g.add_argument("--midi-in", action="append", default=[], metavar="NAME",
                   help="MIDI inputs whose name contains NAME (default: all); repeatable")
    g.add_argument("--no-midi", action="store_true")
    g.add_argument("--mappings", metavar="FILE", help="mappings file (default: beside the set or patch, NAME.mappings.toml)")
    g.add_argument("--learn", metavar="PARAM", help="arm MIDI/OSC learn for this parameter at start")
    g.add_argument("--record-dir", default="recordings", metavar="DIR", help="where /vj/record/start writes (default recordings/)")


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vj", description="Real-time GAN visuals driven by live signals.")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p, size=DEFAULT_SIZE):
        p.add_argument("--model", help="registry name or model file (default: the registry's default)")
        from_set = "" if size else ", or the set list's"
        p.add_argument("--size", type=parse_size, default=size,
                       help=f"output WxH (default {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}{from_set})")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
        p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16"])
        p.add_argument("--display-path", default="auto", choices=["auto", "pbo", "cuda-gl", "pinned"],
                       help="how the generator's image reaches OpenGL: auto (CUDA-GL interop on a GPU, "
                            "else a pixel-buffer upload), pbo, cuda-gl, pinned (CUDA: pinned host buffer)")

    r = sub.add_parser("run", help="run live (window, or --headless)")
    r.add_argument("patch", nargs="?", metavar="PATCH_OR_SET",
                   help="patch file, or set list (.toml) (default patches/drift.py)")
    common(r, size=None)
    r.add_argument("--headless", action="store_true", help="no window (EGL)")
    r.add_argument("--frames", type=FRAMES, help="stop after N frames")
    r.add_argument("--record", help="record the output to this .mp4 (NAME-2.mp4 ... if it exists)")
    r.add_argument("--overwrite", action="store_true", help="--record may replace an existing file")
    r.add_argument("--fps", type=FPS, help="target frame rate (default 30, or the set's)")
    r.add_argument("--bpm", type=BPM, help="starting tempo (default 120, or the set's)")
    r.add_argument("--audio", help="play and analyse this audio file")
    r.add_argument("--loop-audio", action="store_true")
    r.add_argument("--mute", action="store_true", help="analyse --audio without playing it")
    r.add_argument("--audio-in", nargs="?", const="", help="analyse live input (device name or index)")
    r.add_argument("--block", type=block_size, default=512, help="audio analysis block in samples (default 512)")
    r.add_argument("--follow-audio-tempo", action="store_true",
                   help="the clock (s.bpm, s.beat) follows the tempo and beat heard in the audio")
    r.add_argument("--link", action="store_true",
                   help="join the Ableton Link session on the LAN: share tempo and beat phase with Live, "
                        "Resolume, other engines (needs the [link] extra)")
    r.add_argument("--monitor", type=MONITOR, default=0, help="window on this monitor (`vj devices`)")
    r.add_argument("--fullscreen", action="store_true")
    r.add_argument("--no-vsync", action="store_true")
    r.add_argument("--hands", action="append", default=[], type=hand_source, metavar="SOURCE",
                   help="hand tracking: leap[:URL] (Leap WebSocket v6), osc[:PORT[:PRESET]] (presets vj, "
                        "touchdesigner, mediapipe; port 9002), replay:FILE (a --record-hands file); repeatable")
    r.add_argument("--record-hands", metavar="FILE", help="also record the hand frames to FILE (replay:FILE plays it)")
    r.add_argument("--hands-box", type=hands_box, metavar="CX,CY,CZ,W,H,D",
                   help="the interaction box in mm that palm positions are normalised in, over the sensor's "
                        "(default: the sensor's, else 0,200,0,235,235,147)")
    r.add_argument("--no-pipeline", action="store_true",
                   help="the serial frame: generate, then shade, then present (for comparison and debugging)")
    r.add_argument("--state", metavar="DIR",
                   help="where bookmarks, the scene and parameter values are kept between runs "
                        "(default $VJ_STATE, $XDG_STATE_HOME/vj or ~/.local/state/vj)")
    r.add_argument("--no-state", action="store_true", help="start as the set or patch says, keep nothing")
    r.add_argument("--record-signals", metavar="FILE",
                   help="record every input the show consumed (a .vjsig.gz) for `vj render --signals FILE`")
    add_control_arguments(r)
    r

    d = sub.add_parser("render", help="render offline, frame-exact with an audio file, or a recorded show")
    d.add_argument("--audio", help="the soundtrack the patch hears (required unless --signals)")
    d.add_argument("--patch", help="the patch (required unless --signals)")
    d.add_argument("--signals", metavar="FILE",
                   help="replay a show recorded with `vj run --record-signals FILE` (its patch or set, its inputs)")
    d.add_argument("--trust", action="store_true",
                   help="--signals: run the patch code recorded in FILE even where it differs from the files on disk")
    d.add_argument("--out", required=True, help="the .mp4 to write (NAME-2.mp4 ... if it exists)")
    d.add_argument("--overwrite", action="store_true", help="--out may replace an existing file")
    d.add_argument("--start", type=float, metavar="SECONDS",
                   help="render part of the song from here (on the frame grid; the sound is cut to match)")
    d.add_argument("--duration", type=float, metavar="SECONDS", help="render this much of the song (default: to its end)")
    common(d)
    d.add_argument("--fps", type=FPS, help="frames per second (default 30, or the recording's)")
    d.add_argument("--bpm", type=BPM, default=120.0)
    d.add_argument("--follow-audio-tempo", action="store_true",
                   help="the clock (s.bpm, s.beat) follows the tempo and beats found in the audio")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.add_argument("--no-pipeline", action="store_true", help="the serial frame (same pixels, slower)")
    d.add_argument("--lossless", action="store_true",
                   help="encode losslessly (x264 qp 0): a master to grade later; many times larger")
    d.add_argument("--workers", type=WORKERS, metavar="N",
                   help="split the render over N local Ray workers (the [cluster] extra); stopped renders resume")
    d.add_argument("--ray", metavar="ADDRESS",
                   help="render on an existing Ray cluster (an address, or auto); workers: one per GPU, or CPU share")
    d

    b = sub.add_parser("bench", help="frames per second of the whole loop and of the generator")
    common(b)
    b.add_argument("--frames", type=FRAMES, help="frames per figure (default 200; 100 with --generator-only)")
    b.add_argument("--generator-only", action="store_true",
                   help="the generator alone at batch 1 and 4: fp32, and on CUDA fp16 and fp16 + CUDA graph")
    b.add_argument("--compile", action="store_true", help="--generator-only: also time torch.compile")
    b.add_argument("--patch", help="patch for the whole-loop figure (default patches/drift.py)")
    b.add_argument("--json", help="also write the figures to this JSON file")
    b.add_argument("--audio", nargs="?", const="", metavar="FILE",
                   help="instead: the live audio analysis's cost per block, with and without the beat tracker, "
                        "over FILE (default: 30 s of a synthesised drum pattern)")
    b.add_argument("--hands", action="append", default=[], type=hand_source, metavar="SOURCE",
                   help="also measure hand-to-frame latency from this hand source (e.g. replay:FILE)")
    b.add_argument("--soak", type=SOAK_MINUTES, metavar="MINUTES",
                   help="instead: run the engine headless for MINUTES while a fault injector in another process "
                        "does what a bad night does; report frame gaps, memory and what survived")
    b.add_argument("--soak-dir", metavar="DIR", help="--soak: work folder (default: a new temporary one)")
    b.add_argument("--soak-seed", type=SEED, default=1, help="--soak: seed of the fault schedule")
    b.add_argument("--soak-faults", metavar="KIND[,KIND]", help="--soak: only these faults (default: all of them)")
    b

    from engine.generators.random_models import MAX_CHANNEL_DIVISOR, arch_help  # stdlib only: no torch at parse time
    from engine.limits import Number
    m = sub.add_parser("models", help="list the registry; describe, convert or sample a model; make a random one; "
                                      "get a pretrained one",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="vj models random ARCH --out FILE.safetensors [--resolution N] [--preset NAME] "
                              "[--seed S] [--overwrite]\n"
                              "writes a generator with RANDOM weights (not a trained model) in the official "
                              "layout,\nfor real-size benchmarks without downloads. ARCH:\n" + arch_help() +
                              "\n\nvj models get NAME [--dest DIR] [--accept-licence] [--url MIRROR]   (vj models get --list)\n"
                              "downloads a pretrained model from the catalogue (resumable), checks its sha256, converts it\n"
                              "to safetensors without running code from it, and registers it in models/models.toml")
    m.add_argument("action", nargs="?", default="list", choices=["list", "info", "convert", "sample", "random", "get"])
    m.add_argument("file", nargs="?", help="registry name or model file (random: the ARCH; get: a catalogue NAME)")
    m.add_argument("dest", nargs="?", help="convert: the OUT.safetensors to write")
    m.add_argument("--z", help="sample: latents [N, z_dim] (.npy)")
    m.add_argument("--ws", help="sample: per-layer styles [N, num_ws, w_dim] (.npy), instead of --z")
    m.add_argument("--c", help="sample: class vectors [N, c_dim] (.npy), conditional models")
    m.add_argument("--psi", type=PSI, default=1.0, help="sample: truncation (default 1)")
    m.add_argument("--cutoff", type=CUTOFF, help="sample: truncate only the first N layers")
    m.add_argument("--noise", default="const", choices=["const", "random", "none"])
    m.add_argument("--seed", type=SEED, help="sample: seed for --noise random; random: seed of the weights (default 0)")
    m.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    m.add_argument("--device", default="cpu")
    m.add_argument("--out", help="sample: where to write the NCHW float32 images (.npy); random: the .safetensors")
    m.add_argument("--resolution", type=Number(1, 8192, integer=True), metavar="N",
                   help="random: image size (default: the ARCH's, see below)")
    m.add_argument("--preset", metavar="NAME", help="random: stylegan2 f; stylegan3 t or r")
    m.add_argument("--channel-divisor", type=Number(1, MAX_CHANNEL_DIVISOR, integer=True), default=1, metavar="N",
                   help="random: divide the channel widths by N (a power of two): a small stand-in with the "
                        "same layer names, for tests; not a real-size benchmark")
    m.add_argument("--overwrite", action="store_true",
                   help="random: --out may replace an existing file; convert: OUT may")
    m.add_argument("--list", action="store_true", help="get: list the catalogue of pretrained models")
    m.add_argument("--dest", dest="dest_dir", metavar="DIR", help="get: where the model goes (default: models/)")
    m.add_argument("--accept-licence", action="store_true",
                   help="get: accept the model's licence (required for non-commercial licences)")
    m.add_argument("--url", metavar="URL", help="get: download from this mirror instead (same sha256)")
    m.add_argument("--catalogue", metavar="FILE", help="get: another catalogue file (default: the built-in one; "
                                                       "or VJ_CATALOGUE)")
    m

    a = sub.add_parser("analyze", help="what the engine hears in an audio file: features as CSV and a plot")
    a.add_argument("file")
    a.add_argument("--out", help="write the features here (CSV: one row per block, or per frame with --offline)")
    a.add_argument("--plot", help="draw the features over the waveform into this PNG")
    a.add_argument("--offline", action="store_true", help="the offline features of vj render, one row per frame")
    a.add_argument("--fps", type=FPS, default=30.0, help="frame rate of --offline (default 30)")
    a.add_argument("--block", type=block_size, default=512, help="real-time block in samples (default 512)")
    a

    sub.add_parser("devices", help="audio devices and monitors")
    sub.add_parser("doctor", help="check what works on this machine")
    return ap


def main(argv=None) -> int:
    limit_malloc_arenas()  # before the threads start: a long show's memory stays flat
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    if args.command == "models" and args.action not in ("list", "get") and not args.file:
        what = "an ARCH (stylegan2, stylegan3, biggan-deep, dcgan)" if args.action == "random" else \
            "a FILE or registry name"
        print(f"vj: models {args.action} needs {what}", file=sys.stderr)
        return 2
    # `models get` has its own module: commands import no other command (tests/test_boundaries.py)
    name = "model_get" if args.command == "models" and args.action == "get" else args.command
    module = importlib.import_module(f"engine.commands.{name}")
    return module.main(args) or 0


if __name__ == "__main__":
    raise SystemExit(main())
