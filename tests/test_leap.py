"""The Leap WebSocket v6 client against a real WebSocket server on loopback."""
from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from conftest import free_port, wait_for
from engine.signals.leap import LeapSource, parse_frame

FINGERS = ["thumb", "index", "middle", "ring", "pinky"]


class LeapServer:
    """A v6 server: greets, records what clients send, sends what the test asks."""

    def __init__(self, port: int, greet=True):
        self.port, self.greet = port, greet
        self.received: list = []  # (connection number, message)
        self.conns: list = []
        self._loop = None
        self._stop = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self):
        self._thread.start()
        assert self._ready.wait(3)
        return self

    async def _main(self):
        from websockets.asyncio.server import serve
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", self.port, compression=None, max_size=None):
            self._ready.set()
            await self._stop.wait()

    async def _handler(self, ws):
        n = len(self.conns)
        self.conns.append(ws)
        if self.greet:
            await ws.send(json.dumps({"version": 6}))
        try:
            async for m in ws:
                self.received.append((n, json.loads(m)))
        except Exception:
            pass

    def _call(self, coro_fn, *args):
        async def go():
            return await coro_fn(*args)
        return asyncio.run_coroutine_threadsafe(go(), self._loop).result(3)

    def send(self, msg, conn=-1):
        text = msg if isinstance(msg, str) else json.dumps(msg)
        self._call(self.conns[conn].send, text)

    def close_conn(self, conn=-1):
        self._call(self.conns[conn].close)

    def stop(self):
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(3)


def _v6_frame(ts=236771514099, hand_id=42):
    """The original leapd v6 shape."""
    pointables = []
    for f in range(5):
        pointables.append({
            "id": 400 + f, "handId": hand_id, "type": f, "tipPosition": [10.0 * f, 200.0, 5.0],
            "btipPosition": [0, 0, 0], "direction": [0, 0, -1], "extended": f != 0,
            "length": 50.0, "width": 18.0, "touchDistance": 0.3, "touchZone": "hovering",
            "bases": [[[1, 0, 0], [0, 1, 0], [0, 0, 1]]] * 4})
    pointables.reverse()  # the order in the message must not matter
    return {
        "currentFrameRate": 110.5, "id": 1234, "timestamp": ts, "r": [[1, 0, 0]] * 3, "s": 1.0,
        "t": [0, 0, 0], "devices": [], "gestures": [{"id": 1, "type": "circle"}],
        "interactionBox": {"center": [0, 200, 0], "size": [235.2, 235.2, 147.9]},
        "hands": [{
            "id": hand_id, "type": "right", "palmPosition": [1.5, 180.0, -20.0],
            "stabilizedPalmPosition": [99.0, 99.0, 99.0], "palmVelocity": [10, 0, -5],
            "palmNormal": [0, -1, 0], "direction": [0, 0, -1], "palmWidth": 80.0,
            "grabStrength": 0.25, "pinchStrength": 0.5, "sphereCenter": [0, 0, 0],
            "sphereRadius": 60.0, "confidence": 1.0, "timeVisible": 3.5, "r": [[1, 0, 0]] * 3,
            "s": 1.0, "t": [0, 0, 0]}],
        "pointables": pointables}


def _shim_frame(ts=5_000_000, hand_id=3):
    """UltraleapTrackingWebSocket's shape: no interactionBox, gestures, sphere, stabilized
    position, r/s/t; pointable id = handId*10 + finger and no type; extra grabAngle."""
    pointables = [{"id": hand_id * 10 + f, "handId": hand_id, "tipPosition": [f, -f, 100.0 + f],
                   "direction": [0, 0, -1], "extended": True, "length": 7.7, "width": 1e9}
                  for f in (4, 2, 0, 3, 1)]
    return {"currentFrameRate": 120.0, "devices": [], "id": 77, "timestamp": ts,
            "hands": [{"id": hand_id, "type": "left", "palmPosition": [-30, 150, 10],
                       "palmVelocity": [0, 0, 0], "palmNormal": [0, -1, 0],
                       "direction": [0, 0, -1], "grabStrength": 1.0, "pinchStrength": 0.0,
                       "grabAngle": 2.9, "pinchDistance": 40.0, "timeVisible": 0.2}],
            "pointables": pointables}


