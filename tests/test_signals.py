"""The signal bus and the clock."""
import threading

import numpy as np
import pytest

from engine.signals.bus import SignalBus
from engine.signals.clock import LiveClock, VirtualClock


def test_snapshot_is_immutable_and_defaults_to_zero():
    bus = SignalBus()
    bus.set("audio.low", 0.5, t=1.0)
    bus.set("audio.chroma", [1, 2, 3], t=1.0)
    s = bus.snapshot()
    bus.set("audio.low", 0.9)
    assert s["audio.low"] == 0.5  # later writes never reach an existing snapshot
    assert s["nothing.here"] == 0.0
    assert s.get("nothing.here", None) is None
    with pytest.raises(TypeError):
        s.values["audio.low"] = 1.0
    with pytest.raises(ValueError):
        s["audio.chroma"][0] = 7.0
    assert s.times["audio.low"] == 1.0


def test_events_are_delivered_once_in_order():
    bus = SignalBus()
    bus.emit("midi.note.36", 0.5, t=1.0)
    bus.emit("midi.note.36", 1.0, t=2.0)
    s1, s2 = bus.snapshot(), bus.snapshot()
    assert s1.fired("midi.note.36") and s1.events_of("midi.note.36") == (0.5, 1.0)
    assert not s2.fired("midi.note.36")
    assert s1.newest_input == 2.0


def test_concurrent_writers_never_tear_a_snapshot():
    bus = SignalBus()
    stop = threading.Event()

    def writer(k):
        i = 0
        while not stop.is_set():
            bus.update({f"w{k}.a": float(i), f"w{k}.b": float(i)})
            bus.emit(f"w{k}.tick", i)
            i += 1

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    counts = 0
    try:
        for _ in range(2000):
            s = bus.snapshot()
            counts += sum(len(s.events_of(f"w{k}.tick")) for k in range(3))
            for k in range(3):
                # a and b are written together; a snapshot may lag but a is never older than b by more than 1
                assert s[f"w{k}.a"] - s[f"w{k}.b"] in (0.0, 1.0, -0.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert counts > 0


def test_virtual_clock_is_frame_exact():
    c = VirtualClock(fps=30, bpm=120)
    for _ in range(31):
        c.tick()
    f = c.fields()
    assert f["frame"] == 30 and f["time"] == pytest.approx(1.0) and f["dt"] == pytest.approx(1 / 30)
    assert f["beat"] == pytest.approx(2.0)  # 120 bpm = 2 beats per second


def test_tempo_change_bends_beats_without_jumping():
    c = VirtualClock(fps=10, bpm=60)
    for _ in range(11):
        c.tick()
    assert c.beat == pytest.approx(1.0)
    c.set_tempo(120)
    c.tick()
    assert c.beat == pytest.approx(1.2)  # continuous: 0.1 s at 2 beats/s
    with pytest.raises(ValueError):
        c.set_tempo(0)


def test_tap_tempo_follows_taps_and_snaps_phase():
    c = LiveClock()
    assert c.tap(10.0) is None
    for i in range(1, 5):
        bpm = c.tap(10.0 + i * 0.4)
    assert bpm == pytest.approx(150.0)
    assert c.bpm == pytest.approx(150.0)
    assert c.beat == round(c.beat)
    # a pause starts a new sequence instead of averaging across it
    assert c.tap(30.0) is None


def test_snapshot_musical_helpers():
    bus = SignalBus()
    s = bus.snapshot(time=3.0, dt=0.01, frame=300, bpm=120.0, beat=6.5, beats_per_bar=4)
    assert s.beat_phase == pytest.approx(0.5)
    assert s.bar_phase == pytest.approx(6.5 / 4 % 1)
    assert s.beats(2) == pytest.approx(1.0) and s.bars(1) == pytest.approx(2.0)
    assert np.isclose(s.bar, 1.625)
