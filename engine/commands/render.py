"""``vj render --audio FILE --patch PATCH --out OUT.mp4``: offline, frame-exact with the audio."""
from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass
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
    from engine.distributed import DistributedError, render_chunked
    t0 = time.perf_counter()
    try:
        r = render_chunked(spec, Path(args.out), n_frames, args.workers, args.ray, features=features, audio=audio,
                           quiet=args.quiet, overwrite=args.overwrite)
    except KeyboardInterrupt:
        log.info("stopped; the chunks rendered so far are kept in %s.chunks: the same command resumes", args.out)
        return 130
    except DistributedError as e:
        log.error("%s", e)
        return 1
    log.info("wrote %s: %d frames in %.1f s over %d workers (%d chunks, warm-up %.1f%% of the frames)",
             r["path"], r["frames"], time.perf_counter() - t0, r["workers"], r["chunks"], 100 * r["warmup_overhead"])
    return 0


@dataclass(frozen=True)
class Part:
    """The frames a render records: ``first`` .. ``first + frames - 1`` of the song's
    ``total`` frames (frame k at k / fps)."""

    first: int
    frames: int
    total: int
    fps: float

    @property
    def start(self) -> float:
        return self.first / self.fps

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


def _seconds_error(args) -> str | None:
    start, duration = getattr(args, "start", None), getattr(args, "duration", None)
    if start is not None and not (math.isfinite(start) and start >= 0):
        return f"--start must be a number of seconds >= 0, got {start:g}"
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        return f"--duration must be a number of seconds > 0, got {duration:g}"
    return None


def part_of(args, samples: int, sr: int) -> Part | str:
    """The frames ``--start`` / ``--duration`` choose from a song of ``samples`` at ``sr``, or
    why they cannot. The start is put on the frame grid (the nearest k / fps), so each frame
    of the part is the frame a whole render draws at that time, and the cut sound follows it."""
    fps, song = args.fps, samples / sr
    total = max(1, round(song * fps))
    start = getattr(args, "start", None) or 0.0
    if start >= song:
        return f"--start {start:g} s is at or past the end of {args.audio} ({song:.2f} s)"
    first = min(round(start * fps), total - 1)   # just before the end rounds to the last frame, not past it
    duration = getattr(args, "duration", None)
    frames = total - first if duration is None else min(max(1, round(duration * fps)), total - first)
    if duration is not None and first + round(duration * fps) > total:
        log.info("%s ends %.2f s after --start: rendering to its end", args.audio, song - first / fps)
    return Part(first, frames, total, fps)


def cut_audio(src, start: float, seconds: float, dest: Path) -> Path:
    """``seconds`` of ``src`` from ``start`` into ``dest`` (FLAC, every channel, to the
    sample): the soundtrack of a part, which the recorder then muxes from its start."""
    import soundfile as sf

    from engine.signals.audio import AudioReader
    block = 1 << 18
    with AudioReader(src, mono=False) as reader:
        skip, left = round(start * reader.sr), round(seconds * reader.sr)
        while skip > 0:   # read past, not seek: PyAV's seeks land on packets, not samples
            got = len(reader.read(min(skip, block)))
            if not got:
                break
            skip -= got
        with sf.SoundFile(dest, "w", samplerate=reader.sr, channels=reader.channels, format="FLAC",
                          subtype="PCM_24") as out:
            while left > 0:
                y = reader.read(min(left, block))
                if not len(y):
                    break
                out.write(y)
                left -= len(y)
    return dest


def _first_snapshot(args):
    """Frame 0 of a render on silence: what the patch is tried on before the song is analysed."""
    from engine.signals.bus import SignalBus
    from engine.signals.offline import silence
    bus = SignalBus()
    bus.publish(silence(), t=0.0, source="audio")
    return bus.snapshot(time=0.0, dt=0.0, frame=0, bpm=args.bpm, beat=0.0)


def _patch_draws(session, args) -> bool:
    """The patch loaded (the host has said why not) and draws a frame on silence (said here)."""
    if not session.patches.ready:
        return False
    why = session.patches.trial(_first_snapshot(args))
    if why is not None:
        log.error("the patch fails on its first frame, nothing rendered: %s", why)
        return False
    return True


def _drop_recording(session) -> None:
    """Nothing was drawn: the file the session opened to record into goes again."""
    rec, session.recording.recorder = session.recording.recorder, None
    if rec is not None:
        rec.discard()


