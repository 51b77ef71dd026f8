"""Hand frames -> hands.* signals (engine/signals/hands.py) and hand recordings
(engine/signals/hand_record.py), on a real SignalBus."""
import gzip
import json
import math
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from engine.signals.bus import SignalBus
from engine.signals.hand_record import (HandFileError, HandRecorder, HandReplay, read_hand_file)
from engine.signals.hands import HandFrameError, HandTracker, OneEuro, check_frame

SAMPLE = Path(__file__).resolve().parent.parent / "patches" / "hands_sample.vjhands.gz"
FPS = 100


def hand(palm, type_="right", id_=1, **kw):
    h = {"id": id_, "type": type_, "palm": list(palm)}
    h.update(kw)
    return h


def frame(t, *hands, box=None):
    return {"t": t, "hands": list(hands), "box": box}


def full_hand(palm, type_="right", id_=1):
    return hand(palm, type_, id_, velocity=[10.0, 0.0, 0.0], normal=[0.0, -1.0, 0.0],
                direction=[0.0, 0.0, -1.0], grab=0.25, pinch=0.5,
                tips=[[palm[0] + i, palm[1], palm[2] - 50] for i in range(5)],
                extended=[True, True, False, True, True], time_visible=1.5)


# --- validation ---

def test_check_frame_cleans_and_keeps_optional_none():
    f = check_frame({"t": 1, "hands": [{"id": 3, "type": None, "palm": [1, 2, 3], "grab": 1.005,
                                        "normal": [0, -1.2, 0], "extra": "ignored"}]})
    h = f["hands"][0]
    assert f["box"] is None and h["palm"] == [1.0, 2.0, 3.0] and h["grab"] == 1.0
    assert h["normal"] == [0.0, -1.0, 0.0] and h["pinch"] is None and h["tips"] is None
    assert "extra" not in h


@pytest.mark.parametrize("bad, reason", [
    ([], "type"),
    ({"hands": []}, "missing"),
    ({"t": "1", "hands": []}, "type"),
    ({"t": 0, "hands": [{"id": 1}]}, "missing"),
    ({"t": 0, "hands": [hand([float("nan"), 0, 0])]}, "nonfinite"),
    ({"t": 0, "hands": [hand([float("inf"), 0, 0])]}, "nonfinite"),
    ({"t": 0, "hands": [hand([2500, 0, 0])]}, "range"),
    ({"t": 0, "hands": [hand([0, 0, 0], velocity=[60000, 0, 0])]}, "range"),
    ({"t": 0, "hands": [hand([0, 0, 0], grab=1.2)]}, "range"),
    ({"t": 0, "hands": [hand([0, 0, 0], pinch=-0.5)]}, "range"),
    ({"t": 0, "hands": [hand([0, 0, 0], type_="middle")]}, "hand_type"),
    ({"t": 0, "hands": [hand([0, 0, 0])] * 10}, "too_many"),
    ({"t": 0, "hands": [hand(["1", 0, 0])]}, "type"),
    ({"t": 0, "hands": [hand([0, 0, 0], tips=[[0, 0, 0]] * 100000)]}, "type"),
    ({"t": 0, "hands": [hand(list(range(100000)))]}, "type"),
    ({"t": 0, "hands": [hand([0, 0, 0], normal=[0, 0, 0])]}, "range"),
    ({"t": 0, "hands": [hand([0, 0, 0], id_=True)]}, "type"),
    ({"t": 0, "hands": [], "box": {"center": [0, 0, 0], "size": [0, 1, 1]}}, "range"),
])
def test_check_frame_refuses_with_reason(bad, reason):
    with pytest.raises(HandFrameError) as e:
        check_frame(bad)
    assert e.value.reason == reason


