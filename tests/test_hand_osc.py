"""OSC hand input (engine/signals/hand_osc.py) over real UDP on loopback, into a real
HandTracker and SignalBus."""
from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pythonosc import osc_bundle_builder, osc_message_builder
from pythonosc.udp_client import SimpleUDPClient

from engine.signals.bus import SignalBus
from engine.signals.hand_osc import HandOscIn, landmarks_to_hand
from engine.signals.hand_record import read_hand_file
from engine.signals.hands import HandTracker
from engine.signals.leap import LeapSource
from conftest import free_port, wait_for
from test_leap import LeapServer  # tests/ is on sys.path (rootdir conftest)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = next((p for p in (ROOT / "tests/data/hands_sample.vjhands.gz",
                           ROOT / "patches/hands_sample.vjhands.gz") if p.exists()), None)


def _msg(address, *args):
    b = osc_message_builder.OscMessageBuilder(address)
    for a in args:
        if isinstance(a, bool):
            b.add_arg(int(a), "i")
        elif isinstance(a, int):
            b.add_arg(a, "i")
        elif isinstance(a, float):
            b.add_arg(a, "f")
        else:
            b.add_arg(a)
    return b.build()


def _bundle(msgs):
    b = osc_bundle_builder.OscBundleBuilder(osc_bundle_builder.IMMEDIATELY)
    for m in msgs:
        b.add_content(m)
    return b.build()


@pytest.fixture
def rig():
    """(start(preset) -> (receiver, tracker, bus, client)); everything stopped afterwards."""
    started = []

    def start(preset="vj", **kw):
        bus = SignalBus()
        tracker = HandTracker(bus)
        rx = HandOscIn(tracker, port=0, preset=preset, **kw).start()
        started.append(rx)
        return rx, tracker, bus, SimpleUDPClient("127.0.0.1", rx.port)

    yield start
    for rx in started:
        rx.stop()


# --------------------------------------------------------------------------- 1. presets
def test_vj_preset_bundle_and_loose_messages(rig):
    rx, tracker, bus, client = rig("vj")
    assert rx._thread.name == f"hands-osc:{rx.port}" and rx._thread.daemon
    client.send(_bundle([
        _msg("/hands/right/palm", 0.0, 200.0, 0.0), _msg("/hands/right/velocity", 1.0, 2.0, 3.0),
        _msg("/hands/right/normal", 0.0, -1.0, 0.0), _msg("/hands/right/direction", 0.0, 0.0, -1.0),
        _msg("/hands/right/grab", 0.25), _msg("/hands/right/pinch", 0.75),
        _msg("/hands/right/tips", *[float(i) for i in range(15)]),
        _msg("/hands/right/extended", 1, 0, 1, 1, 0), _msg("/hands/right/time_visible", 2.5),
        _msg("/hands/box", 0.0, 200.0, 0.0, 600.0, 600.0, 400.0)]))
    assert wait_for(lambda: tracker.stats["frames"] == 1)
    p = bus.peek
    assert p("hands.right.palm.x") == pytest.approx(0.5) and p("hands.right.palm.y") == pytest.approx(0.5)
    assert p("hands.right.grab") == pytest.approx(0.25) and p("hands.right.pinch") == pytest.approx(0.75)
    assert p("hands.right.visible") == 1.0 and p("hands.left.visible") == 0.0
    assert list(p("hands.right.extended")) == [1, 0, 1, 1, 0]
    assert p("hands.right.pitch") == pytest.approx(0.0) and p("hands.right.roll") == pytest.approx(0.0)
    assert list(p("hands.right.velocity")) == [1.0, 2.0, 3.0]
    # loose messages up to /hands/end; the right hand is absent from this frame
    for m in (("/hands/left/palm", [-210.0, 200.0, -150.0]), ("/hands/left/grab", 1.0)):
        client.send_message(*m)
    time.sleep(0.05)
    assert tracker.stats["frames"] == 1          # not before /hands/end
    client.send_message("/hands/end", [])
    assert wait_for(lambda: tracker.stats["frames"] == 2)
    # over MAX_JUMP from the right hand's last palm, so not taken as the right hand moving;
    # the box sent with the previous frame stays
    assert p("hands.left.palm.x") == pytest.approx(-210 / 600 + 0.5)
    assert p("hands.left.palm.z") == pytest.approx(-150 / 400 + 0.5)
    assert p("hands.left.visible") == 1.0 and p("hands.right.visible") == 0.0
    assert p("hands.left.grab") == 1.0 and p("hands.count") == 1.0
    assert rx.stats["frames"] == 2 and rx.stats.problems() == 0, rx.summary()