# --------------------------------------------------------------------------- parse_frame
def test_parse_v6_frame():
    f = parse_frame(_v6_frame(), 12.5)
    assert f["t"] == 12.5 and f["leap_us"] == 236771514099
    assert f["box"] == {"center": [0.0, 200.0, 0.0], "size": [235.2, 235.2, 147.9]}
    (h,) = f["hands"]
    assert h["id"] == 42 and h["type"] == "right"
    assert h["palm"] == [1.5, 180.0, -20.0]  # palmPosition, not stabilizedPalmPosition
    assert h["velocity"] == [10.0, 0.0, -5.0] and h["normal"] == [0.0, -1.0, 0.0]
    assert h["grab"] == 0.25 and h["pinch"] == 0.5 and h["time_visible"] == 3.5
    assert h["tips"] == [[10.0 * f, 200.0, 5.0] for f in range(5)]
    assert h["extended"] == [False, True, True, True, True]
    assert set(f) == {"t", "leap_us", "hands", "box"}
    assert set(h) == {"id", "type", "palm", "velocity", "normal", "direction", "grab", "pinch",
                      "tips", "extended", "time_visible"}


def test_parse_shim_frame():
    f = parse_frame(_shim_frame(), 1.0)
    assert f["box"] is None
    (h,) = f["hands"]
    assert h["type"] == "left" and h["palm"] == [-30.0, 150.0, 10.0]
    assert h["tips"] == [[float(x), float(-x), 100.0 + x] for x in range(5)]


def test_parse_partial_and_empty():
    f = parse_frame({"hands": [], "timestamp": None}, 0.0)
    assert f == {"t": 0.0, "leap_us": None, "hands": [], "box": None}
    m = _v6_frame()
    m["pointables"] = m["pointables"][:3]  # fingers missing -> no tips
    m["hands"][0]["type"] = "other"
    for k in ("palmVelocity", "grabStrength", "timeVisible"):
        del m["hands"][0][k]
    h = parse_frame(m, 0.0)["hands"][0]
    assert h["tips"] is None and h["extended"] is None and h["type"] is None
    assert h["velocity"] is None and h["grab"] is None and h["time_visible"] is None
    m = _v6_frame()
    m["pointables"].append({"id": 9, "handId": 999, "type": 1, "tipPosition": "x"})  # no such hand
    assert parse_frame(m, 0.0)["hands"][0]["tips"] is not None


@pytest.mark.parametrize("mutate, reason", [
    (lambda m: m.update(hands={}), "hands"),
    (lambda m: m.pop("hands"), "hands"),
    (lambda m: m["hands"][0].pop("palmPosition"), "palmPosition"),
    (lambda m: m["hands"][0].update(palmPosition=[1, 2]), "palmPosition"),
    (lambda m: m["hands"][0].update(palmPosition=[1, "2", 3]), "palmPosition"),
    (lambda m: m["hands"][0].update(grabStrength="a lot"), "grabStrength"),
    (lambda m: m["hands"][0].update(pinchStrength=True), "pinchStrength"),
    (lambda m: m["hands"][0].update(palmVelocity=[float("nan"), 0, 0]), "palmVelocity"),
    (lambda m: m["hands"][0].update(id="42"), "id"),
    (lambda m: m.update(hands=[7]), "hand 0"),
    (lambda m: m.update(pointables={}), "pointables"),
    (lambda m: m["pointables"][0].update(tipPosition=None), "tipPosition"),
    (lambda m: m.update(interactionBox={"center": [0, 0, 0]}), "interactionBox"),
    (lambda m: m.update(timestamp="now"), "timestamp"),
])
def test_parse_rejects(mutate, reason):
    m = _v6_frame()
    mutate(m)
    with pytest.raises(ValueError, match=reason):
        parse_frame(m, 0.0)


# --------------------------------------------------------------------------- the client
@pytest.fixture
def rig():
    made = []

    def make(port=None, start_server=True, **kw):
        port = port or free_port()
        got = []
        kw.setdefault("reconnect", (0.05, 0.2))
        kw.setdefault("silence", 2.0)
        client = LeapSource(got.append, url=f"ws://127.0.0.1:{port}/v6.json", **kw)
        server = LeapServer(port).start() if start_server else None
        made.append((client, server))
        return client, server, got, port

    yield make
    for client, server in made:
        client.stop()
        if server:
            server.stop()


