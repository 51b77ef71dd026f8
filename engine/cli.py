"""vj: the command line.

    vj run [PATCH] [--headless] [--record OUT.mp4] ...   live, paced to the wall clock
    vj render --audio FILE --patch PATCH --out OUT.mp4   offline, frame-exact with the audio
    vj bench                                             frames per second, whole loop and generator
    vj models [list | info FILE]                         the model registry, one model
    vj models convert IN OUT.safetensors                 a safe, fast-loading copy of a model
    vj models sample FILE --z Z.npy --out OUT.npy        raw images for given latents
    vj analyze FILE --out features.csv [--offline]       what the engine hears (CSV, --plot PNG)
    vj devices                                           audio devices and monitors
    vj doctor                                            what works on this machine
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

from engine import paths

log = logging.getLogger("vj")

DEFAULT_SIZE = (1280, 720)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1280x720, got {text!r}")
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"size {w}x{h} is out of range 16..8192")
    return w, h


def positive_float(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return v


def block_size(text: str) -> int:
    v = int(text)
    if not 32 <= v <= 16384:
        raise argparse.ArgumentTypeError("must be 32..16384 samples")
    return v


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="vj: %(message)s", stream=sys.stderr, force=True)


def _terminate_gracefully() -> None:
    # SIGTERM (a service manager, `kill`) unwinds like Ctrl-C so recordings are closed.
    # Ctrl-C itself is restored too: a shell starting us in the background sets it to ignored.
    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def resolve_patch(spec: str | None) -> Path:
    if spec is None:
        return paths.PATCHES / "drift.py"
    p = Path(spec)
    for candidate in (p, paths.PATCHES / p, paths.PATCHES / f"{spec}.py"):
        if candidate.is_file():
            return candidate.resolve()
    raise SystemExit(f"vj: patch not found: {spec}")


def load_model(spec: str | None):
    from engine.generators.load import ModelLoadError, load_generator
    try:
        return load_generator(spec)
    except ModelLoadError as e:
        if spec is None:
            raise SystemExit(f"vj: the default model cannot be loaded: {e}")
        log.error("model %s cannot be loaded: %s", spec, e)
        log.error("falling back to the default model so the show goes on")
        try:
            return load_generator(None)
        except ModelLoadError as e2:
            raise SystemExit(f"vj: the default model cannot be loaded either: {e2}")


def build_engine(args, *, ctx, clock, fps, recorder=None, window=None, patch_path=None):
    from engine.patching.loader import PatchHost
    from engine.render.gl import describe
    from engine.render.gpu import GeneratorRunner, share_cores_with_gl
    from engine.render.loop import Engine
    from engine.render.post import ShaderChain
    from engine.signals.bus import SignalBus

    runner = GeneratorRunner(load_model(args.model), device=getattr(args, "device", None),
                             precision=getattr(args, "precision", "auto"))
    share_cores_with_gl(describe(ctx), runner.device)
    patches = PatchHost(patch_path or resolve_patch(getattr(args, "patch", None)), runner.info)
    patches.load()
    chain = ShaderChain(ctx, args.size)
    hud = None
    if window is not None:
        from engine.render.hud import HudText
        hud = HudText()
    return Engine(runner, patches, chain, SignalBus(), clock, fps=fps, recorder=recorder,
                  window=window, hud=hud)


# ---------------------------------------------------------------- run
def apply_set(args):
    """``vj run SET.toml``: the set's first scene is the patch, and the set's bpm, fps,
    size and model apply where the command line leaves them unset."""
    from engine.show.sets import SetError, SetList
    setlist = None
    if args.patch and args.patch.endswith(".toml"):
        try:
            setlist = SetList(args.patch)
        except SetError as e:
            raise SystemExit(f"vj: set list: {e}")
        args.patch = str(setlist.scene.patch)
        opts = setlist.options
        if args.size is None and "size" in opts:
            args.size = parse_size(str(opts["size"]))
        args.model = args.model or opts.get("model")
        args.fps = args.fps or opts.get("fps")
        args.bpm = args.bpm or opts.get("bpm")
    args.size = args.size or DEFAULT_SIZE
    args.fps = float(args.fps or 30.0)
    args.bpm = float(args.bpm or 120.0)
    return setlist


def cmd_run(args) -> int:
    from engine.outputs.recorder import Recorder, RecorderError
    from engine.render.gl import GLError, describe, headless_context
    from engine.signals.clock import LiveClock

    setlist = apply_set(args)
    _terminate_gracefully()
    window = None
    try:
        if args.headless:
            ctx = headless_context()
        else:
            from engine.render.display import Window
            window = Window(args.size, title="vj", monitor=args.monitor, fullscreen=args.fullscreen,
                            vsync=not args.no_vsync)
            ctx = window.ctx
    except GLError as e:
        log.error("%s", e)
        return 2
    log.info("OpenGL: %s", describe(ctx))
    recorder = None
    if args.record:
        # a live file soundtrack starts with the frames, so it goes into the recording too
        soundtrack = args.audio if args.audio and not args.loop_audio else None
        try:
            try:
                recorder = Recorder(args.record, *args.size, args.fps, audio=soundtrack)
            except RecorderError as e:
                if soundtrack is None:
                    raise
                log.error("recording without sound: %s", e)
                recorder = Recorder(args.record, *args.size, args.fps)
        except RecorderError as e:
            log.error("cannot record: %s", e)
            return 2
    sources = []
    rig = None
    try:
        engine = build_engine(args, ctx=ctx, clock=LiveClock(bpm=args.bpm), fps=args.fps,
                              recorder=recorder, window=window)
        engine.setlist = setlist
        engine.follow_tempo = args.follow_audio_tempo
        engine.patches.start_watching()
        from engine.rig import start_rig  # OSC in/out, OSCQuery, MIDI, mappings (engine/rig.py)
        rig = start_rig(args, engine, setlist)
        log.info("model %s on %s (%s), patch %s, %dx%d at %g fps%s", engine.runner.info.name,
                 engine.runner.device, engine.runner.precision, engine.patches.path.name,
                 *args.size, args.fps, f", recording to {args.record}" if args.record else "")
        sources = start_audio(args, engine.bus)
        engine.run_live(frames=args.frames)
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        for s in sources:
            s.stop()
        if rig is not None:
            rig.stop()
        if recorder is not None:
            recorder.close()
            log.info("recording closed: %s (%d frames)", args.record, recorder.frames_written)
        if window is not None:
            window.close()
    return 0


def start_audio(args, bus) -> list:
    """Audio sources for a live run. Any failure is reported and the show runs on silence."""
    from engine.signals import audio
    sources = []
    if args.audio:
        try:
            sources.append(audio.FileSource(bus, args.audio, block=args.block, loop=args.loop_audio,
                                            play=not args.mute).start())
        except Exception as e:  # noqa: BLE001 - missing or undecodable file
            log.error("audio file %s not played, running on silence: %s", args.audio, e)
    if args.audio_in is not None:
        dev = args.audio_in
        dev = int(dev) if isinstance(dev, str) and dev.isdigit() else (dev or None)
        sources.append(audio.InputSource(bus, device=dev, block=args.block).start())
    return sources


# ---------------------------------------------------------------- render
def cmd_render(args) -> int:
    from tqdm import tqdm

    from engine.outputs.recorder import Recorder, RecorderError
    from engine.render.gl import GLError, headless_context
    from engine.signals import audio, offline
    from engine.signals.clock import VirtualClock

    _terminate_gracefully()
    try:
        y, sr = audio.load_audio(args.audio)
    except Exception as e:  # noqa: BLE001 - a clear message for any unreadable file
        log.error("cannot read audio %s: %s", args.audio, e)
        return 2
    duration = len(y) / sr
    n_frames = max(1, int(round(duration * args.fps)))
    log.info("analysing %s (%.2f s, %d Hz) for %d frames at %g fps", args.audio, duration, sr, n_frames, args.fps)
    features = offline.offline_features(y, sr, args.fps, n_frames)
    try:
        ctx = headless_context()
    except GLError as e:
        log.error("%s", e)
        return 2
    engine = build_engine(args, ctx=ctx, clock=VirtualClock(args.fps, bpm=args.bpm), fps=args.fps,
                          patch_path=resolve_patch(args.patch))
    if not engine.patches.ready:
        log.error("the patch does not load, nothing to render: %s", engine.patches.last_error)
        return 1
    feed = offline.FrameFeed(features)
    engine.follow_tempo = args.follow_audio_tempo

    def before_frame(k: int) -> None:
        feed(engine.bus, k, k / args.fps)

    try:
        engine.recorder = Recorder(args.out, *args.size, args.fps, audio=args.audio)
    except RecorderError as e:
        log.error("cannot write %s: %s", args.out, e)
        return 2
    t0 = time.perf_counter()
    try:
        with tqdm(total=n_frames, unit="frame", desc="render", disable=args.quiet) as bar:
            engine.run_offline(n_frames, before_frame=before_frame, progress=bar)
    except KeyboardInterrupt:
        log.info("stopped; the video so far is in %s", args.out)
    finally:
        engine.recorder.close()
    took = time.perf_counter() - t0
    log.info("wrote %s: %d frames in %.1f s (%.1f fps)", args.out, engine.recorder.frames_written, took,
             engine.recorder.frames_written / max(took, 1e-9))
    return 0


# ---------------------------------------------------------------- analyze
def cmd_analyze(args) -> int:
    from engine.signals import analyze
    from engine.signals.audio import AudioError
    if not args.out and not args.plot:
        log.error("nothing to write: give --out FILE.csv and/or --plot FILE.png")
        return 2
    try:
        analyze.run(args.file, out=args.out, plot_path=args.plot, offline=args.offline, fps=args.fps,
                    block=args.block)
    except AudioError as e:
        log.error("%s", e)
        return 2
    return 0


# ---------------------------------------------------------------- bench
def cmd_bench(args) -> int:
    from engine.render.bench import run_bench, run_generator_bench
    if args.generator_only:
        result = run_generator_bench(model=args.model, device=args.device, frames=args.frames or 100,
                                     compile=args.compile)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        return 0
    result = run_bench(model=args.model, size=args.size, frames=args.frames or 200, patch=resolve_patch(args.patch),
                       device=args.device, precision=args.precision)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


# ---------------------------------------------------------------- models, devices, doctor
def cmd_models(args) -> int:
    from engine.generators.registry import Registry
    reg = Registry()
    if args.action == "info":
        from engine.generators.tools import main_info
        return main_info(args.file)
    if args.action in ("convert", "sample"):
        return models_tool(args)
    print(f"registry: {reg.path}")
    for name, e in reg.entries.items():
        mark = "*" if name == reg.default else " "
        state = "" if e.file.exists() else "  (file missing)"
        print(f"{mark} {name:16s} {e.architecture or '?':10s} {e.file.name}{state}")
        if e.description:
            print(f"  {'':16s} {e.description}")
        if e.licence:
            print(f"  {'':16s} licence: {e.licence}")
    print("* = default (set `default` in models.toml)")
    return 0


def models_tool(args) -> int:
    """``vj models convert IN OUT.safetensors`` and ``vj models sample FILE --z Z.npy --out OUT.npy``."""
    from engine.generators import tools
    from engine.generators.load import ModelLoadError
    try:
        if args.action == "convert":
            if not args.dest:
                print("vj: models convert needs IN and OUT.safetensors", file=sys.stderr)
                return 2
            config = tools.convert(args.file, args.dest)
            print(f"wrote {args.dest} ({config['architecture']})")
        else:
            if not args.out:
                print("vj: models sample needs --out OUT.npy", file=sys.stderr)
                return 2
            imgs = tools.sample(args.file, args.out, z=args.z, ws=args.ws, c=args.c, psi=args.psi,
                                cutoff=args.cutoff, noise=args.noise, precision=args.precision,
                                device=args.device, seed=args.seed)
            print(f"wrote {args.out} {list(imgs.shape)} float32")
    except (ModelLoadError, ValueError) as e:
        print(f"vj: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_devices(args) -> int:
    from engine.signals import audio
    devs = audio.list_devices()
    print("audio devices:" if devs else "audio devices: none found (PortAudio missing or no sound hardware)")
    for d in devs:
        print(f"  [{d.get('index')}] {d.get('name')}  in {d.get('max_input_channels', 0)}  "
              f"out {d.get('max_output_channels', 0)}")
    try:
        import glfw
        if glfw.init():
            mons = glfw.get_monitors() or []
            print("monitors:" if mons else "monitors: none (no display)")
            for i, m in enumerate(mons):
                mode = glfw.get_video_mode(m)
                print(f"  [{i}] {glfw.get_monitor_name(m).decode(errors='replace')} "
                      f"{mode.size.width}x{mode.size.height} @ {mode.refresh_rate} Hz")
            glfw.terminate()
        else:
            print("monitors: none (no display)")
    except Exception as e:  # noqa: BLE001
        print(f"monitors: unavailable ({e})")
    return 0


def cmd_doctor(args) -> int:
    import platform

    import torch
    ok = True
    print(f"python     {platform.python_version()} on {platform.machine()}")
    print(f"torch      {torch.__version__}, CUDA {'available: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'not available (CPU fp32)'}")
    try:
        from engine.render.gl import describe, headless_context
        ctx = headless_context()
        print(f"opengl     {describe(ctx)} (headless EGL)")
        ctx.release()
    except Exception as e:  # noqa: BLE001
        ok = False
        print(f"opengl     FAILED: {e}")
    try:
        import av
        print(f"video      PyAV {av.__version__}, libx264 {'yes' if 'libx264' in av.codecs_available else 'NO'}")
    except Exception as e:  # noqa: BLE001
        ok = False
        print(f"video      FAILED: {e}")
    from engine.signals import audio
    print(f"audio      {len(audio.list_devices())} devices")
    try:
        g = load_model(None)
        print(f"model      default {g.info.name} loads ({g.parameter_count():,} parameters)")
    except SystemExit as e:
        ok = False
        print(f"model      FAILED: {e}")
    from engine.rig import doctor_lines
    rig_ok, lines = doctor_lines()
    for line in lines:
        print(line)
    return 0 if ok and rig_ok else 1


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

    r = sub.add_parser("run", help="run live (window, or --headless)")
    r.add_argument("patch", nargs="?", metavar="PATCH_OR_SET",
                   help="patch file, or set list (.toml) (default patches/drift.py)")
    common(r, size=None)
    r.add_argument("--headless", action="store_true", help="no window (EGL)")
    r.add_argument("--frames", type=int, help="stop after N frames")
    r.add_argument("--record", help="record the output to this .mp4")
    r.add_argument("--fps", type=positive_float, help="target frame rate (default 30, or the set's)")
    r.add_argument("--bpm", type=positive_float, help="starting tempo (default 120, or the set's)")
    r.add_argument("--audio", help="play and analyse this audio file")
    r.add_argument("--loop-audio", action="store_true")
    r.add_argument("--mute", action="store_true", help="analyse --audio without playing it")
    r.add_argument("--audio-in", nargs="?", const="", help="analyse live input (device name or index)")
    r.add_argument("--block", type=block_size, default=512, help="audio analysis block in samples (default 512)")
    r.add_argument("--follow-audio-tempo", action="store_true",
                   help="the clock (s.bpm, s.beat) follows the tempo and beat heard in the audio")
    r.add_argument("--monitor", type=int, default=0)
    r.add_argument("--fullscreen", action="store_true")
    r.add_argument("--no-vsync", action="store_true")
    from engine.rig import add_arguments as add_rig_arguments
    add_rig_arguments(r)
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("render", help="render offline, frame-exact with an audio file")
    d.add_argument("--audio", required=True)
    d.add_argument("--patch", required=True)
    d.add_argument("--out", required=True)
    common(d)
    d.add_argument("--fps", type=positive_float, default=30.0)
    d.add_argument("--bpm", type=positive_float, default=120.0)
    d.add_argument("--follow-audio-tempo", action="store_true",
                   help="the clock (s.bpm, s.beat) follows the tempo and beats found in the audio")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_render)

    b = sub.add_parser("bench", help="frames per second of the whole loop and of the generator")
    common(b)
    b.add_argument("--frames", type=int, help="frames per figure (default 200; 100 with --generator-only)")
    b.add_argument("--generator-only", action="store_true",
                   help="the generator alone at batch 1 and 4: fp32, and on CUDA fp16 and fp16 + CUDA graph")
    b.add_argument("--compile", action="store_true", help="--generator-only: also time torch.compile")
    b.add_argument("--patch", help="patch for the whole-loop figure (default patches/drift.py)")
    b.add_argument("--json", help="also write the figures to this JSON file")
    b.set_defaults(func=cmd_bench)

    m = sub.add_parser("models", help="list the registry; describe, convert or sample a model")
    m.add_argument("action", nargs="?", default="list", choices=["list", "info", "convert", "sample"])
    m.add_argument("file", nargs="?", help="registry name or model file")
    m.add_argument("dest", nargs="?", help="convert: the OUT.safetensors to write")
    m.add_argument("--z", help="sample: latents [N, z_dim] (.npy)")
    m.add_argument("--ws", help="sample: per-layer styles [N, num_ws, w_dim] (.npy), instead of --z")
    m.add_argument("--c", help="sample: class vectors [N, c_dim] (.npy), conditional models")
    m.add_argument("--psi", type=float, default=1.0, help="sample: truncation (default 1)")
    m.add_argument("--cutoff", type=int, help="sample: truncate only the first N layers")
    m.add_argument("--noise", default="const", choices=["const", "random", "none"])
    m.add_argument("--seed", type=int, help="sample: seed for --noise random")
    m.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    m.add_argument("--device", default="cpu")
    m.add_argument("--out", help="sample: where to write the NCHW float32 images (.npy)")
    m.set_defaults(func=cmd_models)

    a = sub.add_parser("analyze", help="what the engine hears in an audio file: features as CSV and a plot")
    a.add_argument("file")
    a.add_argument("--out", help="write the features here (CSV: one row per block, or per frame with --offline)")
    a.add_argument("--plot", help="draw the features over the waveform into this PNG")
    a.add_argument("--offline", action="store_true", help="the offline features of vj render, one row per frame")
    a.add_argument("--fps", type=positive_float, default=30.0, help="frame rate of --offline (default 30)")
    a.add_argument("--block", type=block_size, default=512, help="real-time block in samples (default 512)")
    a.set_defaults(func=cmd_analyze)

    sub.add_parser("devices", help="audio devices and monitors").set_defaults(func=cmd_devices)
    sub.add_parser("doctor", help="check what works on this machine").set_defaults(func=cmd_doctor)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    if args.command == "models" and args.action != "list" and not args.file:
        print(f"vj: models {args.action} needs a FILE or registry name", file=sys.stderr)
        return 2
    return args.func(args) or 0


if __name__ == "__main__":
    raise SystemExit(main())
