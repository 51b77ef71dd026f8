"""The signal bus and the clock."""
import sys
import threading
import time

import numpy as np
import pytest

from engine.signals.bus import Event, SignalBus
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


BLOCK = [f"blk.{i}" for i in range(8)]


def check_snapshots_never_tear(bus, seconds=0.6, min_blocks=200):
    """Two writers race a reader: one publishes "blocks" (every channel of block k holds
    k, plus a vector of k's, plus two events carrying k), the other writes plain
    ``update``s (every channel holds its k). Every snapshot must hold exactly one whole
    block, with the events of every block since the previous snapshot, each once."""
    stop = threading.Event()

    def block_writer():
        k = 0
        while not stop.is_set():
            k += 1
            values = {name: float(k) for name in BLOCK}
            values["blk.vec"] = [k, k, k]
            bus.publish(values, [("blk.tick", k), ("blk.tock", k)], t=float(k), source="audio")

    def update_writer():
        k = 0
        while not stop.is_set():
            k += 1
            bus.update({f"upd.{i}": float(k) for i in range(6)}, t=float(k))

    threads = [threading.Thread(target=block_writer), threading.Thread(target=update_writer)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: any gap is found
    last_k = last_tick = snapshots = 0
    try:
        for th in threads:
            th.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline or last_tick < min_blocks:
            s = bus.snapshot()
            snapshots += 1
            ks = {s[name] for name in BLOCK} | set(np.asarray(s.get("blk.vec", [0.0] * 3)).tolist())
            assert len(ks) == 1, f"snapshot {snapshots} holds parts of blocks {sorted(ks)}"
            k = ks.pop()
            assert {s.times.get(name, 0.0) for name in BLOCK} == {k}
            ticks = s.events_of("blk.tick")
            # the events of every block since the last snapshot, once each, in order ...
            assert ticks == tuple(range(last_tick + 1, last_tick + 1 + len(ticks))), (last_tick, ticks)
            assert s.events_of("blk.tock") == ticks
            # ... and exactly up to the block whose channels the snapshot holds
            assert (ticks[-1] if ticks else last_tick) == k, (k, ticks, last_tick)
            assert all(e.source == "audio" for e in s.events.get("blk.tick", ()))
            assert len({s[f"upd.{i}"] for i in range(6)}) == 1, "an update() was torn"
            last_k, last_tick = k, (ticks[-1] if ticks else last_tick)
    finally:
        sys.setswitchinterval(interval)
        stop.set()
        for th in threads:
            th.join()
    return snapshots, last_k


def test_one_message_is_all_or_nothing_in_a_snapshot():
    snapshots, blocks = check_snapshots_never_tear(SignalBus())
    assert snapshots > 50 and blocks >= 200


def test_publish_forms_and_event_sources():
    bus = SignalBus()
    bus.publish({"a": 1.0, "v": [1, 2]}, {"hit": 0.5}, t=2.0, source="osc")
    bus.publish(events=[("hit", 0.7), ("go", None)], t=3.0)
    bus.emit("hit", 0.9, t=4.0, source="midi")
    bus.emit("hit")  # the old forms still work
    s = bus.snapshot()
    assert s["a"] == 1.0 and s["v"].dtype == np.float32 and s.times["v"] == 2.0
    assert s.events_of("hit")[:3] == (0.5, 0.7, 0.9) and s.events_of("go") == (None,)
    assert [e.source for e in s.events["hit"]] == ["osc", "", "midi", ""]
    assert Event("x", 1.0, 0.5) == Event("x", 1.0, 0.5, "")  # positional construction as before
    empty = SignalBus()
    empty.publish({}, ())  # nothing to write: no newest input either
    assert empty.snapshot().newest_input is None


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


def test_file_source_snapshots_hold_whole_blocks(tmp_path):
    """The real audio source: every snapshot's audio.* channels come from one block
    (one capture time), and its events are that block's or earlier ones, tagged "audio"."""
    import soundfile as sf

    from engine.signals.audio import FileSource
    sr = 44100
    y = np.zeros(sr, np.float32)
    for start in range(0, sr - 400, sr // 8):    # a click every 1/8 s: onsets fire
        y[start:start + 400] = np.sin(np.arange(400) * 0.3) * np.linspace(1, 0, 400)
    sf.write(tmp_path / "clicks.wav", y, sr)
    bus = SignalBus()
    src = FileSource(bus, tmp_path / "clicks.wav", play=False).start()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    seen_times, onsets = set(), 0
    try:
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline and not src.finished:
            s = bus.snapshot()
            times = {t for name, t in s.times.items() if name.startswith("audio.")}
            assert len(times) <= 1, f"one snapshot holds {len(times)} blocks"
            seen_times |= times
            for evs in s.events.values():
                assert all(e.source == "audio" and (not times or e.t <= max(times)) for e in evs)
            onsets += len(s.events_of("audio.onset"))
    finally:
        sys.setswitchinterval(interval)
        src.stop()
    assert len(seen_times) > 20 and onsets >= 3