def test_garbage_is_counted_and_dropped_never_raised():
    bus = SignalBus()
    tr = HandTracker(bus)
    garbage = [None, 1, "frame", b"\x00", [1, 2], {"t": float("nan")}, {"t": 0, "hands": "x"},
               {"t": 0, "hands": [None]}, {"t": 0, "hands": [hand([0, 0, 0])] * 10},
               {"t": 0, "hands": [hand([1e300, 0, 0])]}, {"t": 0, "hands": [hand([0, 0, 0], grab="1")]},
               {"t": 0, "hands": [hand([0, 0, 0], tips=list(range(10 ** 6)))]},
               {"t": 10 ** 400, "hands": []}, {"t": 0, "hands": [hand([0, 0, 0], extended=[2] * 5)]}]
    for g in garbage:
        assert tr.push(g) is False
    assert tr.stats["rejected"] == len(garbage) and tr.stats["frames"] == 0
    assert sum(tr.stats.rejected_by_reason().values()) == len(garbage)
    assert "rejected" in tr.stats.summary()
    assert bus.snapshot().values == {}
    assert tr.push(frame(1.0, full_hand([0, 200, 0]))) is True
    assert tr.push(frame(0.5, full_hand([0, 200, 0]))) is False   # older than the last one
    assert tr.stats["rejected.out_of_order"] == 1


# --- signals ---

def test_signals_names_and_ranges():
    bus = SignalBus()
    tr = HandTracker(bus)
    tr.push(frame(1.0, full_hand([60, 250, -20]), full_hand([-500, 0, 0], "left", 2)))
    snap = bus.snapshot()
    for side in ("left", "right"):
        p = f"hands.{side}."
        for axis in "xyz":
            assert 0.0 <= snap[p + "palm." + axis] <= 1.0
        for k in ("grab", "pinch", "openness", "visible"):
            assert 0.0 <= snap[p + k] <= 1.0
        for k in ("pitch", "roll", "yaw"):
            assert -math.pi <= snap[p + k] <= math.pi
        assert snap.get(p + "palm_mm").shape == (3,) and snap.get(p + "velocity").shape == (3,)
        assert snap.get(p + "tips").shape == (15,) and snap.get(p + "extended").shape == (5,)
        assert snap[p + "visible"] == 1.0 and snap[p + "time_visible"] == 1.5
        assert snap.times[p + "palm.x"] == 1.0          # the frame's capture time
    assert snap["hands.count"] == 2
    from engine.signals.hands import FIELDS    # the names patches are told of (did-you-mean)
    assert {k for k in snap.values if k.startswith("hands.right.")} == {"hands.right." + f for f in FIELDS}
    r = "hands.right."
    assert snap[r + "palm.x"] == pytest.approx(60 / 235 + 0.5)
    assert snap[r + "palm.y"] == pytest.approx(50 / 235 + 0.5)
    assert snap[r + "palm.z"] == pytest.approx(-20 / 147 + 0.5)
    assert snap["hands.left.palm.x"] == 0.0 and snap["hands.left.palm.y"] == 0.0   # clamped
    assert snap[r + "grab"] == 0.25 and snap[r + "openness"] == 0.75 and snap[r + "pinch"] == 0.5
    assert list(snap.get(r + "extended")) == [1, 1, 0, 1, 1]
    # palm facing down, pointing away: all angles 0
    assert snap[r + "pitch"] == pytest.approx(0, abs=1e-6) and snap[r + "roll"] == pytest.approx(0, abs=1e-6)
    assert snap.fired("hands.right.enter") and snap.fired("hands.left.enter")
    # a frame's own box wins
    tr.push(frame(1.01, full_hand([60, 250, -20]), box={"center": [60, 250, -20], "size": [100, 100, 100]}))
    assert bus.snapshot()["hands.right.palm.x"] == pytest.approx(0.5, abs=0.01)


def test_angles_follow_leap_definitions():
    bus = SignalBus()
    tr = HandTracker(bus)
    a = 0.4
    tr.push(frame(0.0, hand([0, 200, 0], direction=[0, math.sin(a), -math.cos(a)],
                            normal=[math.sin(a), -math.cos(a), 0])))
    s = bus.snapshot()
    assert s["hands.right.pitch"] == pytest.approx(a, abs=1e-6)
    assert s["hands.right.roll"] == pytest.approx(a, abs=1e-6)
    assert s["hands.right.yaw"] == pytest.approx(0, abs=1e-6)