def test_touchdesigner_preset(rig):
    rx, tracker, bus, client = rig("touchdesigner")
    pitch, yaw, roll = 20.0, -30.0, 45.0
    client.send(_bundle([_msg(f"/r:{k}", v) for k, v in (
        ("tx", 50.0), ("ty", 250.0), ("tz", -30.0), ("rx", pitch), ("ry", yaw), ("rz", roll),
        ("grabstrength", 0.5), ("pinchstrength", 0.25), ("vx", 10.0), ("vy", 0.0), ("vz", 0.0))]
        + [_msg("/sequence_id", 7.0)]))
    assert wait_for(lambda: tracker.stats["frames"] == 1)
    p = bus.peek
    assert p("hands.right.palm.x") == pytest.approx(50 / 235 + 0.5, abs=1e-6)
    assert p("hands.right.palm.y") == pytest.approx(50 / 235 + 0.5, abs=1e-6)
    assert p("hands.right.palm.z") == pytest.approx(-30 / 147 + 0.5, abs=1e-6)
    assert p("hands.right.pitch") == pytest.approx(math.radians(pitch), abs=1e-5)
    assert p("hands.right.yaw") == pytest.approx(math.radians(yaw), abs=1e-5)
    assert p("hands.right.roll") == pytest.approx(math.radians(roll), abs=1e-5)
    assert p("hands.right.grab") == 0.5 and p("hands.right.pinch") == 0.25
    assert rx.stats["unknown"] == 1   # /sequence_id: a CHOP channel we do not use
    # no bundle: one message per channel (an OSC Out CHOP), grouped by the 4 ms window
    for k, v in (("tx", -250.0), ("ty", 150.0), ("tz", 0.0), ("grabstrength", 1.0)):
        client.send_message(f"/l:{k}", v)
    assert wait_for(lambda: tracker.stats["frames"] == 2)
    assert p("hands.left.visible") == 1.0 and p("hands.right.visible") == 0.0
    assert p("hands.left.palm.x") == 0.0   # clamped; far enough from the right hand's last palm
    assert p("hands.left.palm.y") == pytest.approx(-50 / 235 + 0.5, abs=1e-6)
    assert p("hands.left.grab") == 1.0
    # numbered hands: a repeated channel ends the frame; /hands 0 hides hand0
    for i in range(3):
        client.send_message("/hand0:tx", 100.0 + i)
        client.send_message("/hand0:ty", 200.0)
        client.send_message("/hand0:tz", 0.0)
    assert wait_for(lambda: tracker.stats["frames"] == 5)
    assert p("hands.right.visible") == 1.0   # type None, x > 0: the right side
    client.send(_bundle([_msg("/hands", 0.0), _msg("/hand0:tx", 1.0), _msg("/hand0:ty", 200.0),
                         _msg("/hand0:tz", 0.0)]))
    assert wait_for(lambda: tracker.stats["frames"] == 6)
    assert p("hands.count") == 0.0 and p("hands.right.visible") == 0.0
    assert rx.stats["bad"] == 0, rx.summary()


def _open_hand(cx=0.5, spread=1.0):
    """21 MediaPipe landmarks (image coords) of an open right hand, fingers up, palm to camera."""
    pts = [(cx, 0.8, 0.0)]
    for f, x in enumerate((-0.08, -0.04, 0.0, 0.04, 0.08)):   # image x: thumb left
        base_y = 0.65 if f else 0.72
        for j in range(4):
            pts.append((cx + x * (1 + 0.3 * j * (f == 0)), base_y - spread * 0.06 * j, -0.01 * j))
    return [c for p in pts for c in p]


