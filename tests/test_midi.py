"""MIDI in from real MIDI bytes (mido parsing, in-process ports; no ALSA needed)."""
import random
import time
from types import SimpleNamespace

import mido
import pytest

from engine.patching.params import Binding, ParamSet
from engine.control.clock_sync import ClockSync
from engine.signals.bus import SignalBus
from engine.signals.clock import Clock
from engine.signals.midi import MidiDecoder, MidiIn


class Port:
    """An in-process input port: bytes in, parsed by mido, delivered to the callback."""

    def __init__(self, name, callback):
        self.name, self.callback, self.closed = name, callback, False

    def send_bytes(self, data: bytes):
        for msg in mido.parse_all(data):
            self.callback(msg)

    def close(self):
        self.closed = True


class Backend:
    def __init__(self):
        self.names, self.opened, self.fail = [], {}, None

    def get_input_names(self):
        if self.fail:
            raise SystemError(self.fail)
        return list(self.names)

    def open_input(self, name, callback):
        self.opened[name] = Port(name, callback)
        return self.opened[name]


def decoder():
    bus = SignalBus()
    return bus, MidiDecoder(bus, "test")


def test_cc_per_channel_and_raw_events():
    bus, d = decoder()
    d.feed_bytes(bytes([0xB0, 7, 100, 0xB1, 7, 27]))
    s = bus.snapshot()
    assert s["midi.ch1.cc.7"] == pytest.approx(100 / 127) and s["midi.ch2.cc.7"] == pytest.approx(27 / 127)
    assert s["midi.cc.7"] == pytest.approx(27 / 127)  # the short name follows the latest, any channel
    assert s.events_of("midi.ch1.cc.7") == (100,) and s.events_of("midi.cc.7") == (100, 27)


def test_14_bit_cc_pairs():
    bus, d = decoder()
    d.feed_bytes(bytes([0xB0, 1, 64, 0xB0, 33, 0]))
    assert bus.peek("midi.ch1.cc14.1") == pytest.approx((64 << 7) / 16383)
    d.feed_bytes(bytes([0xB0, 1, 127, 0xB0, 33, 127]))
    assert bus.peek("midi.cc14.1") == pytest.approx(1.0)
    d.feed_bytes(bytes([0xB0, 1, 3, 0xB0, 33, 100]))
    assert bus.peek("midi.ch1.cc14.1") == pytest.approx((3 * 128 + 100) / 16383)
    assert bus.peek("midi.ch1.cc.1") == pytest.approx(3 / 127)  # the 7-bit view stays
    # a plain 7-bit controller never gets a 14-bit channel
    d.feed_bytes(bytes([0xB0, 2, 10, 0xB0, 2, 11]))
    assert bus.peek("midi.ch1.cc14.2") is None


def test_relative_encoders_both_styles_drive_parameters():
    bus, d = decoder()
    ps = ParamSet([Binding("midi.ch1.cc.16", "a", mode="relative", step=0.01),
                   Binding("midi.ch1.cc.17", "b", mode="relative-offset", step=0.01)])
    ps.declare("a", default=0.5)
    ps.declare("b", default=0.5)
    d.feed_bytes(bytes([0xB0, 16, 1] * 5 + [0xB0, 16, 127] + [0xB0, 16, 126]))   # +5 -1 -2
    d.feed_bytes(bytes([0xB0, 17, 65] * 3 + [0xB0, 17, 60]))                     # +3 -4
    ps.frame(bus.snapshot(dt=1 / 30))
    assert ps.params["a"].value == pytest.approx(0.52)
    assert ps.params["b"].value == pytest.approx(0.49)