def test_one_euro_smooths_still_hand_and_follows_fast_motion():
    rng = np.random.default_rng(1)
    bus = SignalBus()
    tr = HandTracker(bus)
    raw, out = [], []
    for i in range(400):
        x = 20.0 + rng.normal(0, 1.0)
        tr.push(frame(i / FPS, hand([x, 200, 0])))
        raw.append(x)
        out.append(float(bus.peek("hands.right.palm_mm")[0]))
    assert np.std(raw[100:]) > 3 * np.std(out[100:])
    # fast motion (1 m/s): the filter's lag stays small, unlike a plain 1 Hz low-pass
    f_fast, f_plain = OneEuro(1.0, 0.007), OneEuro(1.0, 0.0)
    for i in range(100):
        t = i / FPS
        x = 1000.0 * t
        a, b = f_fast(x, t), f_plain(x, t)
    assert x - a < 25.0 and x - b > 100.0
    # vectors filter per component; parameters can be changed at run time
    v = OneEuro()(np.array([1.0, 2.0]), 0.0)
    assert v.shape == (2,)
    tr.beta, tr.min_cutoff = 0.5, 2.0
    assert tr._sides["right"].palm_f.beta == 0.5 and tr._sides["right"].palm_f.min_cutoff == 2.0


def test_dropout_holds_then_eases_to_rest_without_a_jump():
    bus = SignalBus()
    tr = HandTracker(bus, hold=0.3, ease=0.7)
    for i in range(50):
        tr.push(frame(i / FPS, full_hand([100, 300, 60])))
    bus.snapshot()
    held = float(bus.peek("hands.right.palm.x"))
    xs, events = [], []
    t0 = 49 / FPS
    for i in range(1, 150):
        t = t0 + i / FPS
        tr.push(frame(t))
        s = bus.snapshot()
        if i == 1:
            assert s["hands.right.visible"] == 0.0      # at once
        xs.append((t - t0, s["hands.right.palm.x"], s["hands.right.grab"], s["hands.right.yaw"]))
        events += [(t - t0, k) for k in s.events]
    during_hold = [x for dt, x, _, _ in xs if dt < 0.29]
    assert all(x == pytest.approx(held) for x in during_hold)
    assert xs[-1][1] == pytest.approx(0.5) and xs[-1][2] == 0.0 and xs[-1][3] == pytest.approx(0.0)
    steps = np.abs(np.diff([held] + [x for _, x, _, _ in xs]))
    assert steps.max() < 0.03                           # never a snap
    assert [k for _, k in events] == ["hands.right.leave"]
    assert events[0][0] == pytest.approx(0.3, abs=0.011)
    assert tr.side_state("right") == "rest"


def test_tick_drives_dropout_when_frames_stop():
    bus = SignalBus()
    tr = HandTracker(bus, hold=0.3, ease=0.7)
    tr.push(frame(10.0, full_hand([100, 300, 60])))
    bus.snapshot()
    tr.tick(10.1)
    assert "hands.right.leave" not in bus.snapshot().events
    tr.tick(10.26)                                      # past STALE: gone, held
    s = bus.snapshot()
    assert s["hands.right.visible"] == 0.0 and not s.fired("hands.right.leave")
    tr.tick(10.65)
    assert bus.snapshot().fired("hands.right.leave")
    tr.tick(12.0)
    assert bus.snapshot()["hands.right.palm.x"] == pytest.approx(0.5)


def test_enter_and_leave_events_and_flicker_within_hold():
    bus = SignalBus()
    tr = HandTracker(bus, hold=0.3, ease=0.2)
    fired = []
    t = 0.0
    script = [True] * 10 + [False] * 5 + [True] * 10 + [False] * 100 + [True] * 5
    for present in script:
        tr.push(frame(t, hand([0, 200, 0])) if present else frame(t))
        fired += list(bus.snapshot().events)
        t += 1 / FPS
    # the 5-frame gap is within the hold: no leave, no second enter
    assert fired == ["hands.right.enter", "hands.right.leave", "hands.right.enter"]
    assert tr.stats["enter"] == 2 and tr.stats["leave"] == 1


