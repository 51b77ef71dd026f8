"""Patch parameters, bindings, soft takeover, learn and the mappings file."""
import os

import numpy as np
import pytest

from engine.patching.api import PatchContext
from engine.patching.params import Binding, ParamSet, relative_delta
from engine.show import mappings
from engine.signals.bus import SignalBus


class Info:
    z_dim = 8


class Frames:
    """Drive a ParamSet frame by frame from a bus, with a fake monotonic time."""

    def __init__(self, params):
        self.bus, self.params, self.t, self.k = SignalBus(), params, 100.0, 0

    def __call__(self, dt=1 / 30, **signals):
        self.t += dt
        for name, v in signals.items():
            self.bus.set(name.replace("__", "."), v, t=self.t)
        snap = self.bus.snapshot(time=self.t, dt=dt, frame=self.k)
        self.k += 1
        self.params.frame(snap)
        return snap

    def emit(self, name, value):
        self.bus.emit(name, value, t=self.t + 1e-6)


def test_param_declared_from_a_patch_context():
    ps = ParamSet()
    p = PatchContext(Info, params=ps)
    assert p.param("speed", default=0.5, lo=0, hi=2, smooth=0.1) == 0.5
    assert ps.published["speed"]["norm"] == pytest.approx(0.25)
    # a patch without a shared set still gets working parameters (vj render)
    assert PatchContext(Info).param("x", default=3, lo=0, hi=10) == 3
    with pytest.raises(ValueError):
        p.param("Bad Name")
    with pytest.raises(ValueError):
        p.param("y", lo=1, hi=1)


def test_osc_set_normalised_and_raw_with_smoothing():
    ps = ParamSet()
    ps.declare("speed", default=0.0, lo=0, hi=2, smooth=0.1)
    f = Frames(ps)
    f.emit("param.set", ("speed", 0.5, "norm"))
    f()
    v1 = ps.params["speed"].value
    assert 0 < v1 < 1.0 and ps.params["speed"].target == 1.0
    for _ in range(60):
        f()
    assert ps.params["speed"].value == pytest.approx(1.0, abs=1e-3)
    f.emit("param.set", ("speed", "x", "raw"))
    f()
    f.emit("param.set", ("speed", 1.0, "raw"))
    f.emit("param.set", ("speed", 1.5, "raw"))  # a burst: the last one counts
    f.emit("param.set", ("nope", 0.2, "norm"))
    f()
    assert ps.params["speed"].target == 1.5
    ps.declare("nope", lo=0, hi=10)  # declared after it was set: takes the early value
    assert ps.params["nope"].value == 2.0
    assert any("no such parameter" in m for m in ps.messages)


def test_binding_range_curve_invert():
    b = Binding("midi.cc.1", "x", range=(0.2, 0.6), curve="exp", invert=True)
    assert b.map(0.2) == 1.0 and b.map(0.6) == 0.0 and b.map(0.4) == pytest.approx(1 - 0.25)
    assert Binding("osc./xy[1]", "x").read(np.array([0.1, 0.7], np.float32)) == pytest.approx(0.7)
    assert Binding("osc./s", "x").read("hello") is None
    with pytest.raises(ValueError):
        Binding("a", "b", takeover="grab")


def test_jump_binding_follows_on_change_and_last_writer_wins():
    ps = ParamSet([Binding("midi.ch1.cc.7", "level", range=(0, 1))])
    ps.declare("level", default=0.0, lo=0, hi=10)
    f = Frames(ps)
    f(midi__ch1__cc__7=0.5)
    assert ps.params["level"].value == 5.0
    f.emit("param.set", ("level", 0.9, "norm"))
    f()
    f()  # the control did not move: the OSC value stays
    assert ps.params["level"].value == 9.0
    f(midi__ch1__cc__7=0.2)
    assert ps.params["level"].value == 2.0


def test_pickup_waits_until_the_control_crosses_the_value():
    ps = ParamSet([Binding("midi.ch1.cc.7", "level", takeover="pickup")])
    ps.declare("level", default=0.5)
    f = Frames(ps)
    f(midi__ch1__cc__7=0.1)
    f(midi__ch1__cc__7=0.3)
    assert ps.params["level"].value == 0.5  # not picked up yet
    f(midi__ch1__cc__7=0.6)                 # crossed 0.5: picked up
    assert ps.params["level"].value == pytest.approx(0.6)
    f(midi__ch1__cc__7=0.7)
    assert ps.params["level"].value == pytest.approx(0.7)
    f.emit("param.set", ("level", 0.2, "norm"))  # set elsewhere (OSC, a scene)
    f()
    f(midi__ch1__cc__7=0.72)
    assert ps.params["level"].value == pytest.approx(0.2)  # the knob lost it
    f(midi__ch1__cc__7=0.21)                # within the pick-up window
    assert ps.params["level"].value == pytest.approx(0.21)


