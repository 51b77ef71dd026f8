"""Show recordings (engine/show/signal_file.py): snapshots of a real SignalBus recorded and replayed
frame-exact, resampled to other frame rates, and hostile files refused or skipped."""
from __future__ import annotations

import gzip
import json
import math
import threading
import time

import numpy as np
import pytest

from engine.render.loop import Engine
from engine.show import signal_file as sf
from engine.show.signal_file import (ReplayBus, ReplayClock, SignalFileError, SignalRecorder, SignalReplay,
                                     read_signal_file)
from engine.signals.bus import SignalBus
from engine.signals.clock import Clock

T0 = 81234.56789          # a monotonic time of a machine up for a day
PATCH_SRC = "def frame(p, s):\n    return p.controls(psi=0.7)  # é\n"


def live_sequence(n: int = 240, seed: int = 1):
    """(snapshot, notes, now) per frame, as a live show makes them: audio every frame, sparse MIDI,
    OSC cues with tuple values, a channel forgotten and set again, stale and odd capture times,
    a tempo change, variable frame times."""
    rng = np.random.default_rng(seed)
    bus, clock = SignalBus(), Clock(bpm=128.0)
    bus.set("old.thing", 1.0, t=T0 - 50000.123456789)      # hours before the base: an exact pair
    bus.set("virtual.stamp", 0.25, t=0.1)                  # another time base altogether
    t = T0
    out = []
    for k in range(n):
        t += float(rng.choice([1 / 60, 1 / 30, 0.0171, 0.05, 1 / 60]))
        bus.publish({"audio.low": float(rng.random()), "audio.chroma": rng.random(12).astype(np.float32),
                     "audio.mfcc": rng.random((2, 3))},
                    events=[("audio.onset", float(rng.random()))] if k % 7 == 0 else (),
                    t=t - 0.003, source="audio")
        if k % 5 == 0 and not 100 <= k < 150:
            bus.set("midi.cc.1", k / 300, t=t - 0.001)
        if k == 100:
            bus.forget("midi.cc.1")
        if k % 11 == 0:
            bus.publish(None, [("cue.go", ("name", 0.5, "norm")), ("param.list", [1, 2.5, "x"]),
                               ("cue.go", ("other", 1.0, "raw"))], t=t - 0.002, source="osc")
        if k % 13 == 0:
            bus.publish({"show.scene": f"scene {k // 50}", "hands.count": k % 3, "hands.on": k % 2 == 0,
                         "n.none": None, "n.f32": np.float32(k / 7), "n.i16": np.arange(k % 4, dtype=np.int16),
                         "osc./vj/param[0]": -0.0}, t=t - 0.004)
            bus.emit("midi.note.36", {"vel": 0.5, "ch": 1}, t=t - 0.0005, source="midi")
        if k == 60:
            clock.set_tempo(140.0)
        if k == 170:
            bus.forget("show.scene")
        clock.advance(t - T0 + 100.0)
        snap = bus.snapshot(**clock.fields())
        notes = []
        if k in (0, 90):
            notes.append(("patch", {"path": "patches/pulse.py", "source": PATCH_SRC + str(k)}))
        if k % 37 == 5:
            notes.append(("cue", {"name": "drop", "n": k}))
        out.append((snap, notes, t))
    return out