def test_client_end_to_end(rig):
    client, server, got, _ = rig()
    assert client.start() is client
    assert wait_for(lambda: len(server.received) >= 2)
    assert server.received[:2] == [(0, {"background": True}), (0, {"enableGestures": False})]
    assert client.connected and client.version == 6
    assert [t.name for t in threading.enumerate()].count("leap-ws") >= 1

    t0 = time.monotonic()
    server.send(_v6_frame(ts=1_000_000))
    server.send(_shim_frame(ts=2_000_000))
    server.send({"event": {"type": "deviceEvent", "state": {"attached": True, "streaming": True}}})
    server.send("{not json")
    server.send("[1, 2, 3]")
    bad = _v6_frame(ts=3_000_000)
    del bad["hands"][0]["palmPosition"]
    server.send(bad)
    server.send(_v6_frame(ts=1_500_000))  # 0.5 s before the last good one: stale
    server.send(_shim_frame(ts=4_000_000))
    assert wait_for(lambda: len(got) == 3 and client.stats["stale"] == 1)
    v6, shim, shim2 = got
    assert t0 <= v6["t"] <= shim["t"] <= time.monotonic()
    assert v6["leap_us"] == 1_000_000 and v6["box"]["size"] == [235.2, 235.2, 147.9]
    assert v6["hands"][0]["palm"] == [1.5, 180.0, -20.0] and v6["hands"][0]["type"] == "right"
    assert v6["hands"][0]["tips"][1] == [10.0, 200.0, 5.0]
    assert shim["box"] is None and shim["hands"][0]["type"] == "left"
    assert shim["hands"][0]["tips"] == [[float(x), float(-x), 100.0 + x] for x in range(5)]
    assert shim2["leap_us"] == 4_000_000

    # an oversized message: websockets closes with 1009; the client counts it and reconnects
    server.send('{"hands": [], "pad": "' + "x" * (1 << 20) + '"}')
    assert wait_for(lambda: len(server.conns) == 2 and client.connected)
    assert wait_for(lambda: (1, {"background": True}) in server.received)
    server.send(_shim_frame(ts=10))  # a new connection: the clock reference starts afresh
    assert wait_for(lambda: len(got) == 4)

    # the server closes the connection: reconnect and frames again
    server.close_conn()
    assert wait_for(lambda: len(server.conns) == 3 and client.connected)
    server.send(_v6_frame(ts=20))
    assert wait_for(lambda: len(got) == 5)
    assert got[-1]["hands"][0]["id"] == 42

    st = client.stats
    assert st["frames"] == 5 and st["events"] == 1 and st["bad_json"] == 2
    assert st["bad_frames"] == 1 and st["oversize"] == 1 and st["stale"] == 1
    assert st["connects"] == 3 and st["disconnects"] == 2
    assert "5 frames" in client.summary() and "1 oversize" in client.summary()

    t = time.monotonic()
    client.stop()
    assert time.monotonic() - t < 1.0
    assert not client.connected
    assert not any(th.name == "leap-ws" and th.is_alive() for th in threading.enumerate()
                   if th is client._thread)


def test_silent_server_is_reconnected(rig):
    client, server, got, _ = rig(silence=0.4)
    client.start()
    assert wait_for(lambda: client.connected)
    server.send(_v6_frame())
    assert wait_for(lambda: len(got) == 1)
    # nothing more: after 0.4 s the client drops the connection and connects again
    assert wait_for(lambda: len(server.conns) >= 2, timeout=3)
    assert client.stats["silent"] >= 1
    assert wait_for(lambda: client.connected)
    server.send(_v6_frame(ts=1))  # a new connection: not stale
    assert wait_for(lambda: len(got) == 2)


def test_server_appears_later(rig):
    client, _, got, port = rig(start_server=False)
    client.start()
    assert wait_for(lambda: client.stats["failures"] >= 3)
    assert not client.connected and client._thread.is_alive()
    server = LeapServer(port).start()
    try:
        assert wait_for(lambda: client.connected, timeout=3)
        server.send(_shim_frame())
        assert wait_for(lambda: len(got) == 1)
    finally:
        t = time.monotonic()
        client.stop()
        assert time.monotonic() - t < 1.0
        server.stop()


def test_stop_while_retrying_is_prompt(rig):
    client, _, _, _ = rig(start_server=False, reconnect=(5.0, 5.0))
    client.start()
    assert wait_for(lambda: client.stats["failures"] >= 1)
    t = time.monotonic()
    client.stop()  # in the middle of a 2.5..5 s backoff sleep
    assert time.monotonic() - t < 1.0
    assert not client._thread.is_alive()


def test_sink_errors_do_not_kill_the_thread(rig):
    port = free_port()
    server = LeapServer(port).start()
    calls = []

    def sink(frame):
        calls.append(frame)
        if len(calls) == 1:
            raise RuntimeError("boom")

    client = LeapSource(sink, url=f"ws://127.0.0.1:{port}/v6.json", reconnect=(0.05, 0.2)).start()
    try:
        assert wait_for(lambda: client.connected)
        server.send(_v6_frame(ts=1))
        server.send(_v6_frame(ts=2))
        server.send(_v6_frame(ts=5_000_000))
        server.send(_v6_frame(ts=7))  # 5 s back: the service restarted its clock, kept
        assert wait_for(lambda: len(calls) == 4)
        assert client.stats["sink_errors"] == 1 and client.stats["frames"] == 3
        assert client.stats["clock_resets"] == 1 and calls[-1]["leap_us"] == 7
    finally:
        client.stop()
        server.stop()


def test_bad_arguments():
    with pytest.raises(Exception):
        LeapSource(print, url="http://nope")
    with pytest.raises(TypeError):
        LeapSource(None)
    with pytest.raises(ValueError):
        LeapSource(print, reconnect=(0, 1))