def test_scale_takeover_converges():
    ps = ParamSet([Binding("midi.ch1.cc.7", "level", takeover="scale")])
    ps.declare("level", default=0.8)
    f = Frames(ps)
    f(midi__ch1__cc__7=0.2)
    f(midi__ch1__cc__7=0.6)  # knob half-way up its remaining travel: value half-way to 1
    assert ps.params["level"].value == pytest.approx(0.8 + 0.4 * 0.2 / 0.8)
    for v in (0.8, 0.95, 1.0):
        f(midi__ch1__cc__7=v)
    assert ps.params["level"].value == pytest.approx(1.0)


def test_relative_encoders_both_styles():
    assert [relative_delta(v, "relative") for v in (1, 3, 127, 125, 64)] == [1, 3, -1, -3, -64]
    assert [relative_delta(v, "relative-offset") for v in (65, 63, 64, 70)] == [1, -1, 0, 6]
    ps = ParamSet([Binding("midi.ch1.cc.16", "a", mode="relative", step=0.01),
                   Binding("midi.ch1.cc.17", "b", mode="relative-offset", step=0.01)])
    ps.declare("a", default=0.5)
    ps.declare("b", default=0.5)
    f = Frames(ps)
    for v in (1, 1, 1, 127):
        f.emit("midi.ch1.cc.16", v)
    for v in (63, 63, 62):
        f.emit("midi.ch1.cc.17", v)
    f()
    assert ps.params["a"].value == pytest.approx(0.52)
    assert ps.params["b"].value == pytest.approx(0.46)


def test_learn_binds_the_next_control_and_saves(tmp_path):
    path = tmp_path / "show.mappings.toml"
    ps = ParamSet()
    mf = mappings.MappingsFile(path, ps)
    ps.on_learned = mf.save  # synchronous for the test
    ps.declare("speed", default=0.5)
    f = Frames(ps)
    f(midi__ch1__cc__3=0.9)  # moved before arming: ignored
    f.emit("param.learn", "speed")
    f()
    f(midi__ch1__cc__1=0.3, midi__cc__1=0.3, midi__ch1__cc__33=0.1, midi__ch1__cc14__1=0.31)
    f()
    assert [(b.source, b.param) for b in ps.bindings] == [("midi.ch1.cc14.1", "speed")]
    assert ps.learning is None
    f(midi__ch1__cc14__1=0.8)
    assert ps.params["speed"].value == pytest.approx(0.8)
    loaded = mappings.parse(path.read_text())
    assert loaded[0].source == "midi.ch1.cc14.1" and loaded[0].takeover == "pickup"
    # the key (no name) cycles through the parameters
    f.emit("param.learn", 1.0)
    f()
    assert ps.learning[0] == "speed"


def test_learn_an_osc_list_takes_its_first_element():
    ps = ParamSet()
    ps.declare("x")
    f = Frames(ps)
    f.emit("param.learn", "x")
    f()
    f(**{"osc./max/xy": [0.25, 0.75]})
    f()
    assert ps.bindings[0].source == "osc./max/xy[0]"


def test_mappings_file_round_trip_atomic_and_live_edit(tmp_path):
    path = tmp_path / "set.mappings.toml"
    bs = [Binding("midi.ch2.cc.7", "speed", range=(0.1, 0.9), curve=2.0, invert=True, smooth=0.2,
                  takeover="scale"),
          Binding('osc./weird "name"', "x", mode="relative-offset")]
    mappings.save(path, bs)
    assert [b.saved() for b in mappings.parse(path.read_text())] == [b.saved() for b in bs]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    ps = ParamSet()
    mf = mappings.MappingsFile(path, ps)
    assert mf.load()
    ps.declare("speed")
    Frames(ps)()
    assert len(ps.bindings) == 2
    assert not mf.check()
    path.write_text(path.read_text() + '\n[[binding]]\nsource = "audio.low"\nparam = "speed"\n')
    assert mf.check()
    Frames(ps)()
    assert len(ps.bindings) == 3
    path.write_text("[[binding]]\nsource = \n")  # not TOML: the previous bindings stay
    assert not mf.check() and mf.error
    Frames(ps)()
    assert len(ps.bindings) == 3
    assert mappings.default_path("sets/demo.toml").name == "demo.mappings.toml"
