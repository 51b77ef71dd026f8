"""A Session builds one engine from options and owns every resource of its life.

``Session(options)`` opens, in this order: the OpenGL context (a window, or headless EGL),
the generator, the bus and the clock, the patch (and its watcher), the shader chain, the
recorder, the control plane (dispatcher, mappings file, OSC in, OSCQuery, OSC out, MIDI), the
audio sources and the housekeeping watcher; then it gives the engine its stages. Every
resource is registered with its closer as it opens, and ``close()`` closes them in reverse
order, each on its own (one that fails to close is logged and the rest still close), on
every exit path: a failure while building closes what was already open. ``vj run``,
``vj render``, ``vj bench`` and the tests build engines only through here.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from engine import paths

log = logging.getLogger("vj")

DEFAULT_SIZE = (1280, 720)


class SessionError(Exception):
    """The session cannot be built (no OpenGL, no model at all, an unwritable recording)."""


@dataclass
class ControlOptions:
    """The rig: OSC in/out, OSCQuery, MIDI, the mappings file."""

    osc_port: int | None = 9000          # None: no OSC in (nor OSCQuery)
    osc_bind: str = "127.0.0.1"
    osc_allow: list[str] = field(default_factory=list)    # sender addresses accepted (UDP and WebSocket)
    oscquery_port: int | None = 9001     # None: no OSCQuery
    oscquery_origins: list[str] = field(default_factory=list)  # web page origins allowed on the WebSocket
    osc_out: list[str] = field(default_factory=list)      # HOST:PORT destinations
    osc_out_rate: float | None = None
    osc_out_bundle: bool = False
    midi: list[str] | None = field(default_factory=list)  # port name filters ([] = all); None: no MIDI
    mappings: Path | None = None         # default: beside the set or the patch
    learn: str | None = None             # arm learn for this parameter at start
    record_dir: Path = Path("recordings")


@dataclass
class AudioOptions:
    file: str | None = None
    loop: bool = False
    play: bool = True
    input: str | int | None = None       # a device name or index; "" = the default input
    block: int = 512


@dataclass
class Options:
    patch: Path = paths.PATCHES / "drift.py"
    setlist: Any = None                  # engine.show.sets.SetList
    model: Any = None                    # a registry name, a model file, or a built Generator
    size: tuple[int, int] = DEFAULT_SIZE
    fps: float = 30.0
    bpm: float = 120.0
    device: str | None = "auto"
    precision: str = "auto"
    display_path: str = "auto"           # engine/render/frame_source.py: auto, pbo, cuda-gl, pinned
    pipeline: bool = True                # generate frame N+1 while frame N is shaded (render/loop.py)
    live: bool = True                    # the wall clock (vj run) or a virtual clock (vj render, bench)
    window: dict | None = None           # Window options (monitor, fullscreen, vsync); None: headless
    ctx: Any = None                      # render into this OpenGL context (not owned) instead
    watch: bool = False                  # hot-reload the patch
    record: Path | None = None           # record every frame here
    record_audio: str | None = None      # ... with this soundtrack
    overwrite: bool = False              # ``record`` may replace an existing file (else NAME-2.mp4 ...)
    lossless: bool = False               # ``record`` losslessly (x264 qp 0): a master, or frames to compare exactly
    follow_audio_tempo: bool = False
    link: bool = False                   # join the Ableton Link session on the LAN (control/link.py)
    control: ControlOptions | None = None
    audio: AudioOptions | None = None
    hands: list[str] = field(default_factory=list)   # hand sources (signals/hand_sources.py): leap, osc, replay:FILE
    record_hands: Path | None = None     # also write every hand frame here (a replay file)
    hands_box: dict | None = None        # {"center": [..3], "size": [..3]} mm; None: the sensor's or the default
    state: Path | None = None            # the state folder (bookmarks, scene, parameter values); None: none kept
    record_signals: Path | None = None   # write every frame's inputs here (engine/show/replay.py)
    replay: Any = None                   # engine/show/replay.py Prepared: play a recording instead of inputs


def load_model(spec):
    """The model ``spec`` (a registry name or a file, or a Generator already built, from a
    script or a test), or the registry's default when it cannot load, so the show goes on;
    SessionError if not even the default loads."""
    from engine.generators.base import Generator
    from engine.generators.load import ModelLoadError, load_generator
    if isinstance(spec, Generator):
        return spec
    try:
        return load_generator(spec)
    except ModelLoadError as e:
        if spec is None:
            raise SessionError(f"the default model cannot be loaded: {e}") from e
        log.error("model %s cannot be loaded: %s", spec, e)
        log.error("falling back to the default model so the show goes on")
        try:
            return load_generator(None)
        except ModelLoadError as e2:
            raise SessionError(f"the default model cannot be loaded either: {e2}") from e2


class _Every(threading.Thread):
    """Calls each function every ``period`` seconds off the render thread until stopped."""

    def __init__(self, period: float, fns: list[Callable[[], None]]):
        super().__init__(name="housekeeping", daemon=True)
        self.period, self.fns, self._halt = period, fns, threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.period):
            for fn in self.fns:
                try:
                    fn()
                except Exception as e:  # noqa: BLE001 - a watcher outlives anything
                    log.error("housekeeping: %s: %s", type(e).__name__, e)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)


class Session:
    def __init__(self, options: Options):
        self.options = options
        self._closers: list[tuple[str, Callable[[], None]]] = []
        self._closed = False
        self.osc_in = self.oscquery = self.osc_out = self.midi = self.mappings = None
        self.ws_osc = None    # OSC over OSCQuery's WebSocket: its own handler and counts
        self.window = self.setlist = None
        self.audio_sources: list = []
        self.audio_gain = None           # signals/audio.py GainStage, with --audio / --audio-in
        self.hands = None                # control/hands.py HandsStage, with --hands
        self.scenes = self.scene_hosts = None   # show/scenes.py SetStage and its patch hosts, with a set
        self.state_writer = self.show_state = self.bookmarks = None   # with a state folder
        self.signal_recorder = self.compositor = None
        self._applied: list = []   # parameter values the session set, for the show recording
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    # --- ownership
    def own(self, name: str, closer: Callable[[], None]) -> None:
        self._closers.append((name, closer))

    def close(self) -> None:
        """Close everything, newest first. Idempotent."""
        if self._closed:
            return
        self._closed = True
        interrupted = None
        while self._closers:
            name, closer = self._closers.pop()
            try:
                closer()
            except BaseException as e:  # noqa: BLE001 - the rest must still close, even on a second Ctrl-C
                log.error("closing %s: %s: %s", name, type(e).__name__, e)
                if not isinstance(e, Exception):
                    interrupted = interrupted or e
        if interrupted is not None:
            raise interrupted

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- building
    def _build(self) -> None:
        from engine.control.dispatch import Dispatcher
        from engine.control.publish import Publisher
        from engine.outputs.recording import RecordStage
        from engine.patching.params import ParamSet
        from engine.patching.stage import ParamsStage, PatchStage
        from engine.render.gl import describe
        from engine.render.gpu import GeneratorRunner, share_cores_with_gl
        from engine.render.loop import Engine, FrameStats
        from engine.render.post import ShaderChain
        from engine.render.stages import GenerateStage, ShadeStage
        from engine.signals.bus import SignalBus
        from engine.signals.clock import LiveClock, VirtualClock

        o = self.options
        self.ctx = self._open_gl()
        sl = o.setlist
        self._open_state()
        if sl is not None:
            self.runners = self._open_models(sl)
            self.runner = self.runners[sl.index]
        else:
            self.runner = GeneratorRunner(load_model(o.model), device=o.device, precision=o.precision)
            self.runners = [self.runner]
        share_cores_with_gl(describe(self.ctx), self.runner.device)
        if o.replay is not None:
            from engine.show.signal_file import ReplayBus, ReplayClock
            self.bus, self.clock = ReplayBus(o.replay.replay, o.fps), ReplayClock(o.replay.replay, o.fps)
        else:
            self.bus = SignalBus()
            self.clock = LiveClock(bpm=o.bpm) if o.live else VirtualClock(o.fps, bpm=o.bpm)
        self.params = ParamSet()
        if self.state_writer is not None:
            from engine.show.bookmark_stage import BookmarkStage
            self.bookmarks = BookmarkStage(o.state, self.state_writer, self.params, self.runner,
                                           lambda m: self.patches.report(m))
        self.spaces = self._latent_spaces()
        if sl is not None:
            from engine.show.scenes import ShowPatches
            self.scene_hosts = [self._open_patch(sc.patch, self.runners[i], sc.name)
                                for i, sc in enumerate(sl.scenes)]
            self.patches = ShowPatches(self.scene_hosts, sl)
        else:
            self.patches = self._open_patch(o.patch, self.runner)
        self.chain = ShaderChain(self.ctx, o.size, report=self.patches.report)
        self.own("shader chain", self.chain.release)
        self.stats = FrameStats()
        if o.control is not None:
            self._open_osc_out(o.control)
        self.publisher = Publisher(osc_out=self.osc_out, params=self.params, stats=self.stats,
                                   scenes=[sc.name for sc in o.setlist.scenes] if o.setlist else None)
        self.dispatcher = Dispatcher(self.bus, status=self.publisher.get)
        self.params.command = self.dispatcher.control
        from engine.render.readback import PixelReadback
        readback = PixelReadback(self.ctx, o.size)
        self.own("read-back buffers", readback.release)
        self.recording = RecordStage(readback, o.size, o.fps, recorder=self._open_recorder(),
                                     record_dir=o.control.record_dir if o.control else "recordings",
                                     report=self.patches.report, live=o.live)
        self.own("recordings", self.recording.close)
        if o.control is not None:
            self._open_control(o.control)
        if o.audio is not None:
            self._open_audio(o.audio)
        if o.hands:
            self._open_hands(o.hands, o.record_hands, o.hands_box)
        from engine.control.clock_sync import ClockSync
        link = self._open_link(o) if o.link and o.live else None
        stages: list = [ClockSync(self.clock, o.follow_audio_tempo, link=link, seed=self._seed_beats),
                        ParamsStage(self.params)]
        if self.hands is not None:
            stages.append(self.hands)
        if self.audio_gain is not None:
            stages.append(self.audio_gain)
        hosts = self.scene_hosts or [self.patches]
        if o.replay is not None:
            from engine.show.replay import ReplayStage
            stages.append(ReplayStage(hosts, o.replay.files, self.params, self.patches.report))
        from engine.render.frame_source import open_frame_source
        self.frame_source, self.display_note = open_frame_source(self.ctx, self.runner.device, o.display_path)
        self.own("frame source", self.frame_source.release)
        compositor = None
        if sl is not None:
            self.setlist = sl
            self.scenes, compositor = self._set_stage(sl)
            self.compositor = compositor
            stages.append(self.scenes)
        else:
            stages.append(PatchStage(self.patches))
        if self.state_writer is not None:
            from engine.show.show_state import ShowStateStage
            stages += [self.bookmarks, ShowStateStage(self.show_state, self.params, sl)]
            if sl is None and "" in self.show_state.params:
                self._apply(self.show_state.params[""])
        if o.replay is not None and o.replay.start_params:
            self.params.apply(o.replay.start_params)
        recording_signals = self._signal_recorder(hosts) if o.record_signals is not None else []
        stages += recording_signals[:1]
        self.generate = GenerateStage(self.runner, self.patches.report, self.patches.clear_error,
                                      channels=self.frame_source.channels)
        self.own("generator worker", self.generate.close)
        stages += [self.generate, ShadeStage(self.chain, self.frame_source, compositor), *recording_signals[1:],
                   self.recording, self.publisher]
        from engine.render.hud import StatusBoard
        self.board = StatusBoard(self.stats, self.patches, self.runner.info.name, o.size, o.fps, setlist=o.setlist,
                                 params=self.params, dispatcher=self.dispatcher, recording=self.recording,
                                 osc_in=self.osc_in, oscquery=self.oscquery, ws_osc=self.ws_osc, midi=self.midi,
                                 mappings=self.mappings, generate=self.generate, hands=self.hands,
                                 scenes=self.scenes, bookmarks=self.bookmarks, audio=self.audio_gain,
                                 display=f"{'pipelined' if o.pipeline else 'serial'}, {self.frame_source.name}")
        if self.window is not None:
            from engine.render.display import WindowStage
            from engine.render.hud import HudText
            stages.append(WindowStage(self.window, self.dispatcher.dispatch, HudText(), self.board.hud_lines))
        self.engine = Engine(self.clock, self.bus, stages, fps=o.fps, stats=self.stats, report=self.patches.report,
                             status_line=self.board.status_line, pipeline=o.pipeline, live=o.live,
                             latency_of={"hands": "hands.count"} if self.hands is not None else None)
        self._warm_up()
        watchers = [self.board.report_problems]
        if self.mappings is not None:
            watchers.append(self.mappings.check)
        housekeeping = _Every(0.5, watchers)
        housekeeping.start()
        self.own("housekeeping", housekeeping.stop)

    def _apply(self, values: dict) -> None:
        """Parameter values set by the session (a scene's, kept ones), noted for a show recording."""
        self.params.apply(values)
        self._applied.append(("params", dict(values)))

    def _signal_recorder(self, hosts) -> list:
        """The show recording's two stages: its notes (front) and its records (back)."""
        from engine.show.replay import SignalNotesStage, SignalRecordStage, header
        from engine.show.signal_file import SignalRecorder
        o = self.options
        try:
            rec = SignalRecorder(o.record_signals, header(o, o.fps))
        except (OSError, ValueError) as e:
            raise SessionError(f"cannot record the show's signals to {o.record_signals}: {e}") from e
        self.own("signal recording", rec.close)
        log.info("recording the show's signals to %s", rec.path)
        self.signal_recorder = rec
        return [SignalNotesStage(hosts, self.params, self._applied), SignalRecordStage(rec, self.clock)]

    def _open_state(self) -> None:
        """The state folder: where the show was (scene, parameter values) and the bookmarks. A set
        opens in the scene it was left in."""
        o = self.options
        if o.state is None:
            return
        from engine.show.show_state import ShowState
        from engine.show.state import StateWriter
        self.state_writer = StateWriter()
        self.own("state writer", self.state_writer.close)
        sl = o.setlist
        self.show_state = ShowState(o.state, sl.path if sl is not None else o.patch, self.state_writer)
        self.own("show state", self.show_state.close)
        names = [sc.name for sc in sl.scenes] if sl is not None else []
        if self.show_state.scene in names:
            sl.index = names.index(self.show_state.scene)
            log.info("state %s: back in scene %d/%d %s", o.state, sl.index + 1, len(names), sl.scene.name)

    def _latent_spaces(self) -> dict:
        """A LatentSpace per model (what ``p.w``, ``p.direction``, ``p.bookmark`` ask), keyed by runner."""
        from engine.latent.space import LatentSpace
        from engine.show.bookmark_stage import book_key
        spaces = {}
        for runner in self.runners:
            if id(runner) in spaces:
                continue
            key = book_key(runner.info)
            saved = Path(self.options.state) / "directions" / key if self.options.state is not None else None
            spaces[id(runner)] = LatentSpace(runner, key, saved_dir=saved, on_message=lambda m: log.info("%s", m),
                                             bookmarks=None if self.bookmarks is None else
                                             lambda name, r=runner: self.bookmarks.book(r).get(name).ws)
        return spaces

    def _open_patch(self, path, runner, scene: str | None = None):
        from engine.patching.loader import PatchHost
        o = self.options
        # offline, a slow frame costs only time: a hang is still cut short, but later
        host = PatchHost(path, runner.info, params=self.params, space=self.spaces[id(runner)],
                         frame_budget=None if o.live else PatchHost.OFFLINE_FRAME_BUDGET)
        host.load()
        if o.watch:
            host.start_watching()
        self.own(f"patch watcher{f' ({scene})' if scene else ''}", host.stop)
        return host

    def _open_models(self, sl) -> list:
        """One runner per scene, each model loaded once, all before the show: a set whose models
        cannot all be held is refused here, with the figures."""
        from engine.render.gpu import GeneratorRunner, pick_device
        from engine.show.models import ModelsDoNotFit, check_fit
        o = self.options
        specs = sl.models(o.model)
        device = pick_device(o.device)
        precision = o.precision if o.precision != "auto" else ("fp16" if device.type == "cuda" else "fp32")
        generators = [load_model(spec) for spec in specs]
        try:
            check_fit(generators, device, precision, sl.memory_limit_mb)
        except ModelsDoNotFit as e:
            raise SessionError(f"set {sl.path.name}: {e}") from e
        runners = [GeneratorRunner(g, device=o.device, precision=o.precision) for g in generators]
        return [runners[specs.index(sc.model if sc.model is not None else o.model)] for sc in sl.scenes]

    def _set_stage(self, sl):
        """The set's stage and, when its transitions show two pictures at once, a second slot
        (shader chain and frame source) and the compositor."""
        from engine.render.compose import Compositor
        from engine.render.frame_source import open_frame_source
        from engine.render.post import ShaderChain
        from engine.show.scenes import SetStage, Slot
        slots = [Slot(self.chain, self.frame_source)]
        compositor = None
        kinds = {sl.transition.kind} | {sc.transition.kind for sc in sl.scenes if sc.transition}
        if kinds & {"crossfade", "wipe", "morph"}:  # a morph between two models is a crossfade
            chain = ShaderChain(self.ctx, self.options.size, report=self.patches.report)
            self.own("second shader chain", chain.release)
            source, _ = open_frame_source(self.ctx, self.runner.device, self.options.display_path)
            self.own("second frame source", source.release)
            slots.append(Slot(chain, source))
            compositor = Compositor(self.ctx, self.options.size)
            self.own("compositor", compositor.release)
        stage = SetStage(sl, self.scene_hosts, self.runners, slots, self.dispatcher.dispatch,
                         on_enter=self._enter_scene, fps=self.options.fps)
        return stage, compositor

    def _enter_scene(self, index: int, scene) -> None:
        """On the cued frame (and the first): the scene's parameter values (the set's, then those
        it was left with), and its bookmark."""
        values = dict(scene.params)
        if self.show_state is not None:
            values.update(self.show_state.params.get(scene.name, {}))
        # replayed, the recording's notes set what the live show set, on the same frames
        if values and self.options.replay is None:
            self._apply(values)
        if self.bookmarks is not None:
            self.bookmarks.entered_scene(scene.bookmark)

    def _warm_up(self) -> None:
        """One image through the generator, the frame source and the chain before the clock
        starts: the renderer compiles its shader variants and torch sets up its kernels now,
        not in the first frames of the show (where they cost a dropped frame now and then)."""
        import numpy as np
        try:
            for runner in {id(r): r for r in self.runners}.values():
                image = runner.frame(runner.styles(z=np.zeros(runner.info.z_dim, np.float32)),
                                     channels=self.frame_source.channels)
            slots = self.scenes.slots if self.scenes is not None else []
            for chain, source in [(self.chain, self.frame_source)] + [(sl.chain, sl.source) for sl in slots[1:]]:
                chain.show(source.upload(image))
                chain.render(None)
            if self.compositor is not None:  # a set's first crossfade compiles nothing on stage
                self.compositor.render(self.chain.output, self.chain.output, 0.5, "crossfade")
                self.chain.show(self.frame_source.upload(image))
            self.chain.finish()
        except Exception as e:  # noqa: BLE001 - the frames will say what is wrong, once
            log.debug("warm-up: %s: %s", type(e).__name__, e)

    def _open_gl(self):
        from engine.render.gl import GLError, headless_context
        o = self.options
        try:
            if o.window is not None:
                from engine.render.display import Window
                self.window = Window(o.size, title="vj", **o.window)
                self.own("window", self.window.close)
                return self.window.ctx
            if o.ctx is not None:
                return o.ctx
            ctx = headless_context()
        except GLError as e:
            raise SessionError(str(e)) from e
        self.own("OpenGL context", ctx.release)
        return ctx

    def _open_recorder(self):
        from engine.outputs.recorder import Recorder, RecorderError
        from engine.outputs.recording import recorder_options
        o = self.options
        if o.record is None:
            return None
        path = Path(o.record) if o.overwrite else paths.unused_path(o.record)
        if path != Path(o.record):
            log.warning("%s exists (--overwrite replaces it); recording to %s", o.record, path)
        try:
            how = recorder_options(o.size, o.fps, o.live)
            if o.lossless:
                how["x264"] = {**how.get("x264", {}), "qp": "0"}
            try:
                return Recorder(path, *o.size, o.fps, audio=o.record_audio, **how)
            except RecorderError as e:
                if o.record_audio is None:
                    raise
                log.error("recording without sound: %s", e)
                return Recorder(path, *o.size, o.fps, **how)
        except RecorderError as e:
            raise SessionError(f"cannot record: {e}") from e

    def _open_control(self, c: ControlOptions) -> None:
        """Each part that cannot start is reported and the show goes on without it."""
        from engine.show.mappings import MappingsFile, default_path
        from engine.signals.osc import OscHandler, OscIn
        path = c.mappings or default_path(self.options.setlist.path if self.options.setlist else self.options.patch)
        self.mappings = MappingsFile(path, self.params)
        self.mappings.load()
        allow = [a.strip() for item in c.osc_allow for a in item.split(",") if a.strip()] or None
        if c.osc_port is not None:
            try:
                self.osc_in = OscIn(self.bus, c.osc_port, c.osc_bind, allow=allow,
                                    control=self.dispatcher.dispatch).start()
                self.own("OSC in", self.osc_in.stop)
                log.info("OSC in on %s:%d%s", c.osc_bind, self.osc_in.port,
                         f" from {', '.join(allow)} only" if allow else "")
            except OSError as e:
                log.error("OSC in not started (%s:%d: %s): running without OSC over UDP; "
                          "fix: --osc-port N (another program, maybe a vj, holds it) or --no-osc",
                          c.osc_bind, c.osc_port, e)
        # OSCQuery has a port of its own: a busy UDP port leaves it its WebSocket OSC and LISTEN
        if c.osc_port is not None and c.oscquery_port is not None:
            from engine.control.oscquery import OscQueryServer
            # its own handler: the WebSocket thread never shares counters with the UDP one
            handler = self.ws_osc = OscHandler(self.bus, control=self.dispatcher.dispatch)
            try:
                self.oscquery = OscQueryServer(self.publisher.nodes, lambda data: handler.datagram(data, None, "ws"),
                                               c.oscquery_port, c.osc_bind,
                                               osc_port=self.osc_in.port if self.osc_in else None,
                                               allow=allow, origins=c.oscquery_origins).start()
                self.own("OSCQuery", self.oscquery.stop)
                log.info("OSCQuery on http://%s:%d/%s", c.osc_bind, self.oscquery.port,
                         "" if self.osc_in else " (OSC over its WebSocket only: no UDP in)")
                log.info("control page on %s", ", ".join(self.oscquery.page_urls()))
            except OSError as e:
                log.error("OSCQuery not started (port %d: %s): running without it; "
                          "fix: --oscquery-port N (another program holds it) or --no-oscquery", c.oscquery_port, e)
        if c.midi is not None:
            from engine.signals.midi import MidiIn
            self.midi = MidiIn(self.bus, names=c.midi).start()
            self.own("MIDI in", self.midi.stop)
        if c.osc_port is not None or c.midi is not None:
            # input threads share the GIL with the render thread: with a 1 ms switch interval (Python's
            # default is 5 ms) the render thread never waits long for it while a flood is being parsed
            before = sys.getswitchinterval()
            sys.setswitchinterval(min(before, 0.001))
            self.own("thread switch interval", lambda: sys.setswitchinterval(before))
        if c.learn:  # a start option: the patch may declare the parameter only in its first frame
            self.params.arm_learn(c.learn, t=time.monotonic())

    def _open_osc_out(self, c: ControlOptions) -> None:
        if not c.osc_out:
            return
        from engine.outputs.osc_out import OscOut
        try:
            self.osc_out = OscOut(c.osc_out, rate=c.osc_out_rate, bundle=c.osc_out_bundle).start()
            self.own("OSC out", self.osc_out.stop)
            log.info("OSC out to %s%s", ", ".join(f"{h}:{p}" for h, p in self.osc_out.destinations),
                     " (bundles)" if c.osc_out_bundle else "")
        except ValueError as e:
            log.error("OSC out not started: %s", e)

    def _open_link(self, o: Options):
        """``--link``: the Ableton Link peer (control/link.py), or None: the show runs on without."""
        from engine.control.link import open_link
        peer = open_link(o.bpm)
        if peer is not None:
            self.own("Ableton Link", peer.close)
        return peer

    def _open_hands(self, specs: list[str], record: Path | None, box: dict | None = None) -> None:
        """The hand tracker and each source; a source that cannot start is reported and the
        show goes on with the others (a Leap client keeps retrying on its own)."""
        from engine.control.hands import HandsStage, HandTee
        from engine.signals.hand_sources import open_source
        from engine.signals.hands import HandTracker
        tracker = HandTracker(self.bus, box=box)
        recorder = None
        if record is not None:
            from engine.signals.hand_record import HandRecorder
            try:
                recorder = HandRecorder(record)
                self.own("hand recording", recorder.close)
                log.info("recording hands to %s", recorder.path)
            except OSError as e:
                log.error("hand recording %s not started: %s", record, e)
        tee = HandTee(tracker, recorder)
        sources = []
        for spec in specs:
            try:
                src = open_source(spec, tee)
            except Exception as e:  # noqa: BLE001 - a bad file or a busy port: the rest still run
                log.error("hands %s not started: %s: %s", spec, type(e).__name__, e)
                continue
            sources.append(src)
            self.own(f"hands {spec}", src.stop)
            log.info("hands from %s", spec)
        self.hands = HandsStage(tracker, sources)

    def _seed_beats(self, bpm: float, phase_time: float | None, weight: float) -> None:
        """A tempo from a tap, a clock or the set seeds every audio input's beat tracker."""
        for src in self.audio_sources:
            src.set_tempo(bpm, phase_time, weight=weight)

    def _open_audio(self, a: AudioOptions) -> None:
        """Any failure is reported and the show runs on silence."""
        from engine.signals import audio
        if a.file:
            try:
                src = audio.FileSource(self.bus, a.file, block=a.block, loop=a.loop, play=a.play).start()
                self.audio_sources.append(src)
                self.own(f"audio {a.file}", src.close)
            except Exception as e:  # noqa: BLE001 - missing or undecodable file
                log.error("audio file %s not played, running on silence: %s; fix: check the path "
                          "(vj analyze FILE tries a file)", a.file, e)
        if a.input is not None:
            dev = a.input
            dev = int(dev) if isinstance(dev, str) and dev.isdigit() else (dev or None)
            src = audio.InputSource(self.bus, device=dev, block=a.block).start()
            self.audio_sources.append(src)
            self.own("audio input", src.stop)
        self.audio_gain = audio.GainStage(self.audio_sources)