def test_mediapipe_preset(rig):
    rx, tracker, bus, client = rig("mediapipe")
    lm = _open_hand()
    client.send_message("/hands/right/landmarks", lm)
    assert wait_for(lambda: tracker.stats["frames"] == 1)
    p = bus.peek
    palm_x = sum(lm[3 * i] for i in (0, 5, 9, 13, 17)) / 5
    palm_y = sum(lm[3 * i + 1] for i in (0, 5, 9, 13, 17)) / 5
    assert p("hands.right.palm.x") == pytest.approx(((0.5 - palm_x) * 235) / 235 + 0.5, abs=1e-5)
    assert p("hands.right.palm.y") == pytest.approx(((0.5 - palm_y) * 235) / 235 + 0.5, abs=1e-5)
    assert list(p("hands.right.extended")) == [1, 1, 1, 1, 1]
    assert p("hands.right.grab") < 0.2 and p("hands.right.pinch") < 0.2
    assert p("hands.right.pitch") == pytest.approx(math.pi / 2, abs=0.05)   # fingers up
    h = landmarks_to_hand(lm, "right")
    assert h["normal"][2] > 0.9   # palm toward the camera: the normal points away from the user
    # a fist: fingertips folded onto the palm; a pinch: thumb tip on index tip
    fist = list(lm)
    for tip in (8, 12, 16, 20):
        fist[3 * tip:3 * tip + 3] = [lm[3 * (tip - 3)], lm[3 * (tip - 3) + 1] + 0.02, 0.0]
    hf = landmarks_to_hand(fist, "right")
    assert hf["grab"] > 0.8 and hf["extended"][1:] == [False] * 4
    pinch = list(lm)
    pinch[12:15] = lm[24:27]
    assert landmarks_to_hand(pinch, "right")["pinch"] == 1.0
    # both hands in one bundle (a fresh tracker: its identity rule would keep the hand above);
    # /landmarks alone is the right hand
    rx, tracker, bus, client = rig("mediapipe")
    p = bus.peek
    client.send(_bundle([_msg("/hands/left/landmarks", *_open_hand(0.7)),
                         _msg("/hands/right/landmarks", *_open_hand(0.3))]))
    assert wait_for(lambda: tracker.stats["frames"] == 1)
    assert p("hands.count") == 2.0 and p("hands.left.visible") == 1.0
    assert p("hands.left.palm.x") < 0.5 < p("hands.right.palm.x")
    client.send_message("/landmarks", _open_hand(0.4))
    assert wait_for(lambda: tracker.stats["frames"] == 2)
    assert p("hands.count") == 1.0 and p("hands.right.visible") == 1.0
    assert p("hands.left.visible") == 0.0
    assert rx.stats.problems() == 0, rx.summary()


# --------------------------------------------------------------------------- 2. same motion
SIGNALS = [f"hands.right.{k}" for k in ("palm.x", "palm.y", "palm.z", "pitch", "roll", "yaw",
                                         "grab", "pinch")]


class _Recorded:
    """A sink wrapper: gives the tracker the recorded relative time of each frame in order (so
    the paths compare signals, not receipt jitter), then reads the published values back."""

    def __init__(self, times):
        self.bus = SignalBus()
        self.tracker = HandTracker(self.bus)
        self.times = list(times)
        self.rows = []

    def push(self, frame, source="x"):
        frame = dict(frame, t=self.times[len(self.rows)])
        assert self.tracker.push(frame, source)
        self.rows.append([self.bus.peek(n) for n in SIGNALS])

    __call__ = push


