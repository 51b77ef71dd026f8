"""``vj run [PATCH_OR_SET]``: live, paced to the wall clock, in a window or headless."""
from __future__ import annotations

import logging
from pathlib import Path

from engine.commands import open_session, resolve_patch, terminate_gracefully
from engine.session import DEFAULT_SIZE, AudioOptions, ControlOptions, Options
from engine.show.state import default_state_dir

log = logging.getLogger("vj")


def load_set(args):
    """``vj run SET.toml``: the set's first scene is the patch, and the set's bpm, fps, size
    and model apply where the command line leaves them unset. A set that fails its checks
    (engine/show/sets.py) stops here, before anything opens, with every problem listed."""
    from engine.show.sets import SetError, SetList
    if not (args.patch and args.patch.endswith(".toml")):
        return None
    try:
        setlist = SetList(args.patch)
    except SetError as e:
        for line in str(e).splitlines():
            log.error("set list: %s", line)
        raise SystemExit(2)
    args.patch = str(setlist.scene.patch)
    opts = setlist.options
    args.size = args.size or opts.get("size")
    args.model = args.model or opts.get("model")
    args.fps = args.fps or opts.get("fps")
    args.bpm = args.bpm or opts.get("bpm")
    return setlist


def options(args) -> Options:
    setlist = load_set(args)
    fps = float(args.fps or 30.0)
    control = ControlOptions(
        osc_port=None if args.no_osc else args.osc_port, osc_bind=args.osc_bind, osc_allow=args.osc_allow,
        oscquery_port=None if args.no_oscquery else args.oscquery_port, oscquery_origins=args.oscquery_origin,
        osc_out=args.osc_out, osc_out_rate=args.osc_out_rate, osc_out_bundle=args.osc_out_bundle,
        midi=None if args.no_midi else args.midi_in, mappings=Path(args.mappings) if args.mappings else None,
        learn=args.learn, record_dir=Path(args.record_dir))
    audio = AudioOptions(file=args.audio, loop=args.loop_audio, play=not args.mute, input=args.audio_in,
                         block=args.block)
    window = None if args.headless else dict(monitor=args.monitor, fullscreen=args.fullscreen,
                                             vsync=not args.no_vsync)
    return Options(
        patch=resolve_patch(args.patch), setlist=setlist, model=args.model, size=args.size or DEFAULT_SIZE,
        fps=fps, bpm=float(args.bpm or 120.0), device=args.device, precision=args.precision, live=True,
        display_path=args.display_path, pipeline=not args.no_pipeline,
        window=window, watch=True, record=Path(args.record) if args.record else None, overwrite=args.overwrite,
        # a live file soundtrack starts with the frames, so it goes into the recording too
        record_audio=args.audio if args.audio and not args.loop_audio else None,
        follow_audio_tempo=args.follow_audio_tempo, link=args.link, control=control, audio=audio,
        hands=list(args.hands), record_hands=Path(args.record_hands) if args.record_hands else None,
        hands_box=args.hands_box, record_signals=Path(args.record_signals) if args.record_signals else None,
        state=None if args.no_state else Path(args.state or default_state_dir()))


def main(args) -> int:
    opts = options(args)
    terminate_gracefully()
    session = open_session(opts)
    if session is None:
        return 2
    with session:
        from engine.render.gl import describe
        log.info("OpenGL: %s", describe(session.ctx))
        log.info("model %s on %s (%s), patch %s, %dx%d at %g fps%s", session.runner.info.name,
                 session.runner.device, session.runner.precision, session.patches.path.name,
                 *opts.size, opts.fps, f", recording to {session.recording.recorder.path}" if session.recording.recorder else "")
        try:
            session.engine.run_live(frames=args.frames)
        except KeyboardInterrupt:
            log.info("stopped")
    return 0
