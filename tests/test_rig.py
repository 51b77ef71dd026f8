"""The rig on the render thread: tempo/tap events, publishing, the namespace, HUD and doctor."""
from types import SimpleNamespace

import pytest

from conftest import run_vj
from engine.patching.params import ParamSet
from engine.rig import Rig
from engine.signals.bus import SignalBus
from engine.signals.clock import Clock
from engine.signals.osc import OscHandler


def fake_engine():
    return SimpleNamespace(clock=Clock(120.0), recorder=None, setlist=None, fps=30.0,
                           stats=SimpleNamespace(fps=29.5), chain=SimpleNamespace(size=(32, 32)))


def test_events_reach_the_clock_and_state_is_published():
    bus, params = SignalBus(), ParamSet()
    params.declare("speed", default=1.0, lo=0, hi=2, description="walk speed")
    rig, eng = Rig(bus, params), fake_engine()
    h = OscHandler(bus)
    from pythonosc.osc_message_builder import OscMessageBuilder
    b = OscMessageBuilder("/vj/tempo")
    b.add_arg(133.0)
    h.datagram(b.build().dgram)
    bus.set("audio.low", 0.25)
    bus.set("latent.seed", 7.0)
    snap = bus.snapshot(beat=4.5, bpm=120.0, frame=3)
    rig.frame(eng, snap)
    params.frame(snap)
    assert eng.clock.bpm == 133.0
    st = rig.state
    assert st["/vj/beat"] == 4.5 and st["/vj/beat/phase"] == 0.5 and st["/vj/audio/low"] == 0.25
    assert st["/vj/param/speed"] == 0.5 and st["/vj/latent/seed"] == 7.0
    assert all(isinstance(v, float) for v in st.values())
    nodes = {n["FULL_PATH"]: n for n in rig.nodes()}
    assert nodes["/vj/param/speed/raw"]["RANGE"] == [{"MIN": 0.0, "MAX": 2.0}]
    assert nodes["/vj/learn"]["RANGE"] == [{"VALS": ["speed"]}]
    assert nodes["/vj/audio/low"]["ACCESS"] == 1
    bus.emit("clock.tap", 1.0, t=10.0)
    bus.emit("clock.tap", 1.0, t=10.5)
    rig.frame(eng, bus.snapshot())
    assert eng.clock.bpm == pytest.approx(120.0)
    bus.emit("record.stop")
    rig.frame(eng, bus.snapshot())
    assert any("not recording" in m for _, m in rig.messages)


def test_hud_and_status_lines():
    bus, params = SignalBus(), ParamSet()
    params.declare("x")
    rig = Rig(bus, params, osc_in=SimpleNamespace(port=9000, stats=OscHandler(bus).stats))
    rig.osc_in.stats["messages"] += 12
    rig.osc_in.stats["malformed"] += 2
    bus.emit("param.learn", "x")
    params.frame(bus.snapshot())
    lines = rig.hud_lines()
    assert lines[0] == "osc :9000 12 msgs (2 malformed)"
    assert "LEARN x: move a control (MIDI or OSC)" in lines and len(lines) == 2
    assert rig.status() == "osc 12 msgs (2 malformed)"


def test_doctor_reports_the_rig(env_no_display):
    proc = run_vj("doctor", env=env_no_display, check=False)
    assert "osc" in proc.stdout and "oscquery" in proc.stdout and "websockets" in proc.stdout
    assert "midi" in proc.stdout
