"""The control plane's stages on the render thread: tempo sources by priority, publishing,
the namespace as OSCQuery nodes, the HUD's control lines and doctor."""
from types import SimpleNamespace

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from conftest import run_vj
from engine.control.clock_sync import HOLD, ClockSync
from engine.control.dispatch import Dispatcher
from engine.control.publish import Publisher
from engine.patching.params import ParamSet
from engine.signals.bus import SignalBus
from engine.signals.clock import Clock
from engine.signals.osc import OscHandler


def frame(snap):
    return SimpleNamespace(snap=snap, status={})


def osc(address, *args):
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def test_events_reach_the_clock_and_state_is_published():
    bus, params = SignalBus(), ParamSet()
    params.declare("speed", default=1.0, lo=0, hi=2, description="walk speed")
    pub = Publisher(params=params, stats=SimpleNamespace(fps=29.5))
    h = OscHandler(bus, control=Dispatcher(bus, status=pub.get).dispatch)
    clock = Clock(120.0)
    sync = ClockSync(clock)
    h.datagram(osc("/vj/tempo", 133.0))
    bus.set("audio.low", 0.25)
    bus.set("latent.seed", 7.0)
    f = frame(bus.snapshot(beat=4.5, bpm=120.0, frame=3))
    for stage in (sync, SimpleNamespace(run=lambda f: params.frame(f.snap)), pub):
        stage.run(f)
    assert clock.bpm == 133.0
    st = pub.status
    assert st["beat"] == 4.5 and st["beat_phase"] == 0.5 and st["audio"]["low"] == 0.25
    assert st["params"]["speed"]["norm"] == 0.5 and st["latent_seed"] == 7.0
    nodes = {n["FULL_PATH"]: n for n in pub.nodes()}
    assert nodes["/vj/param/speed/raw"]["RANGE"] == [{"MIN": 0.0, "MAX": 2.0}]
    assert nodes["/vj/learn"]["RANGE"][0]["VALS"][0] == "speed"
    assert nodes["/vj/audio/low"]["ACCESS"] == 1 and nodes["/vj/audio/low"]["VALUE"] == [0.25]
    assert nodes["/vj/tempo"]["VALUE"] == [133.0] and nodes["/vj/latent/seed"]["VALUE"] == [7]
    # taps from the keys
    bus.emit("clock.tap", 1.0, t=10.0, source="keys")
    bus.emit("clock.tap", 1.0, t=10.5, source="keys")
    sync.run(frame(bus.snapshot()))
    assert clock.bpm == pytest.approx(120.0)


def test_tempo_priority_keys_over_osc_over_midi_clock():
    bus, clock, now = SignalBus(), Clock(100.0), [1000.0]
    sync = ClockSync(clock, now=lambda: now[0])

    def run():
        sync.run(frame(bus.snapshot()))
    bus.emit("clock.tempo", 90.0, source="osc")
    run()
    assert clock.bpm == 90.0 and sync.owner == "osc"
    # a MIDI clock keeps sending 128 bpm: OSC holds the tempo for HOLD seconds, then MIDI takes it
    bus.set("midi.clock.bpm", 128.0, t=now[0])
    run()
    assert clock.bpm == 90.0 and sync.counts["overruled"] == 1
    now[0] += HOLD + 0.1
    bus.set("midi.clock.bpm", 128.0, t=now[0])
    run()
    assert clock.bpm == 128.0 and sync.owner == "midi"
    # OSC now loses against the live MIDI clock? No: OSC ranks above MIDI and takes over at once
    bus.emit("clock.tempo", 95.0, source="ws")
    run()
    assert clock.bpm == 95.0 and sync.owner == "osc"
    # keys rank above OSC; OSC is overruled while the tap holds, in the same frame too
    bus.emit("clock.tempo", 70.0, source="keys")
    bus.emit("clock.tempo", 150.0, source="osc")
    run()
    assert clock.bpm == 70.0 and sync.owner == "keys"


def test_a_lone_tap_holds_nothing_and_a_bundle_of_taps_is_one_tap():
    bus, clock, now = SignalBus(), Clock(100.0), [1000.0]
    sync = ClockSync(clock, now=lambda: now[0])

    def run():
        sync.run(frame(bus.snapshot()))
    bus.emit("clock.tap", 1.0, t=5.0, source="keys")     # a stray Space press
    run()
    now[0] += 3.0
    bus.emit("clock.tempo", 128.0, source="osc")
    run()
    assert clock.bpm == 128.0 and sync.counts["overruled"] == 0
    # one OSC bundle holding three taps: they share a time stamp; one tap, no division by zero
    for _ in range(3):
        bus.emit("clock.tap", 1.0, t=20.0, source="keys")
    run()
    assert clock.bpm == 128.0
    bus.emit("clock.tap", 1.0, t=20.5, source="keys")
    run()
    assert clock.bpm == pytest.approx(120.0) and sync.owner == "keys"


def test_control_lines_on_the_hud(tmp_path):
    from engine.render.gl import headless_context
    from engine.session import ControlOptions, Options, Session
    patch = tmp_path / "p.py"
    patch.write_text("def frame(p, s):\n    p.param('x')\n    return p.controls(z=p.seed(1))\n")
    ctx = headless_context()
    try:
        with Session(Options(patch=patch, size=(32, 32), live=False, ctx=ctx,
                             control=ControlOptions(osc_port=0, oscquery_port=None, midi=None,
                                                    mappings=tmp_path / "m.toml"))) as s:
            s.engine.render_frame()
            s.engine.flush()  # the frame is finished (published): its parameter is known
            s.osc_in.stats["messages"] += 12
            s.osc_in.stats["malformed"] += 2
            s.dispatcher.dispatch("/vj/learn", ("x",))
            s.engine.render_frame()
            lines = s.board.control_lines()
            assert lines[0] == f"osc :{s.osc_in.port} 12 msgs (2 malformed)"
            assert "LEARN x: move a control (MIDI or OSC)" in lines
            assert "osc 12 msgs (2 malformed), 1 commands" in s.board.status_line()
    finally:
        ctx.release()


