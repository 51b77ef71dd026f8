"""The rig: OSC in and out, OSCQuery, MIDI and the mappings file, joined to a running engine.

``vj run`` calls ``add_arguments`` on its parser and ``start_rig(args, engine)`` once the
engine is built; ``Engine.render_frame`` calls ``Rig.frame(engine, snapshot)`` once per frame,
on the render thread, before the parameters and the patch. Inputs only write to the bus;
here the render thread applies what they asked for:

- ``clock.tempo`` / ``clock.tap`` events (``/vj/tempo``, ``/vj/tap``) -> the clock;
- MIDI clock (``midi.clock.*`` signals) -> tempo, and Start/Stop/Continue/song position ->
  the beat (soft phase lock while running);
- ``record.start`` / ``record.stop`` -> a Recorder owned here, closed off the render thread;
- then publishes the engine's state (tempo, beat, audio features, parameters) for OSC out
  and OSCQuery, as a dict swapped whole (other threads never see it half-built).

Cues (``cue.next``/``cue.prev``/``cue.goto``) and parameters (``param.*``) need nothing
here: the set list and the ParamSet read them from the same snapshot.
"""
from __future__ import annotations

import logging
import math
import re
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("vj")

DEFAULT_OSC_PORT = 9000
DEFAULT_OSCQUERY_PORT = 9001


def add_arguments(r) -> None:
    """The rig's flags on the `vj run` parser."""
    g = r.add_argument_group("rig: OSC, OSCQuery, MIDI (docs/patches.md, README)")
    g.add_argument("--osc-port", type=int, default=DEFAULT_OSC_PORT, metavar="P", help="OSC in, UDP (default 9000)")
    g.add_argument("--osc-bind", default="127.0.0.1", metavar="ADDR",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for the LAN)")
    g.add_argument("--osc-allow", action="append", default=[], metavar="ADDR[,ADDR]",
                   help="accept OSC only from these sender addresses")
    g.add_argument("--no-osc", action="store_true", help="no OSC in (nor OSCQuery)")
    g.add_argument("--oscquery-port", type=int, default=DEFAULT_OSCQUERY_PORT, metavar="Q",
                   help="OSCQuery HTTP + WebSocket (default 9001)")
    g.add_argument("--no-oscquery", action="store_true")
    g.add_argument("--osc-out", action="append", default=[], metavar="HOST:PORT",
                   help="send state (tempo, beat, audio, parameters) here; repeatable")
    g.add_argument("--osc-out-rate", type=float, metavar="HZ", help="state updates per second (default: every frame)")
    g.add_argument("--osc-out-bundle", action="store_true", help="one bundle per frame")
    g.add_argument("--midi-in", action="append", default=[], metavar="NAME",
                   help="MIDI inputs whose name contains NAME (default: all); repeatable")
    g.add_argument("--no-midi", action="store_true")
    g.add_argument("--mappings", metavar="FILE", help="mappings file (default: beside the set or patch, NAME.mappings.toml)")
    g.add_argument("--learn", metavar="PARAM", help="arm MIDI/OSC learn for this parameter at start")
    g.add_argument("--record-dir", default="recordings", metavar="DIR", help="where /vj/record/start writes (default recordings/)")


class _Recording:
    """A recorder started over OSC: its first frame is at time 0 of the file."""

    def __init__(self, recorder):
        self.recorder, self.base = recorder, None

    @property
    def frames_written(self):
        return self.recorder.frames_written

    def write(self, rgb, index):
        if self.base is None:
            self.base = index
        self.recorder.write(rgb, index - self.base)

    def close(self):
        self.recorder.close()