def test_notes_events_and_held_state():
    bus, d = decoder()
    d.feed_bytes(bytes([0x90, 36, 127, 0x99, 38, 64]))
    s = bus.snapshot()
    assert s.events_of("midi.note.36") == (1.0,) and s["midi.note.36"] == 1.0
    assert s["midi.ch10.note.38"] == pytest.approx(64 / 127)
    d.feed_bytes(bytes([0x80, 36, 0, 0x99, 38, 0]))  # note off, and note on with velocity 0
    s = bus.snapshot()
    assert s["midi.note.36"] == 0.0 and s["midi.note.38"] == 0.0
    assert s.fired("midi.note.36.off") and s.fired("midi.ch10.note.38.off")


def test_pitch_bend_program_change_pressure():
    bus, d = decoder()
    d.feed_bytes(bytes([0xE0, 0, 64]))
    assert bus.peek("midi.pitchbend") == 0.0
    d.feed_bytes(bytes([0xE0, 127, 127]))
    assert bus.peek("midi.pitchbend") == pytest.approx(1.0)
    d.feed_bytes(bytes([0xE2, 0, 0]))
    assert bus.peek("midi.ch3.pitchbend") == pytest.approx(-1.0)
    d.feed_bytes(bytes([0xC0, 5, 0xD0, 127]))
    s = bus.snapshot()
    assert s["midi.program"] == 5.0 and s.events_of("midi.program") == (5,) and s["midi.pressure"] == 1.0


def clock_bytes(d, bpm, beats, start_t):
    dt = 60.0 / (bpm * 24)
    for k in range(int(beats * 24)):
        d.feed_bytes(b"\xf8", t=start_t + k * dt)
    return start_t + int(beats * 24) * dt


def test_midi_clock_24_ppqn_gives_the_tempo_and_drives_the_engine_clock():
    bus, d = decoder()
    now = time.monotonic()
    d.feed_bytes(b"\xfa", t=now - 2.0)  # Start
    clock_bytes(d, 128.0, 4, now - 60.0 / 128 * 4)
    assert bus.peek("midi.clock.bpm") == pytest.approx(128.0, abs=0.01)
    assert bus.peek("midi.clock.beat") == pytest.approx(4.0 - 1 / 24)
    # jittery ticks (+-1 ms) still average to the tempo
    bus2, d2 = decoder()
    rng = random.Random(1)
    dt = 60.0 / (93.0 * 24)
    for k in range(96):
        d2.feed_bytes(b"\xf8", t=k * dt + rng.uniform(-0.001, 0.001))
    assert bus2.peek("midi.clock.bpm") == pytest.approx(93.0, abs=0.5)

    clock = Clock(bpm=120.0)
    clock.advance(0.0)
    clock.set_beat(17.3)
    snap = bus.snapshot(dt=1 / 30)
    sync(clock, snap)
    assert clock.bpm == pytest.approx(128.0, abs=0.01)
    assert clock.beat == pytest.approx(4.0, abs=0.2)  # Start put the beat at the MIDI clock's count
    d.feed_bytes(b"\xfc")  # Stop: the beat holds
    sync(clock, bus.snapshot())
    b = clock.beat
    clock.advance(1.0)
    assert not clock.running and clock.beat == b
    d.feed_bytes(b"\xfb")  # Continue
    sync(clock, bus.snapshot())
    clock.advance(2.0)
    assert clock.running and clock.beat > b


def sync(clock, snap):
    """The clock-sync stage of one frame (engine/control/clock_sync.py)."""
    ClockSync(clock).run(SimpleNamespace(snap=snap, status={}))


def test_stale_clock_leaves_the_tempo_alone():
    bus, d = decoder()
    clock_bytes(d, 140.0, 2, time.monotonic() - 10.0)
    clock = Clock(bpm=120.0)
    sync(clock, bus.snapshot())
    assert clock.bpm == 120.0