def test_identity_swap_keeps_sides():
    bus = SignalBus()
    tr = HandTracker(bus, min_cutoff=1000.0)   # (almost) no smoothing: follow the raw palms
    lefts, rights = [], []
    for i in range(60):
        t = i / FPS
        lx, rx = -100 + 2 * i, 100 - 2 * i      # they approach, cross at i=50 ... keep going
        a, b = hand([lx, 200, 20], "left", 1), hand([rx, 200, -20], "right", 2)
        if i >= 30:                              # the source swaps ids and types
            a, b = hand([lx, 200, 20], "right", 2), hand([rx, 200, -20], "left", 1)
        tr.push(frame(t, *([b, a] if i % 2 else [a, b])))
        s = bus.snapshot()
        lefts.append(float(s.get("hands.left.palm_mm")[0]))
        rights.append(float(s.get("hands.right.palm_mm")[0]))
    # the hand that entered as left keeps moving right, on the left side's signals, throughout
    assert np.all(np.diff(lefts) > 0) and np.all(np.diff(rights) < 0)
    assert lefts[-1] > rights[-1]                # they crossed


def test_untyped_hand_gets_side_by_x():
    bus = SignalBus()
    tr = HandTracker(bus)
    tr.push(frame(0.0, hand([-80, 200, 0], None, 5)))
    s = bus.snapshot()
    assert s["hands.left.visible"] == 1.0 and s["hands.right.visible"] == 0.0
    tr.push(frame(0.01, hand([-80, 200, 0], None, 5), hand([90, 200, 0], None, 6), hand([0, 90, 0], None, 7)))
    s = bus.snapshot()
    assert s["hands.right.visible"] == 1.0 and s["hands.count"] == 3 and tr.stats["extra_hands"] == 1
    assert s["hands.left.palm_mm"][0] == pytest.approx(-80, abs=1)


def test_flood_is_bounded_in_time():
    bus = SignalBus()
    tr = HandTracker(bus)
    frames = [frame(i / 1000, full_hand([i % 200 - 100, 200, 0]), full_hand([50, 150, 0], "left", 2))
              for i in range(20000)]
    start = time.perf_counter()
    for f in frames:
        tr.push(f)
    elapsed = time.perf_counter() - start
    assert tr.stats["frames"] == 20000
    assert elapsed < 10.0, elapsed


# --- recording ---

def test_record_then_read_back(tmp_path):
    path = tmp_path / "take.vjhands.gz"
    path.write_bytes(b"keep me")
    frames = [frame(100.0 + i / 60, full_hand([10.04 + i, 200.0, -5.0]), box=None) for i in range(30)]
    frames.append(frame(100.6))
    frames[3]["hands"][0]["grab"] = 0.1234
    with HandRecorder(path, header={"note": "test"}) as rec:
        for f in frames:
            assert rec.write(f)
        assert rec.write({"t": 1, "hands": "junk"}) is False
    assert path.read_bytes() == b"keep me" and rec.path != path       # never overwritten
    got = read_hand_file(rec.path)
    assert got.header["format"] == "vj-hands" and got.header["note"] == "test"
    assert len(got) == len(frames) and got.stats["bad_lines"] == 0
    for a, b in zip(frames, got.frames):
        assert b["t"] == pytest.approx(a["t"] - 100.0, abs=1e-4)
        for ha, hb in zip(check_frame(a)["hands"], b["hands"]):
            assert np.allclose(ha["palm"], hb["palm"], atol=0.051)
            assert np.allclose(ha["tips"], hb["tips"], atol=0.051)
            assert hb["grab"] == pytest.approx(ha["grab"], abs=5e-4)
            assert hb["extended"] == ha["extended"] and hb["type"] == ha["type"]
    assert got.frames[-1]["hands"] == []


def test_truncated_file_is_read_up_to_the_cut(tmp_path):
    with HandRecorder(tmp_path / "a.vjhands.gz") as rec:
        for i in range(50):
            rec.write(frame(i / 60, full_hand([i, 200, 0])))
        size = rec.path.stat().st_size
        partial = rec.path.read_bytes()           # still open, as a crash leaves it: no trailer
    cut = tmp_path / "cut.vjhands.gz"
    cut.write_bytes(partial[:size - 7])
    got = read_hand_file(cut)
    assert 45 <= len(got) <= 50 and got.stats["truncated"] == 1


def _gz(path, *lines: bytes):
    with gzip.open(path, "wb") as g:
        for line in lines:
            g.write(line)
    return path


HEAD = json.dumps({"format": "vj-hands", "version": 1}).encode() + b"\n"