class _SayOnce(logging.Filter):
    """A part rendered from a later start runs the patch in two sessions (the pass that finds
    the warm-up, then the render): each patch message reaches the log once, not once each."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record) -> bool:
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


def main(args) -> int:
    from engine.signals import audio, offline

    terminate_gracefully()
    cut = getattr(args, "start", None) is not None or getattr(args, "duration", None) is not None
    why = _seconds_error(args)
    if cut and args.signals:
        why = "--start and --duration cut a song: they go with --audio, not --signals"
    elif cut and (args.workers or args.ray):
        why = "--start and --duration render in one process: leave out --workers and --ray"
    if why is not None:
        log.error("%s", why)
        return 2
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
    try:
        part = part_of(args, *offline.file_length(args.audio))
    except audio.AudioError as e:
        log.error("cannot read audio %s: %s", args.audio, e)
        return 2
    if isinstance(part, str):
        log.error("%s", part)
        return 2
    spec = spec_of(args, patch, part.total)
    if spread:
        features = _analyse(args)
        return features if isinstance(features, int) else chunked(args, spec, part.total, features, audio=args.audio)
    once = _SayOnce()
    logging.getLogger("vj.patch").addFilter(once)
    try:
        with tempfile.TemporaryDirectory(prefix="vj-render-") as tmp:
            sound = args.audio
            if part.first:
                sound = str(cut_audio(args.audio, part.start, part.seconds, Path(tmp) / "part.flac"))
            return _render(args, spec, part, sound)
    finally:
        logging.getLogger("vj.patch").removeFilter(once)


def _analyse(args):
    """The whole song's features (a part's frames then read what a whole render's read at the
    same time), or the exit status when the file cannot be read after all."""
    from engine.signals import audio, offline
    log.info("analysing %s at %g fps", args.audio, args.fps)
    try:
        # read a block at a time: a long file is never in memory whole
        features, sr, duration, n_frames = offline.file_features(args.audio, args.fps)
    except audio.AudioError as e:
        log.error("cannot read audio %s: %s", args.audio, e)
        return 2
    log.info("analysed %s (%.2f s, %d Hz) for %d frames at %g fps", args.audio, duration, sr, n_frames, args.fps)
    return features


def _render(args, spec: dict, part: Part, sound: str) -> int:
    """Check the patch, analyse the song, render ``part``. From frame 0 this is one session;
    from a later start a first session (no recording) checks the patch, analyses and runs the
    patch alone up to the start to learn the feedback warm-up (engine/render/chunks.py), and a
    second one fast-forwards, warms up unrecorded and records the part."""
    from engine.distributed import options
    from engine.render.chunks import feedback_amount, warmup
    from engine.signals.offline import FrameFeed
    out = Path(args.out)
    whole = part.first == 0
    first = open_session(options(spec, out if whole else None, record_audio=sound if whole else None,
                                 overwrite=args.overwrite))
    if first is None:
        return 2
    amounts: list[float] = []
    with first:
        if not _patch_draws(first, args):
            _drop_recording(first)
            return 1
        features = _analyse(args)
        if isinstance(features, int):
            _drop_recording(first)
            return features
        feed = FrameFeed(features)
        if whole:
            done = _record(first, feed, part, 0, args)
        else:
            first.engine.fast_forward(part.first, before_frame=lambda k: feed(first.bus, k, k / part.fps),
                                      each=lambda f: amounts.append(feedback_amount(_posts(f), f.dt)))
    if whole:
        return _wrote(*done)
    warm = warmup(amounts, part.first)
    log.info("rendering %.2f-%.2f s of %s: frames %d-%d, %d warm-up frames before them", part.start,
             part.start + part.seconds, args.audio, part.first, part.first + part.frames - 1, warm)
    session = open_session(options(spec, out, record_audio=sound, overwrite=args.overwrite))
    if session is None:
        return 2
    with session:
        done = _record(session, feed, part, warm, args)
    return _wrote(*done)


def _posts(frame) -> list[dict]:
    if frame.layers:
        return [layer.post for layer in frame.layers]
    return [frame.controls.post] if frame.controls is not None else []


def _record(session, feed, part: Part, warm: int, args):
    """Fast-forward to the warm-up, draw it unrecorded, record the part: (recorder, seconds)."""
    from tqdm import tqdm
    bus, fps = session.bus, part.fps

    def at(offset: int):
        return lambda k: feed(bus, offset + k, (offset + k) / fps)
    recorder = session.recording.recorder
    if part.first - warm:
        session.engine.fast_forward(part.first - warm, before_frame=at(0))
    if warm:
        session.recording.recorder = None   # drawn for the feedback trails, not kept
        session.engine.run_offline(warm, before_frame=at(part.first - warm))
        session.recording.recorder = recorder
    t0 = time.perf_counter()
    try:
        with tqdm(total=part.frames, unit="frame", desc="render", disable=args.quiet) as bar:
            session.engine.run_offline(part.frames, before_frame=at(part.first), progress=bar)
    except KeyboardInterrupt:
        log.info("stopped; the video so far is in %s", recorder.path)
    return recorder, time.perf_counter() - t0


def _wrote(recorder, took: float) -> int:
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