def test_doctor_reports_the_control_plane(env_no_display):
    proc = run_vj("doctor", env=env_no_display, check=False)
    assert "osc" in proc.stdout and "oscquery" in proc.stdout and "websockets" in proc.stdout
    assert "midi" in proc.stdout


def test_midi_pad_and_fader_bound_to_engine_commands(tmp_path):
    """A mappings file binds a pad to /vj/cue/next and a fader to /vj/tempo: real MIDI bytes
    move the set and the tempo, through the dispatcher (source midi)."""
    from engine.render.gl import headless_context
    from engine.session import ControlOptions, Options, Session
    from engine.show.sets import SetList
    from engine.signals.midi import MidiDecoder
    (tmp_path / "p.py").write_text("def frame(p, s):\n    return p.controls(z=p.seed(1))\n")
    (tmp_path / "show.toml").write_text('[[scene]]\npatch = "p.py"\n[[scene]]\npatch = "p.py"\n')
    (tmp_path / "show.mappings.toml").write_text(
        '[[binding]]\nsource = "midi.ch10.note.36"\nparam = "/vj/cue/next"\n\n'
        '[[binding]]\nsource = "midi.ch1.cc.7"\nparam = "/vj/tempo"\n')
    sl = SetList(tmp_path / "show.toml")
    ctx = headless_context()
    try:
        with Session(Options(patch=sl.scene.patch, setlist=sl, size=(32, 32), live=False, ctx=ctx,
                             control=ControlOptions(osc_port=None, oscquery_port=None, midi=None))) as s:
            midi = MidiDecoder(s.bus, "test")
            s.engine.render_frame()
            midi.feed_bytes(bytes([0x99, 36, 30]))          # a soft hit on a pad, channel 10
            for _ in range(3):
                s.engine.render_frame()
            assert sl.index == 1
            midi.feed_bytes(bytes([0x89, 36, 0]))           # release: nothing
            midi.feed_bytes(bytes([0xB0, 7, 127]))          # fader all the way up: 400 bpm
            for _ in range(3):
                s.engine.render_frame()
            assert sl.index == 1 and s.clock.bpm == pytest.approx(400.0)
            assert s.dispatcher.stats["accepted"] == 2 and s.dispatcher.problems() == 0
    finally:
        ctx.release()


def test_the_session_gives_the_websocket_the_udp_rules(tmp_path):
    """--osc-allow and --oscquery-origin reach the OSCQuery WebSocket."""
    import socket

    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from engine.render.gl import headless_context
    from engine.session import ControlOptions, Options, Session
    from test_rig_run import free_port
    (tmp_path / "p.py").write_text("def frame(p, s):\n    return p.controls(z=p.seed(1))\n")
    ctx = headless_context()

    def session(allow):
        return Session(Options(patch=tmp_path / "p.py", size=(32, 32), live=False, ctx=ctx, control=ControlOptions(
            osc_port=0, oscquery_port=free_port(socket.SOCK_STREAM), midi=None, osc_allow=allow,
            oscquery_origins=["http://localhost:8080"], mappings=tmp_path / "m.toml")))
    try:
        with session(["127.0.0.1"]) as s:
            url = f"ws://127.0.0.1:{s.oscquery.port}/"
            with connect(url, origin="http://localhost:8080"):
                pass
            with connect(url):          # no Origin: TouchDesigner, Max, scripts
                pass
            with pytest.raises(InvalidStatus):
                connect(url, origin="http://evil.example")
            assert s.oscquery.stats["refused_origin"] == 1
        with session(["192.0.2.7"]) as s:
            with pytest.raises(InvalidStatus):
                connect(f"ws://127.0.0.1:{s.oscquery.port}/")
            assert s.oscquery.stats["refused_peer"] == 1
    finally:
        ctx.release()


def test_tempo_sources_seed_the_audio_beat_tracker():
    """The set's tempo (a hint, once), /vj/tempo over OSC, taps and MIDI clock all reach
    the audio's beat tracker through the one clock sync; a tap brings its time."""
    bus, clock, now = SignalBus(), Clock(128.0), [1000.0]
    seeds = []
    sync = ClockSync(clock, now=lambda: now[0], seed=lambda bpm, t, w: seeds.append((round(bpm, 2), t, w)))
    h = OscHandler(bus, control=Dispatcher(bus).dispatch)
    sync.run(frame(bus.snapshot()))
    assert seeds == [(128.0, None, 0.3)]                   # the set's bpm: a hint
    h.datagram(osc("/vj/tempo", 96.0))
    sync.run(frame(bus.snapshot()))
    assert seeds[-1] == (96.0, None, 1.0)
    now[0] += 10.0
    bus.emit("clock.tap", 1.0, t=1010.0, source="keys")
    bus.emit("clock.tap", 1.0, t=1010.5, source="keys")
    sync.run(frame(bus.snapshot()))
    assert seeds[-1] == (120.0, 1010.5, 1.0)              # tempo and the tap's time: the phase
    n = len(seeds)
    sync.run(frame(bus.snapshot()))
    assert len(seeds) == n                                # nothing new, nothing sent


def test_a_refused_seed_never_stops_the_clock():
    def refuse(bpm, t, w):
        raise ValueError("no")
    clock = Clock(120.0)
    sync = ClockSync(clock, seed=refuse)
    sync.run(frame(SignalBus().snapshot()))
    assert clock.bpm == 120.0