def test_learn_and_soft_takeover_from_midi_bytes():
    bus, d = decoder()
    ps = ParamSet()
    ps.declare("speed", default=0.5)
    bus.emit("param.learn", "speed")
    ps.frame(bus.snapshot(dt=1 / 30))
    d.feed_bytes(bytes([0xB3, 74, 10]))   # channel 4, CC 74
    ps.frame(bus.snapshot(dt=1 / 30))
    ps.frame(bus.snapshot(dt=1 / 30))
    assert [(b.source, b.param, b.takeover) for b in ps.bindings] == [("midi.ch4.cc.74", "speed", "pickup")]
    d.feed_bytes(bytes([0xB3, 74, 127]))
    ps.frame(bus.snapshot(dt=1 / 30))
    assert ps.params["speed"].value == 1.0
    bus.emit("param.set", ("speed", 0.5, "norm"))  # e.g. from OSC: the knob must pick it up again
    ps.frame(bus.snapshot(dt=1 / 30))
    for v in (120, 100, 80):               # 0.94, 0.79, 0.63: above 0.5, not yet
        d.feed_bytes(bytes([0xB3, 74, v]))
        ps.frame(bus.snapshot(dt=1 / 30))
        assert ps.params["speed"].value == 0.5
    d.feed_bytes(bytes([0xB3, 74, 50]))    # crossed
    ps.frame(bus.snapshot(dt=1 / 30))
    assert ps.params["speed"].value == pytest.approx(50 / 127)


def test_relative_learn():
    bus, d = decoder()
    ps = ParamSet()
    ps.declare("x", default=0.5)
    bus.emit("param.learn", ("x", "relative"))
    ps.frame(bus.snapshot(dt=1 / 30))
    d.feed_bytes(bytes([0xB0, 20, 1]))
    ps.frame(bus.snapshot(dt=1 / 30))
    ps.frame(bus.snapshot(dt=1 / 30))
    assert ps.bindings[0].source == "midi.ch1.cc.20" and ps.bindings[0].mode == "relative"


def test_hot_plug_connect_disconnect_reconnect():
    bus, be = SignalBus(), Backend()
    be.fail = "MidiInAlsa::initialize: error creating ALSA sequencer client object."
    m = MidiIn(bus, backend=be)
    m.scan()
    m.scan()
    assert m.unavailable and sum("unavailable" in e for e in m.events) == 1  # said once
    be.fail = None
    be.names = ["Midi Through:Midi Through Port-0 14:0"]
    m.scan()
    assert not m.ports  # ALSA's loopback port is not a controller
    be.names.append("nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0")
    m.scan()
    port = be.opened["nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0"]
    port.send_bytes(bytes([0xB0, 0, 127]))
    assert bus.peek("midi.cc.0") == 1.0
    be.names.pop()
    m.scan()
    assert port.closed and not m.ports and "disconnected" in m.events[-1]
    be.names.append("nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0")
    m.scan()
    be.opened["nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0"].send_bytes(bytes([0xB0, 0, 0]))
    assert bus.peek("midi.cc.0") == 0.0 and "connected" in m.events[-1]
    named = MidiIn(bus, names=["launch"], backend=be)
    be.names.append("Launch Control XL 24:0")
    named.scan()
    assert list(named.ports) == ["Launch Control XL 24:0"]


def test_watcher_thread_picks_up_a_late_device():
    bus, be = SignalBus(), Backend()
    m = MidiIn(bus, backend=be, poll=0.05).start()
    try:
        be.names.append("late")
        deadline = time.monotonic() + 5
        while "late" not in m.ports and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "late" in m.ports
    finally:
        m.stop()


def test_garbage_bytes_are_counted_never_raised():
    bus, d = decoder()
    rng = random.Random(5)
    for _ in range(200):
        d.feed_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 500))))
    d.feed_bytes(bytes([0xF7, 0x45, 0x12]))          # stray sysex end and data bytes
    d.message(mido.Message("sysex", data=[1, 2, 3]))  # a message we have no signal for
    assert d.stats["ignored_bytes"] > 0 and d.stats["errors"] == 0
    d.feed_bytes(bytes([0xB5, 9, 127]))
    assert bus.peek("midi.ch6.cc.9") == 1.0