def _float(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


class Rig:
    def __init__(self, bus, params, *, osc_in=None, osc_out=None, oscquery=None, midi=None,
                 mappings=None, record_dir="recordings"):
        self.bus, self.params = bus, params
        self.osc_in, self.osc_out, self.oscquery, self.midi = osc_in, osc_out, oscquery, midi
        self.mappings = mappings
        self.record_dir = Path(record_dir)
        self.recording: _Recording | None = None
        self.recording_path: Path | None = None
        self.state: dict = {}        # flat {address: number}, for OSC out and OSCQuery
        self.info: dict = {"scene": 1, "scenes": 1, "names": []}
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_beat = 0
        self._errors_reported = 0
        self._shown: dict[int, str] = {}

    # --- lifecycle
    def start(self) -> "Rig":
        # input threads share the GIL with the render thread: with a 1 ms switch interval (Python's
        # default is 5 ms) the render thread never waits long for it while a flood is being parsed
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        self._thread = threading.Thread(target=self._housekeeping, name="rig", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for part in (self.osc_in, self.oscquery, self.osc_out, self.midi):
            if part is not None:
                try:
                    part.stop()
                except Exception as e:  # noqa: BLE001
                    log.error("stopping %s: %s", type(part).__name__, e)
        if self.recording is not None:
            self._close_recording(wait=True)
        if self._thread:
            self._thread.join(timeout=2)
        if self.osc_in is not None:
            log.info("osc: %s", self.osc_in.stats.summary())

    def _housekeeping(self) -> None:
        while not self._stop.wait(0.5):
            try:
                if self.mappings is not None:
                    self.mappings.check()
                if self.osc_in is not None:
                    problems = self.osc_in.stats.problems()
                    if problems > self._errors_reported:
                        self._say(f"osc: {self.osc_in.stats.summary()}", logging.WARNING)
                        self._errors_reported = problems
            except Exception as e:  # noqa: BLE001
                log.error("rig: %s", e)

    def _say(self, msg: str, level=logging.INFO) -> None:
        log.log(level, "%s", msg)
        self.messages.append((time.monotonic(), msg))
        del self.messages[:-6]

    # --- per frame, render thread
    def frame(self, engine, snap) -> None:
        try:
            self._events(engine, snap)
            self._midi_clock(engine.clock, snap)
        except Exception as e:  # noqa: BLE001 - a control surface never stops the frames
            self._say(f"rig: {type(e).__name__}: {e}", logging.ERROR)
        try:
            self._publish(engine, snap)
        except Exception as e:  # noqa: BLE001
            self._say(f"rig publish: {type(e).__name__}: {e}", logging.ERROR)

    def _events(self, engine, snap) -> None:
        ev, clock = snap.events, engine.clock
        for e in ev.get("clock.tempo", ()):
            bpm = _float(e.value)
            if bpm is not None and 20 <= bpm <= 400:
                clock.set_tempo(bpm)
        for e in ev.get("clock.tap", ()):
            bpm = clock.tap(e.t)
            if bpm:
                log.info("tap tempo: %.1f bpm", bpm)
        for e in ev.get("record.start", ()):
            self._start_recording(engine, e.value)
        if ev.get("record.stop"):
            if self.recording is not None and engine.recorder is self.recording:
                engine.recorder = None
                self._close_recording()
            else:
                self._say("record stop: not recording from OSC")

    def _midi_clock(self, clock, snap) -> None:
        ev, values, times = snap.events, snap.values, snap.times
        if ev.get("midi.clock.start"):
            clock.set_beat(0.0)
            clock.running = True
        if ev.get("midi.clock.continue"):
            clock.running = True
        if ev.get("midi.clock.stop"):
            clock.running = False
        t = times.get("midi.clock.bpm")
        now = time.monotonic()
        if t is None or now - t > 1.0:
            return  # no clock (or it stopped sending): the tempo stays where it is
        bpm = values["midi.clock.bpm"]
        if abs(bpm - clock.bpm) > 0.005:
            clock.set_tempo(bpm)
        if values.get("midi.clock.running") and "midi.clock.beat" in values:
            expected = values["midi.clock.beat"] + (now - times["midi.clock.beat"]) * bpm / 60.0
            err = expected - clock.beat
            clock.set_beat(expected if abs(err) > 0.25 else clock.beat + 0.1 * err)

    def _start_recording(self, engine, name) -> None:
        from engine.outputs.recorder import Recorder, RecorderError
        if engine.recorder is not None:
            self._say("record start: already recording")
            return
        stem = Path(str(name)).name if name else time.strftime("vj-%Y%m%d-%H%M%S")
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem) or "take"
        path = self.record_dir / (stem if stem.endswith(".mp4") else stem + ".mp4")
        try:
            rec = Recorder(path, *engine.chain.size, engine.fps)
        except (RecorderError, OSError, ValueError) as e:
            self._say(f"record start: {e}", logging.ERROR)
            return
        self.recording, self.recording_path = _Recording(rec), path
        engine.recorder = self.recording
        self._say(f"recording to {path}")

    def _close_recording(self, wait: bool = False) -> None:
        rec, path = self.recording, self.recording_path
        self.recording = None

        def close():
            try:
                rec.close()
                log.info("recording closed: %s (%d frames)", path, rec.frames_written)
            except Exception as e:  # noqa: BLE001
                log.error("recording %s: %s", path, e)
        if wait:
            close()
        else:  # draining the encoder takes a while: not on the render thread
            threading.Thread(target=close, name="record-close").start()

    def _publish(self, engine, snap) -> None:
        beat = snap.beat
        whole = math.floor(beat)
        st = {
            "/vj/frame": float(snap.frame), "/vj/fps": float(engine.stats.fps),
            "/vj/tempo": float(snap.bpm), "/vj/beat": float(beat), "/vj/beat/phase": beat % 1.0,
            "/vj/beat/trigger": 1.0 if whole != self._last_beat else 0.0,
            "/vj/bar": beat / snap.beats_per_bar, "/vj/bar/phase": (beat / snap.beats_per_bar) % 1.0,
            "/vj/record": 1.0 if engine.recorder is not None else 0.0,
        }
        self._last_beat = whole
        sl = engine.setlist
        if sl is not None:
            st["/vj/scene"] = float(sl.index + 1)
            self.info = {"scene": sl.index + 1, "scenes": len(sl.scenes), "names": [s.name for s in sl.scenes]}
        else:
            st["/vj/scene"] = 1.0
        for name, v in snap.values.items():
            if name.startswith("audio.") and isinstance(v, float) and math.isfinite(v):
                st["/vj/audio/" + name[6:]] = v
            elif name.startswith("latent.") and isinstance(v, float):
                st["/vj/latent/" + name[7:]] = v
        for name, p in self.params.published.items():
            st[f"/vj/param/{name}"] = p["norm"]
        self.state = st
        if self.osc_out is not None:
            self.osc_out.publish(st)

    # --- the namespace (OSCQuery), built from published state, on the OSCQuery thread
    def nodes(self) -> list[dict]:
        st, info = self.state, self.info

        def node(path, typ, access, desc, value=None, rng=None):
            n = {"FULL_PATH": path, "TYPE": typ, "ACCESS": access, "DESCRIPTION": desc}
            if value is not None:
                n["VALUE"] = [value]
            if rng is not None:
                n["RANGE"] = [rng]
            return n
        out = [
            {"FULL_PATH": "/vj", "ACCESS": 0, "DESCRIPTION": "vj engine"},
            node("/vj/scene", "i", 3, "current scene of the set (from 1); send a number or a name",
                 int(st.get("/vj/scene", 1)), {"MIN": 1, "MAX": max(1, info["scenes"])}),
            node("/vj/cue/next", "N", 2, "next scene"),
            node("/vj/cue/prev", "N", 2, "previous scene"),
            node("/vj/cue/goto", "i", 2, "go to scene n (from 1)", None, {"MIN": 1, "MAX": max(1, info["scenes"])}),
            node("/vj/tempo", "f", 3, "tempo, bpm", st.get("/vj/tempo", 120.0), {"MIN": 20.0, "MAX": 400.0}),
            node("/vj/tap", "N", 2, "tap tempo"),
            node("/vj/beat", "f", 1, "beats since start", st.get("/vj/beat", 0.0)),
            node("/vj/beat/phase", "f", 1, "position in the beat", st.get("/vj/beat/phase", 0.0), {"MIN": 0.0, "MAX": 1.0}),
            node("/vj/bar", "f", 1, "bars since start", st.get("/vj/bar", 0.0)),
            node("/vj/fps", "f", 1, "frames per second", st.get("/vj/fps", 0.0)),
            node("/vj/frame", "f", 1, "frame number", st.get("/vj/frame", 0.0)),
            node("/vj/record", "i", 1, "1 while recording", int(st.get("/vj/record", 0.0)), {"MIN": 0, "MAX": 1}),
            node("/vj/record/start", "N", 2, "start recording (optional file name argument)"),
            node("/vj/record/stop", "N", 2, "stop the recording started over OSC"),
            node("/vj/latent/key", "i", 3, "keyframe index for patches (latent.key)", int(st.get("/vj/latent/key", 0))),
            node("/vj/latent/seed", "i", 3, "seed for patches (latent.seed)", int(st.get("/vj/latent/seed", 0))),
            node("/vj/latent/position", "f", 3, "position for patches (latent.position)",
                 st.get("/vj/latent/position", 0.0), {"MIN": 0.0, "MAX": 1.0}),
            node("/vj/learn/cancel", "N", 2, "stop learning"),
        ]
        pub = self.params.published
        learn = node("/vj/learn", "s", 2, "arm MIDI/OSC learn for a parameter; the next control moved is bound")
        if pub:
            learn["RANGE"] = [{"VALS": sorted(pub)}]
        out.append(learn)
        out.append({"FULL_PATH": "/vj/param", "ACCESS": 0, "DESCRIPTION": "patch parameters, 0..1"})
        for name, p in sorted(pub.items()):
            desc = p["description"] or name
            out.append(node(f"/vj/param/{name}", "f", 3, f"{desc} (0..1 of {p['lo']:g}..{p['hi']:g})",
                            p["norm"], {"MIN": 0.0, "MAX": 1.0}))
            out[-1]["CLIPMODE"] = "both"
            out.append(node(f"/vj/param/{name}/raw", "f", 3, f"{desc}, in its own units",
                            p["value"], {"MIN": min(p["lo"], p["hi"]), "MAX": max(p["lo"], p["hi"])}))
        for path, v in sorted(st.items()):
            if path.startswith("/vj/audio/"):
                out.append(node(path, "f", 1, "audio feature " + path[10:], v))
        return out

    # --- reporting
    def hud_lines(self) -> list[str]:
        now = time.monotonic()
        recent = [m for t, m in self.messages if now - t < 5.0]
        lines, parts = [], []
        if self.osc_in is not None:
            parts.append(f"osc :{self.osc_in.port} {self.osc_in.stats.summary()}")
        if self.oscquery is not None:
            parts.append(f"oscquery :{self.oscquery.port}")
        if self.midi is not None:
            parts.append(self.midi.summary())
        if parts:
            # red for five seconds after new bad OSC packets were counted
            bad = any(m.startswith("osc: ") for m in recent)
            lines.append(("! " if bad else "") + "  ".join(parts))
        if self.params.learning:
            lines.append(f"LEARN {self.params.learning[0]}: move a control (MIDI or OSC)")
        # parameter and MIDI news (learnt bindings, devices plugged) show for five seconds
        for source in (self.params.messages, self.midi.events if self.midi is not None else []):
            if source and source[-1] is not self._shown.get(id(source)):
                self._shown[id(source)] = source[-1]
                if not source[-1].startswith("learn "):
                    self.messages.append((now, source[-1]))
                    del self.messages[:-6]
        recent = [m for t, m in self.messages if now - t < 5.0]
        notes = [m for m in recent if not m.startswith("osc: ")]
        return lines + [n[:110] for n in notes[-2:]]

    def status(self) -> str:
        parts = []
        if self.osc_in is not None:
            parts.append(f"osc {self.osc_in.stats.summary()}")
        if self.midi is not None:
            parts.append(self.midi.summary())
        return ", ".join(parts)


# ---------------------------------------------------------------- vj run
def mappings_path(args, setlist) -> Path:
    from engine.show.mappings import default_path
    if args.mappings:
        return Path(args.mappings)
    if setlist is not None:
        return default_path(setlist.path)
    return default_path(args.patch_path)


def start_rig(args, engine, setlist=None) -> Rig:
    """Everything the flags ask for; a part that cannot start is reported and the show goes on."""
    from engine.outputs.osc_out import OscOut
    from engine.show.mappings import MappingsFile
    from engine.signals.midi import MidiIn
    from engine.signals.osc import OscIn
    from engine.signals.oscquery import OscQueryServer

    params = engine.patches.params
    args.patch_path = getattr(args, "patch_path", None) or engine.patches.path
    mf = MappingsFile(mappings_path(args, setlist), params)
    mf.load()
    rig = Rig(engine.bus, params, mappings=mf, record_dir=args.record_dir)
    if not args.no_osc:
        allow = [a.strip() for item in args.osc_allow for a in item.split(",") if a.strip()] or None
        try:
            rig.osc_in = OscIn(engine.bus, args.osc_port, args.osc_bind, allow=allow).start()
            log.info("OSC in on %s:%d%s", args.osc_bind, rig.osc_in.port,
                     f" from {', '.join(allow)} only" if allow else "")
        except OSError as e:
            log.error("OSC in not started (%s:%d: %s); running without it", args.osc_bind, args.osc_port, e)
    if rig.osc_in is not None and not args.no_oscquery:
        try:
            rig.oscquery = OscQueryServer(rig.nodes, rig.osc_in.handler.datagram, args.oscquery_port,
                                          args.osc_bind, osc_port=rig.osc_in.port).start()
            log.info("OSCQuery on http://%s:%d/", args.osc_bind, rig.oscquery.port)
        except OSError as e:
            log.error("OSCQuery not started (port %d: %s)", args.oscquery_port, e)
    if args.osc_out:
        try:
            rig.osc_out = OscOut(args.osc_out, rate=args.osc_out_rate, bundle=args.osc_out_bundle).start()
            log.info("OSC out to %s%s", ", ".join(f"{h}:{p}" for h, p in rig.osc_out.destinations),
                     " (bundles)" if args.osc_out_bundle else "")
        except ValueError as e:
            log.error("OSC out not started: %s", e)
    if not args.no_midi:
        rig.midi = MidiIn(engine.bus, names=args.midi_in).start()
    if args.learn:
        engine.bus.emit("param.learn", args.learn)
    engine.rig = rig
    return rig.start()


def doctor_lines() -> tuple[bool, list[str]]:
    """`vj doctor`: can the rig's ports open, is MIDI there."""
    import socket
    lines = []
    ok = True
    for name, port, kind in (("osc", DEFAULT_OSC_PORT, socket.SOCK_DGRAM),
                             ("oscquery", DEFAULT_OSCQUERY_PORT, socket.SOCK_STREAM)):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
            lines.append(f"{name:10s} port {port} free on 127.0.0.1")
        except OSError as e:
            lines.append(f"{name:10s} port {port} busy ({e.strerror}); use --{name}-port")
        finally:
            s.close()
    try:
        import websockets
        lines.append(f"{'websockets':10s} {websockets.__version__} (OSCQuery LISTEN)")
    except ImportError:
        ok = False
        lines.append(f"{'websockets':10s} MISSING: pip install websockets")
    from engine.signals.midi import MidoBackend
    try:
        names = MidoBackend().get_input_names()
        lines.append(f"{'midi':10s} {len(names)} input{'' if len(names) == 1 else 's'}"
                     + (f": {', '.join(names)}" if names else ""))
    except Exception as e:  # noqa: BLE001
        lines.append(f"{'midi':10s} unavailable ({type(e).__name__}: {str(e)[:80]})")
    return ok, lines