def same_value(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
                and a.tobytes() == b.tobytes() and not b.flags.writeable)
    if isinstance(a, np.generic):
        return type(a) is type(b) and a.tobytes() == b.tobytes()
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return type(b) is float and (a == b and math.copysign(1, a) == math.copysign(1, b)
                                     or math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


CLOCK = ("time", "dt", "frame", "bpm", "beat", "beats_per_bar", "newest_input")


def assert_same(orig, got, shift: float = 0.0):
    """Every field of two snapshots equal; capture times of ``got`` are ``shift`` less."""
    assert list(got.values) == list(orig.values)
    for name, v in orig.values.items():
        assert same_value(v, got.values[name]), name
    assert dict(got.times) == {n: t - shift for n, t in orig.times.items()} if shift else \
        dict(got.times) == dict(orig.times)
    for f in CLOCK:
        a, b = getattr(orig, f), getattr(got, f)
        if f == "newest_input" and shift and a is not None:
            a = a - shift
        assert type(a) is type(b) and a == b, f
    assert list(got.events) == list(orig.events)
    for name, evs in orig.events.items():
        g = got.events[name]
        assert len(g) == len(evs)
        for e, h in zip(evs, g):
            assert (h.name, h.source) == (e.name, e.source) and h.t == e.t - shift
            assert same_value(e.value, h.value), name


def record(path, seq, **header):
    with SignalRecorder(path, {"fps": 60, "size": [512, 512], "model": "m.pkl", **header}) as rec:
        for snap, notes, now in seq:
            assert rec.record(snap, notes, now=now)
    return rec


@pytest.fixture
def small_keyframes(monkeypatch):
    monkeypatch.setattr(sf, "KEYFRAME_EVERY", 50)


def test_a_recording_replays_every_snapshot_exactly(tmp_path, small_keyframes):
    seq = live_sequence()
    rec = record(tmp_path / "show.vjsig.gz", seq)
    assert rec.stats["dropped"] == 0 and rec.stats["unencodable"] == 0 and rec.error is None
    assert rec.stats["keyframes"] == 5 and rec.stats["written"] == len(seq)
    assert rec.time_base == math.floor(T0)
    assert json.loads(_lines(rec.path)[-1]) == {"end": 1, "lost": 0, "frames": len(seq)}
    got = read_signal_file(rec.path)
    assert got.header["format"] == "vj-signals" and got.header["fps"] == 60 and got.header["size"] == [512, 512]
    assert len(got) == len(seq) and got.exact and got.stats["bad_lines"] == 0 and got.stats["frame_gaps"] == 0
    assert got.stats["ended"] == 1
    replay = SignalReplay(got, time_base=rec.time_base)
    for k, (snap, notes, _) in enumerate(seq):
        r = replay.snapshot(k)
        assert_same(snap, r)
        assert r.extra.get("notes", ()) == tuple((kind, data) for kind, data in notes)
    # a step back restarts from a keyframe and still gives the same snapshot
    for k in (3, 120, 49, 50, 51, 239, 0):
        assert_same(seq[k][0], replay.snapshot(k))
    assert replay.notes_for_frame(90)[0][1]["source"] == PATCH_SRC + "90"


def test_times_are_relative_and_exact_without_the_base(tmp_path):
    seq = live_sequence(80)
    rec = record(tmp_path / "show.vjsig.gz", seq)
    with gzip.open(rec.path, "rt") as f:
        text = f.read()
    assert "81234." not in text and "8123" not in text.split("\n")[0]      # no uptime in the file
    replay = SignalReplay(read_signal_file(rec.path))
    base = rec.time_base
    for k, (snap, _, now) in enumerate(seq):
        r = replay.snapshot(k)
        for name, t in snap.times.items():
            if name in ("old.thing", "virtual.stamp"):    # exact pairs: round without their base
                assert r.times[name] == pytest.approx(t - base, abs=1e-9)
            else:
                assert r.times[name] == t - base and r.times[name] + base == t
        for name, evs in snap.events.items():
            assert [e.t + base for e in r.events[name]] == [e.t for e in evs]
        assert r.newest_input + base == snap.newest_input
    # differences between times replay exactly (every fresh time is within the session)
    a, b = seq[40][0], replay.snapshot(40)
    assert b.times["audio.low"] - b.times["midi.cc.1"] == a.times["audio.low"] - a.times["midi.cc.1"]


def test_an_engine_renders_from_the_replay_clock_and_bus(tmp_path):
    seq = live_sequence(90)
    rec = record(tmp_path / "show.vjsig.gz", seq)
    replay = SignalReplay(read_signal_file(rec.path), time_base=rec.time_base)
    clock, bus = ReplayClock(replay), ReplayBus(replay)
    seen = []

    class Grab:
        name = "grab"

        def run(self, f):
            seen.append(f.snap)
            bus.emit("clock.tap", 1.0)             # stages publishing again: ignored
            clock.set_tempo(90.0)

    assert bus.frame_count == clock.frame_count == 90
    Engine(clock, bus, [Grab()], fps=60, live=False).run_offline(bus.frame_count)
    assert len(seen) == 90 and bus.ignored == 90 and clock.ignored == 90
    for (snap, notes, now), got in zip(seq, seen):
        assert_same(snap, got)
    assert clock.input_now() == seq[-1][2]
    held = bus.snapshot(**clock.fields())          # past the end: last values, no events
    assert bus.past_end == 1 and not held.events and same_value(held.values["audio.chroma"],
                                                                 seq[-1][0].values["audio.chroma"])


@pytest.mark.parametrize("fps", [24.0, 25.0, 120.0, 7.0])
def test_resampling_keeps_every_event_once_and_values_as_of_their_time(tmp_path, fps):
    seq = live_sequence(200)
    rec = record(tmp_path / "show.vjsig.gz", seq)
    replay = SignalReplay(read_signal_file(rec.path), time_base=rec.time_base)
    times = [s.time for s, _, _ in seq]
    n = replay.frame_count(fps)
    assert times[0] + (n - 1) / fps >= times[-1] > times[0] + (n - 2) / fps
    clock, bus = ReplayClock(replay, fps), ReplayBus(replay, fps)
    want = [(name, e.value, e.t, e.source) for s, _, _ in seq for name, evs in s.events.items() for e in evs]
    got, notes = [], []
    for j in range(n):
        clock.tick()
        snap = bus.snapshot(**clock.fields())
        tj = times[0] + j / fps
        assert snap.time == tj and snap.dt == 1 / fps and snap.frame == j
        k = max(i for i, t in enumerate(times) if t <= tj)
        orig = seq[k][0]
        assert list(snap.values) == list(orig.values) and dict(snap.times) == dict(orig.times)
        assert all(same_value(v, snap.values[name]) for name, v in orig.values.items())
        assert snap.bpm == orig.bpm and snap.newest_input == orig.newest_input
        if k + 1 < len(seq):
            lo, hi = sorted((orig.beat, seq[k + 1][0].beat))
            assert lo <= snap.beat <= hi
        got.extend((name, e.value, e.t, e.source) for name, evs in snap.events.items() for e in evs)
        notes.extend(bus.notes_for_frame(j))
        assert bus.notes_for_frame(j) == snap.extra.get("notes", ())
    # every event once; per name in recorded order (names within one frame group by name)
    assert sorted(map(repr, got)) == sorted(map(repr, want))
    for name in {w[0] for w in want}:
        assert [g for g in got if g[0] == name] == [w for w in want if w[0] == name]
    assert notes == [tuple(nt) for _, ns, _ in seq for nt in ns]


def test_a_file_cut_by_a_crash_replays_up_to_the_cut(tmp_path, monkeypatch):
    monkeypatch.setattr(sf, "FLUSH_EVERY", 0.0)
    seq = live_sequence(150)
    path = tmp_path / "show.vjsig.gz"
    rec = SignalRecorder(path, {"fps": 60})
    for snap, notes, now in seq[:100]:
        rec.record(snap, notes, now=now)
    # still open, as if the process died now: what was flushed reads back
    assert _wait(lambda: rec.stats["written"] == 100)
    time.sleep(0.3)
    live = read_signal_file(path)
    assert len(live) == 100 and live.stats["truncated"] >= 1
    for snap, notes, now in seq[100:]:
        rec.record(snap, notes, now=now)
    rec.close()
    data = path.read_bytes()
    cut = tmp_path / "cut.vjsig.gz"
    cut.write_bytes(data[:int(len(data) * 0.6)])
    got = read_signal_file(cut)
    assert 10 < len(got) < 150 and got.stats["truncated"] == 1 and got.stats["bad_lines"] == 0
    replay = SignalReplay(got, time_base=rec.time_base)
    for k in range(len(got)):
        assert_same(seq[k][0], replay.snapshot(k))


def _wait(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not cond():
        time.sleep(0.005)
    return cond()


def _lines(path) -> list[bytes]:
    with gzip.open(path, "rb") as f:
        return f.read().split(b"\n")[:-1]


def _write(path, lines):
    with gzip.open(path, "wb") as f:
        for line in lines:
            f.write(line + b"\n")
    return path


def test_bad_records_are_skipped_counted_and_exactness_comes_back_at_a_keyframe(tmp_path, small_keyframes):
    seq = live_sequence(120)
    rec = record(tmp_path / "show.vjsig.gz", seq)
    lines = _lines(rec.path)
    head, recs = lines[0], lines[1:]
    nan_clock = json.loads(recs[10])
    nan_clock["t"] = float("nan")
    unknown = json.loads(recs[11])
    unknown["x"] = ["never.seen"]
    bad_name = json.loads(recs[12])
    bad_name["v"] = {"bad name!": [1.0, 0.0]}
    bad_dtype = json.loads(recs[13])
    bad_dtype["v"] = {"a": [{"nd": "|O", "s": [1], "d": "AAAAAAAAAAA="}, 0.0]}
    bad_shape = json.loads(recs[14])
    bad_shape["v"] = {"a": [{"nd": "<f4", "s": [3], "d": "AAAAAA=="}, 0.0]}
    backwards = json.loads(recs[15])
    backwards["f"] = 2
    junk = [json.dumps(unknown).encode(),                 # first: later ones make the reader lenient
            b"hello", b"[]", b"{}", b'{"f": "x"}', b"[" * 100000 + b"]" * 100000,
            b"x" * (10 * 1024 * 1024),                      # a 10 MB line
            json.dumps(nan_clock).encode(), json.dumps(bad_name).encode(),
            json.dumps(bad_dtype).encode(), json.dumps(bad_shape).encode(), json.dumps(backwards).encode(),
            b"\xff\xfe{"]
    hostile = _write(tmp_path / "hostile.vjsig.gz", [head, *recs[:20], *junk, *recs[20:]])
    got = read_signal_file(hostile)
    assert len(got) == 120 and got.stats["bad_lines"] == len(junk) and got.stats["long_lines"] == 1
    for reason in ("json", "clock", "unknown_channel", "name", "array", "out_of_order", "record"):
        assert got.stats[f"bad.{reason}"] >= 1, reason
    # the junk lost nothing real here, but the reader cannot know: frames up to keyframe 50 are flagged
    key = next(k for k in range(20, 120) if got.frames[k].key)
    assert key == 51 and got.stats["inexact_frames"] == key - 20 and not got.exact
    assert [fr.exact for fr in got.frames[20:key + 2]] == [False] * (key - 20) + [True, True]
    replay = SignalReplay(got, time_base=rec.time_base)
    for k in range(120):
        assert_same(seq[k][0], replay.snapshot(k))

    # a record really lost: its channels are wrong until the next keyframe, right after it
    lossy = _write(tmp_path / "lossy.vjsig.gz", [head, *recs[:30], *recs[31:]])
    got = read_signal_file(lossy)
    assert len(got) == 119 and got.stats["inexact_frames"] == 0     # a gap is not visible to the reader ...
    replay = SignalReplay(got, time_base=rec.time_base)
    key = next(k for k in range(30, 119) if got.frames[k].key)
    # recorded frame 30 set midi.cc.1 and was lost: the replay holds the older value until then
    assert key == 50 and replay.snapshot(30).values["midi.cc.1"] == seq[25][0].values["midi.cc.1"] \
        != seq[31][0].values["midi.cc.1"]
    for k in range(key, 119):                                       # ... and the next keyframe heals it
        assert_same(seq[k + 1][0], replay.snapshot(k))


def test_hostile_files_are_refused_with_their_name(tmp_path):
    cases = {
        "plain.vjsig.gz": b'{"format": "vj-signals", "version": 1}\n',
        "empty.vjsig.gz": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    _write(tmp_path / "other.vjsig.gz", [b'{"format": "vj-hands", "version": 1}'])
    _write(tmp_path / "v2.vjsig.gz", [b'{"format": "vj-signals", "version": 2}'])
    _write(tmp_path / "vbool.vjsig.gz", [b'{"format": "vj-signals", "version": true}'])
    _write(tmp_path / "list.vjsig.gz", [b'["vj-signals"]'])
    _write(tmp_path / "huge.vjsig.gz", [b"{" * (5 * 1024 * 1024)])
    for name in ("plain", "empty", "other", "v2", "vbool", "list", "huge", "missing"):
        with pytest.raises(SignalFileError, match=f"{name}.vjsig.gz"):
            read_signal_file(tmp_path / f"{name}.vjsig.gz")


def test_gzip_bombs_and_too_many_frames_are_refused(tmp_path):
    head = b'{"format":"vj-signals","version":1}\n'
    bomb = tmp_path / "bomb.vjsig.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as f:
        f.write(head)
        zeros = b"\0" * (1 << 20)
        for _ in range(64):
            f.write(zeros)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(SignalFileError, match="over .* bytes decompressed"):
        read_signal_file(bomb, max_bytes=16 << 20)
    newlines = tmp_path / "newlines.vjsig.gz"
    with gzip.open(newlines, "wb") as f:
        f.write(head + b"\n" * 100_000)
    with pytest.raises(SignalFileError, match="bad lines"):
        read_signal_file(newlines)
    rec = record(tmp_path / "show.vjsig.gz", live_sequence(30))
    with pytest.raises(SignalFileError, match="over 10 frames"):
        read_signal_file(rec.path, max_frames=10)


def test_the_recorder_never_overwrites_and_checks_its_header(tmp_path):
    path = tmp_path / "show.vjsig.gz"
    path.write_bytes(b"precious")
    rec = record(path, live_sequence(5))
    assert rec.path == tmp_path / "show-2.vjsig.gz" and path.read_bytes() == b"precious"
    again = record(path, live_sequence(5))
    assert again.path == tmp_path / "show-3.vjsig.gz"
    head = read_signal_file(rec.path).header
    assert head["version"] == 1 and head["created"].endswith("Z")
    rec = record(tmp_path / "h.vjsig.gz", live_sequence(3), format="evil", version=9)
    assert read_signal_file(rec.path).header["format"] == "vj-signals"
    with pytest.raises(ValueError, match="JSON-safe"):
        SignalRecorder(tmp_path / "x.vjsig.gz", {"model": object()})
    with pytest.raises(ValueError, match="JSON-safe"):
        SignalRecorder(tmp_path / "x.vjsig.gz", {"bpm": float("nan")})
    assert not (tmp_path / "x.vjsig.gz").exists()


def test_recording_never_blocks_the_render_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(sf, "QUEUE_SECONDS", 0.5)     # 64 records of queue at the minimum
    seq = live_sequence(200)
    rec = SignalRecorder(tmp_path / "show.vjsig.gz", {"fps": 60})
    gate, stuck = threading.Event(), threading.Event()
    write = rec._gz.write

    def hanging_disk(data):
        stuck.set()
        gate.wait(10)
        return write(data)

    rec._gz.write = hanging_disk
    worst = 0.0
    ok = []

    def play(part):
        nonlocal worst
        for snap, notes, now in part:
            t = time.perf_counter()
            ok.append(rec.record(snap, notes, now=now))
            worst = max(worst, time.perf_counter() - t)

    play(seq[:1])
    assert stuck.wait(10)          # the writer hangs on the disk holding the first record
    play(seq[1:150])
    assert worst < 0.05 and rec.dropped == ok.count(False) > 80
    gate.set()                     # the disk comes back: the queue drains, the show records again
    deadline = time.monotonic() + 10
    while rec._queued_bytes and time.monotonic() < deadline:
        time.sleep(0.01)
    play(seq[150:])
    assert ok[150:] == [True] * 50
    rec.close()
    got = read_signal_file(rec.path)
    assert len(got) == ok.count(True) and got.stats["bad_lines"] == 0
    assert got.stats["recorder_dropped"] == rec.dropped and not got.exact and got.stats["frame_gaps"] >= 1
    kept = [k for k, good in enumerate(ok) if good]
    first_key = next(k for k in kept if k > ok.index(False))
    replay = SignalReplay(got, time_base=rec.time_base)
    # after the drops the next record restates everything: its channels are exact again
    i = kept.index(first_key)
    assert got.frames[i].key
    r, orig = replay.snapshot(i), seq[first_key][0]
    assert all(same_value(v, r.values[n]) for n, v in orig.values.items()) and list(r.values) == list(orig.values)


def test_values_the_format_cannot_hold_are_left_out_and_counted(tmp_path):
    bus = SignalBus()
    bus.publish({"ok": 1.0, "obj": object(), "bad name": 2.0, "objarr": np.array([object()])},
                events=[("ev", object()), ("ev", 3)], t=T0)
    snap = bus.snapshot(**Clock().fields())
    with SignalRecorder(tmp_path / "s.vjsig.gz", {}) as rec:
        assert rec.record(snap, [("patch", object()), ("bad kind!", 1), ("big", "x" * (sf.MAX_NOTE + 1)),
                                 ("cue", {"n": 1})], now=T0)
    assert rec.stats["unencodable"] == 3 and rec.stats["bad_names"] == 1 and rec.stats["notes_dropped"] == 3
    r = SignalReplay(read_signal_file(rec.path)).snapshot(0)
    assert list(r.values) == ["ok"] and r.events_of("ev") == (3,) and r.extra["notes"] == (("cue", {"n": 1}),)


def test_every_capture_time_comes_back_bit_exact_with_its_base():
    rng = np.random.default_rng(3)
    base = 81234.0
    ts = np.concatenate([base + rng.normal(0, 1e4, 3000), rng.uniform(0, 1e-6, 500), -rng.uniform(0, 1e9, 500),
                         rng.uniform(0, 2.0 ** 50, 500), [0.0, -0.0, 5e-324, base, base / 2, base / 2 - 1e-9]])
    pairs = 0
    for t in map(float, ts):
        off = sf._dec_time(json.loads(json.dumps(sf._enc_time(t, base))))
        assert sf._at(base, off) == t
        pairs += type(off) is tuple
        if t >= base / 2:
            assert type(off) is float and off == t - base       # exact as one float: no pair needed
    assert 0 < pairs < len(ts)


def test_nested_values_round_trip():
    for v in ((("a", [np.arange(3, dtype=np.uint8), {"k": np.float16(0.5), "n": None}]), True),
              ((((np.arange(2.0), "deepest"),),),)):
        got = sf._dec_value(json.loads(json.dumps(sf._enc_value(v))))
        assert same_value(v, got)
    with pytest.raises(sf._Unencodable):
        sf._enc_value(((((([1],),),),),))