def test_hostile_files_are_refused_or_skipped_with_bounded_memory(tmp_path):
    good = json.dumps({"t": 0, "hands": []}).encode() + b"\n"
    with pytest.raises(HandFileError):
        read_hand_file(_gz(tmp_path / "h1", b'{"format": "other"}\n', good))
    with pytest.raises(HandFileError):
        read_hand_file(_gz(tmp_path / "h2", b'{"format": "vj-hands", "version": 9}\n', good))
    with pytest.raises(HandFileError):
        read_hand_file(_gz(tmp_path / "h3", b"[" * 100000 + b"\n"))
    junk = tmp_path / "junk"
    junk.write_bytes(bytes(range(256)) * 100)
    with pytest.raises(HandFileError):
        read_hand_file(junk)
    with pytest.raises(HandFileError):
        read_hand_file(tmp_path / "missing")

    tracemalloc.start()
    try:
        # a 10 MB line, binary junk, bad frames, nested JSON between good lines: skipped, counted
        mixed = _gz(tmp_path / "mixed", HEAD, good, b"x" * (10 * 2 ** 20) + b"\n", good,
                    bytes(range(11, 256)) + b"\n", b"[" * 5000 + b"\n",
                    json.dumps({"t": 1, "hands": [hand([float("nan"), 0, 0])]}).encode() + b"\n",
                    json.dumps({"t": 0.5, "hands": []}).encode() + b"\n",  # after the refused t=1: fine
                    json.dumps({"t": 0.1, "hands": []}).encode() + b"\n",  # out of order
                    good[:10])                                           # truncated last line
        got = read_hand_file(mixed)
        assert len(got) == 3
        assert got.stats["long_lines"] == 1 and got.stats["bad_lines"] == 5
        assert got.stats["bad.out_of_order"] == 1 and got.stats["truncated"] == 1
        # a gzip bomb: 1 GB of zeros decompressed, refused at max_bytes
        bomb = tmp_path / "bomb"
        with gzip.open(bomb, "wb", compresslevel=1) as g:
            g.write(HEAD)
            block = b"\0" * 2 ** 20
            for _ in range(64):
                g.write(block)
        assert bomb.stat().st_size < 2 ** 20
        with pytest.raises(HandFileError):
            read_hand_file(bomb, max_bytes=16 * 2 ** 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24 * 2 ** 20, peak
    # too many frames
    with pytest.raises(HandFileError):
        read_hand_file(_gz(tmp_path / "many", HEAD, *[good] * 20), max_frames=10)


def test_sample_recording_drives_the_tracker():
    assert SAMPLE.stat().st_size < 200_000
    got = read_hand_file(SAMPLE)
    assert got.header.get("synthetic") is True and "SYNTHETIC" in got.header["notice"]
    assert 11.5 <= got.duration <= 12.5 and got.stats["bad_lines"] == 0
    bus = SignalBus()
    tr = HandTracker(bus)
    events = []
    for f in HandReplay(tr, SAMPLE).frames(start=50.0):
        tr.push(f)
        events += list(bus.snapshot().events)
    assert events == ["hands.right.enter", "hands.right.leave"]
    assert tr.stats["frames"] == len(got) and tr.stats["rejected"] == 0


def test_replay_paces_frames(tmp_path):
    path = tmp_path / "r.vjhands.gz"
    with HandRecorder(path) as rec:
        for i in range(41):
            rec.write(frame(i * 0.02, hand([0, 200, 0])))       # 0.8 s
    got = []
    r = HandReplay(lambda f: got.append(f["t"]), path, speed=4.0).start()
    r.join(3.0)
    assert not r.running and r.error is None and len(got) == 41
    assert 0.17 <= got[-1] - got[0] <= 0.35, got[-1] - got[0]   # 0.8 s / 4
    bus = SignalBus()
    tr = HandTracker(bus)
    r = HandReplay(tr, path, loop=True, speed=4.0).start()
    time.sleep(0.5)
    r.stop()
    assert not r.running and tr.stats["frames"] > 41 and r.stats["loops"] >= 1
    assert bus.peek("hands.right.visible") is not None
    with pytest.raises(ValueError):
        HandReplay(tr, path, speed=0)