def _vj_bundle(frame):
    msgs = []
    for h in frame["hands"]:
        s = f"/hands/{h['type']}/"
        msgs += [_msg(s + "id", h["id"]), _msg(s + "palm", *h["palm"])]
        for k in ("velocity", "normal", "direction"):
            if h[k] is not None:
                msgs.append(_msg(s + k, *map(float, h[k])))
        for k in ("grab", "pinch", "time_visible"):
            if h[k] is not None:
                msgs.append(_msg(s + k, float(h[k])))
        if h["tips"] is not None:
            msgs.append(_msg(s + "tips", *[float(c) for p in h["tips"] for c in p]))
        if h["extended"] is not None:
            msgs.append(_msg(s + "extended", *[int(e) for e in h["extended"]]))
    if frame["box"] is not None:
        msgs.append(_msg("/hands/box", *map(float, frame["box"]["center"] + frame["box"]["size"])))
    msgs.append(_msg("/hands/end"))
    return _bundle(msgs)


def _leap_json(frame, i):
    hands, pointables = [], []
    for h in frame["hands"]:
        out = {"id": h["id"], "type": h["type"], "palmPosition": h["palm"]}
        for k, lk in (("velocity", "palmVelocity"), ("normal", "palmNormal"), ("direction", "direction"),
                      ("grab", "grabStrength"), ("pinch", "pinchStrength"), ("time_visible", "timeVisible")):
            if h[k] is not None:
                out[lk] = h[k]
        hands.append(out)
        if h["tips"] is not None:
            for f, tip in enumerate(h["tips"]):
                p = {"id": h["id"] * 10 + f, "handId": h["id"], "type": f, "tipPosition": tip}
                if h["extended"] is not None:
                    p["extended"] = bool(h["extended"][f])
                pointables.append(p)
    msg = {"id": i, "timestamp": 1_000_000 + 16_667 * i, "hands": hands, "pointables": pointables}
    if frame["box"] is not None:
        msg["interactionBox"] = frame["box"]
    return json.dumps(msg)


@pytest.mark.skipif(SAMPLE is None, reason="no hand sample file")
def test_same_motion_same_signals():
    frames = read_hand_file(SAMPLE).frames
    # the entry (empty frames, then the hand) and the start of the figure-eight with grab/pinch
    frames = frames[20:50] + frames[220:310]
    times = [f["t"] for f in frames]
    n = len(frames)

    direct = _Recorded(times)
    for f in frames:
        direct.push(dict(f))

    via_osc = _Recorded(times)
    rx = HandOscIn(via_osc, port=0, preset="vj").start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for f in frames:
                s.sendto(_vj_bundle(f).dgram, ("127.0.0.1", rx.port))
                time.sleep(0.0005)
        assert wait_for(lambda: len(via_osc.rows) == n, 5), rx.summary()
    finally:
        rx.stop()
    assert rx.stats.problems() == 0, rx.summary()

    via_leap = _Recorded(times)
    server = LeapServer(free_port()).start()
    src = LeapSource(via_leap, url=f"ws://127.0.0.1:{server.port}/v6.json", silence=5.0)
    try:
        src.start()
        assert wait_for(lambda: src.connected and server.conns and len(server.received) >= 2)
        for i, f in enumerate(frames):
            server.send(_leap_json(f, i))
        assert wait_for(lambda: len(via_leap.rows) == n, 5), src.summary()
    finally:
        src.stop()
        server.stop()
    assert src.stats.problems() == 0, src.summary()

    grabs = [r[6] for r in direct.rows]
    assert max(grabs) > 0.3, "the slice should include some grab"
    worst = {}
    for other, name in ((via_osc, "osc"), (via_leap, "leap")):
        for j, sig in enumerate(SIGNALS):
            d = max(abs(a[j] - b[j]) for a, b in zip(direct.rows, other.rows))
            worst[f"{name} {sig}"] = d
            tol = 1e-2 if sig.endswith(("pitch", "roll", "yaw")) else 1e-3
            assert d <= tol, (name, sig, d)
    print("max differences:", {k: f"{v:.2g}" for k, v in worst.items()})


