"""``vj render --audio FILE --patch PATCH --out OUT.mp4``: offline, frame-exact with the audio."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from engine.commands import open_session, resolve_patch, terminate_gracefully
from engine.session import DEFAULT_SIZE

log = logging.getLogger("vj")


def spec_of(args, patch=None, n_frames=None) -> dict:
    """The render's settings as plain data: what a single process and every chunk render from."""
    return {"patch": str(patch) if patch else None, "audio": args.audio, "signals": args.signals, "trust": args.trust,
            "model": args.model, "size": list(args.size), "fps": args.fps, "bpm": args.bpm, "device": args.device,
            "precision": args.precision, "display_path": args.display_path, "pipeline": not args.no_pipeline,
            "follow_audio_tempo": bool(getattr(args, "follow_audio_tempo", False)), "lossless": args.lossless,
            "frames": n_frames}


def _spread(args) -> bool:
    """--workers / --ray given: True when Ray is there (else it says how to get it and exits)."""
    if not (args.workers or args.ray):
        return False
    from engine.distributed import DistributedError, need_ray
    try:
        need_ray()
    except DistributedError as e:
        log.error("%s", e)
        raise SystemExit(2)
    return True


def chunked(args, spec: dict, n_frames: int, features=None, audio=None) -> int:
    from engine.distributed import render_chunked
    t0 = time.perf_counter()
    try:
        r = render_chunked(spec, Path(args.out), n_frames, args.workers, args.ray, features=features, audio=audio,
                           quiet=args.quiet, overwrite=args.overwrite)
    except KeyboardInterrupt:
        log.info("stopped; the chunks rendered so far are kept in %s.chunks: the same command resumes", args.out)
        return 130
    log.info("wrote %s: %d frames in %.1f s over %d workers (%d chunks, warm-up %.1f%% of the frames)",
             r["path"], r["frames"], time.perf_counter() - t0, r["workers"], r["chunks"], 100 * r["warmup_overhead"])
    return 0


def main(args) -> int:
    from tqdm import tqdm

    from engine.signals import audio, offline

    terminate_gracefully()
    spread = _spread(args)
    if args.signals:
        return replay(args, spread)
    if not args.audio or not args.patch:
        log.error("vj render needs --audio and --patch (or --signals FILE)")
        return 2
    args.fps = args.fps or 30.0
    patch = resolve_patch(args.patch)
    try:  # a typo found now, not after analysing an hour of audio
        compile(patch.read_text(), str(patch), "exec")
    except (SyntaxError, ValueError, OSError, UnicodeDecodeError) as e:
        where = f"{patch.name}:{e.lineno}" if isinstance(e, SyntaxError) and e.lineno else patch.name
        log.error("the patch does not load, nothing to render: %s: %s: %s", where, type(e).__name__,
                  getattr(e, "msg", None) or e)
        return 1
    log.info("analysing %s at %g fps", args.audio, args.fps)
    try:
        # read a block at a time: a long file is never in memory whole
        features, sr, duration, n_frames = offline.file_features(args.audio, args.fps)
    except audio.AudioError as e:
        log.error("cannot read audio %s: %s", args.audio, e)
        return 2
    log.info("analysed %s (%.2f s, %d Hz) for %d frames at %g fps", args.audio, duration, sr, n_frames, args.fps)
    spec = spec_of(args, patch, n_frames)
    if spread:
        return chunked(args, spec, n_frames, features, audio=args.audio)
    from engine.distributed import options
    opts = options(spec, Path(args.out), record_audio=args.audio, overwrite=args.overwrite)
    session = open_session(opts)
    if session is None:
        return 2
    with session:
        if not session.patches.ready:
            log.error("the patch does not load, nothing to render: %s", session.patches.last_error)
            return 1
        feed = offline.FrameFeed(features)
        recorder = session.recording.recorder
        t0 = time.perf_counter()
        try:
            with tqdm(total=n_frames, unit="frame", desc="render", disable=args.quiet) as bar:
                session.engine.run_offline(n_frames, before_frame=lambda k: feed(session.bus, k, k / args.fps),
                                           progress=bar)
        except KeyboardInterrupt:
            log.info("stopped; the video so far is in %s", recorder.path)
    took = time.perf_counter() - t0
    log.info("wrote %s: %d frames in %.1f s (%.1f fps)", recorder.path, recorder.frames_written, took,
             recorder.frames_written / max(took, 1e-9))
    return 0


def replay(args, spread: bool = False) -> int:
    """``vj render --signals FILE``: the recorded show again, on its own clock."""
    from tqdm import tqdm

    from engine.show.replay import Prepared, ReplayError
    from engine.show.signal_file import SignalFileError
    try:
        prepared = Prepared(args.signals, trust=args.trust)
    except (ReplayError, SignalFileError, OSError) as e:
        log.error("cannot replay %s: %s", args.signals, e)
        return 2
    try:
        h = prepared.header
        size = args.size if args.size != DEFAULT_SIZE or not h.get("size") else tuple(h["size"])
        args.fps = fps = args.fps or h.get("fps") or 30.0
        args.size, args.model, args.bpm = size, args.model or h.get("model"), h.get("bpm") or 120.0
        n_frames = prepared.replay.frame_count(None if prepared.replay.same_rate(fps) else fps)
        log.info("replaying %s: %d frames at %g fps, %dx%d", args.signals, n_frames, fps, *size)
        spec = spec_of(args, None, n_frames)
        if spread:
            return chunked(args, spec, n_frames)
        from engine.distributed import options
        opts = options(spec, Path(args.out), prepared, overwrite=args.overwrite)
        session = open_session(opts)
        if session is None:
            return 2
        with session:
            recorder = session.recording.recorder
            t0 = time.perf_counter()
            try:
                with tqdm(total=n_frames, unit="frame", desc="replay", disable=args.quiet) as bar:
                    session.engine.run_offline(n_frames, progress=bar)
            except KeyboardInterrupt:
                log.info("stopped; the video so far is in %s", recorder.path)
        took = time.perf_counter() - t0
        log.info("wrote %s: %d frames in %.1f s", recorder.path, recorder.frames_written, took)
        return 0
    finally:
        prepared.close()