# --------------------------------------------------------------------------- 3. garbage
def test_garbage_is_counted_never_raises(rig):
    rx, tracker, bus, client = rig("vj")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest = ("127.0.0.1", rx.port)
    good = _bundle([_msg("/hands/right/palm", 0.0, 200.0, 0.0)]).dgram
    packets = [
        b"not osc at all", b"/hands/right/palm\0\0\0,fff\0\0\0\0\x00", b"#bundle\0\0\0\0\0",
        b"#bundle\0" + b"\0" * 8 + b"\x7f\xff\xff\xf0/x\0\0",               # size past the end
        _msg("/hands/right/palm", float("nan"), 200.0, 0.0).dgram,          # NaN
        _msg("/hands/right/palm", float("inf"), 200.0, 0.0).dgram,
        _bundle([_msg("/hands/right/palm", "a", "b", "c")]).dgram,          # strings
        _bundle([_msg("/hands/right/palm", 1.0, 2.0)]).dgram,               # too few
        _bundle([_msg("/hands/right/tips", *([1.0] * 5000))]).dgram,        # a huge list
        _bundle([_msg("/hands/right/grab", 5.0), _msg("/hands/right/palm", 0.0, 200.0, 0.0)]).dgram,
        _bundle([_msg("/hands/right/grab", 0.5)]).dgram,                     # no palm
        _msg("/what/ever", 1.0).dgram, _msg("/hands/middle/palm", 1.0, 2.0, 3.0).dgram,
        b"/" + b"x" * 70000,                                                 # oversize
        b"",
    ]
    for p in packets:
        try:
            sock.sendto(p, dest)
        except OSError:   # the 70 kB one may be refused by the kernel: fine
            pass
    sock.sendto(good, dest)
    assert wait_for(lambda: tracker.stats["frames"] == 1), rx.summary()
    st = rx.stats
    assert st["bad.nonfinite"] == 2 and st["bad.type"] == 1 and st["bad.args"] == 2
    assert st["bad.range"] == 1 and st["bad.missing"] == 1
    assert st["malformed"] >= 3 and st["unknown"] == 2
    assert tracker.stats["rejected"] == 0 and bus.peek("hands.right.visible") == 1.0
    # a flood of mixed good and bad packets
    bad = _msg("/hands/right/palm", float("nan"), 0.0, 0.0).dgram
    for i in range(3000):
        sock.sendto((good, bad, b"junk", _msg("/x", i).dgram)[i % 4], dest)
    time.sleep(0.3)
    assert rx.alive and rx.crashed is None
    assert tracker.stats["frames"] > 1 and tracker.stats["rejected"] == 0
    t0 = time.monotonic()
    rx.stop()
    assert time.monotonic() - t0 < 0.5 and not rx.alive
    assert "hand frames" in rx.summary()
    sock.close()


_FLOODER = r"""
import socket, sys, time
port, rate, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
pkt = bytes.fromhex(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t0 = time.monotonic(); sent = 0
while True:
    el = time.monotonic() - t0
    if el >= secs: break
    while sent < el * rate:
        s.sendto(pkt, ("127.0.0.1", port)); sent += 1
    time.sleep(0.0005)
print(sent)
"""


def test_flood_cpu_budget(rig):
    """20k datagrams/s (full vj frames) must not take more than ~30% of a core."""
    rx, tracker, bus, client = rig("vj")
    pkt = _bundle([_msg("/hands/right/palm", 0.0, 200.0, 0.0), _msg("/hands/right/grab", 0.5),
                   _msg("/hands/right/tips", *([1.0] * 15))]).dgram
    cpu0, t0 = rx.cpu_time, time.monotonic()
    out = subprocess.run([sys.executable, "-c", _FLOODER, str(rx.port), "20000", "1.0", pkt.hex()],
                         capture_output=True, text=True, timeout=20)
    time.sleep(0.1)
    wall = time.monotonic() - t0
    share = (rx.cpu_time - cpu0) / wall
    print(f"sent {out.stdout.strip()} datagrams; receiver thread CPU {share:.0%} of a core; "
          f"{rx.stats['frames']} frames, {rx.stats['kernel_drops']} kernel drops, "
          f"{rx.stats['throttled']} throttles")
    assert int(out.stdout) > 5000
    assert share < 0.35
    assert rx.alive and tracker.stats["frames"] > 100
