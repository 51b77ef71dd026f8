"""`vj run` with the rig: OSCQuery over HTTP and WebSocket, OSC into parameters, scenes,
tempo and recording, and learn into the mappings file, all through real sockets."""
import asyncio
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from pythonosc import udp_client
from pythonosc.osc_message import OscMessage

from conftest import ROOT, poll, read_video, stop, vj_cmd

PATCH = """
def setup(p):
    p.keys = p.seeds([1, 2, 3])

def frame(p, s):
    speed = p.param("speed", default=0.5, lo=0, hi=2, smooth=0.0, description="walk speed")
    glow = p.param("glow", default=0.0)
    return p.controls(z=p.loop(p.keys, beats=8), zoom=1 + 0.1 * speed, brightness=0.2 * glow)
"""

SET = """
[[scene]]
name = "one"
patch = "rigpatch.py"

[[scene]]
name = "two"
patch = "rigpatch.py"
"""


def free_port(kind=socket.SOCK_DGRAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        assert r.headers["Content-Type"] == "application/json"
        body = r.read()
        return json.loads(body) if body else None


def wait_for(cond, timeout=20.0):
    return poll(cond, timeout, step=0.1)


@pytest.fixture
def show(tmp_path, env_no_display):
    (tmp_path / "rigpatch.py").write_text(PATCH)
    (tmp_path / "show.toml").write_text(SET)
    osc, oq, out = free_port(), free_port(socket.SOCK_STREAM), free_port()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", out))
    sink.settimeout(10)
    proc = subprocess.Popen(
        vj_cmd("run", tmp_path / "show.toml", "--headless", "--size", "96x64", "--fps", "30",
               "--osc-port", osc, "--oscquery-port", oq, "--osc-out", f"127.0.0.1:{out}",
               "--record-dir", tmp_path / "takes", "--no-midi"),
        cwd=ROOT, env=env_no_display, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: get(oq, "/vj/param/speed"), 60), "engine did not come up"
        yield {"osc": osc, "oq": oq, "sink": sink, "proc": proc, "dir": tmp_path}
    finally:
        stop(proc)
        sink.close()


def test_oscquery_namespace_host_info_and_osc_control(show):
    oq, c = show["oq"], udp_client.SimpleUDPClient("127.0.0.1", show["osc"])
    root = get(oq, "/")
    assert root["FULL_PATH"] == "/" and "vj" in root["CONTENTS"]
    vj = root["CONTENTS"]["vj"]["CONTENTS"]
    for name in ("scene", "cue", "tempo", "tap", "param", "latent", "record", "learn", "beat"):
        assert name in vj, name
    speed = vj["param"]["CONTENTS"]["speed"]
    assert speed["TYPE"] == "f" and speed["ACCESS"] == 3
    assert speed["RANGE"] == [{"MIN": 0.0, "MAX": 1.0}] and speed["VALUE"] == [pytest.approx(0.25)]
    raw = speed["CONTENTS"]["raw"]
    assert raw["RANGE"] == [{"MIN": 0.0, "MAX": 2.0}] and raw["VALUE"] == [pytest.approx(0.5)]
    assert "walk speed" in speed["DESCRIPTION"]
    tempo = get(oq, "/vj/tempo")
    assert tempo["VALUE"] == [pytest.approx(120.0)] and tempo["RANGE"] == [{"MIN": 20.0, "MAX": 400.0}]
    assert get(oq, "/vj/tempo?VALUE") == {"VALUE": [pytest.approx(120.0)]}
    info = get(oq, "/?HOST_INFO")
    assert info["OSC_PORT"] == show["osc"] and info["OSC_TRANSPORT"] == "UDP" and info["NAME"] == "vj"
    with pytest.raises(urllib.error.HTTPError) as e:
        get(oq, "/vj/nothing/here")
    assert e.value.code == 404

    # OSC in -> parameters, tempo, scenes (as TouchDesigner or Max would send them)
    c.send_message("/vj/param/speed", 0.75)
    from test_osc import oscsend_available
    if oscsend_available():  # liblo, an independent OSC implementation, into a parameter
        subprocess.run(["oscsend", "127.0.0.1", str(show["osc"]), "/vj/param/glow/raw", "f", "0.5"],
                       check=True, timeout=10)
    c.send_message("/vj/tempo", 100.0)
    c.send_message("/vj/cue/next", [])
    assert wait_for(lambda: get(oq, "/vj/param/speed/raw")["VALUE"][0] == pytest.approx(1.5))
    assert wait_for(lambda: get(oq, "/vj/param/glow")["VALUE"][0] == pytest.approx(0.5))
    assert wait_for(lambda: get(oq, "/vj/tempo")["VALUE"][0] == pytest.approx(100.0))
    assert wait_for(lambda: get(oq, "/vj/scene")["VALUE"] == [2])
    c.send_message("/vj/scene", "one")
    assert wait_for(lambda: get(oq, "/vj/scene")["VALUE"] == [1])

    # OSC out: one number per address, every frame (older frames are still queued in the socket)
    sink, seen = show["sink"], {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (seen.get("/vj/tempo") == 100.0 and "/vj/beat" in seen
                                                and seen.get("/vj/param/speed") == pytest.approx(0.75)):
        m = OscMessage(sink.recv(65536))
        assert len(m.params) == 1 and isinstance(m.params[0], float)
        seen[m.address] = m.params[0]
    assert seen["/vj/tempo"] == pytest.approx(100.0) and seen["/vj/param/speed"] == pytest.approx(0.75)


def test_websocket_listen_receives_changes_and_binary_osc_controls(show):
    from websockets.asyncio.client import connect
    oq, c = show["oq"], udp_client.SimpleUDPClient("127.0.0.1", show["osc"])

    async def session():
        async with connect(f"ws://127.0.0.1:{oq}/") as ws:
            await ws.send(json.dumps({"COMMAND": "LISTEN", "DATA": "/vj/param/speed"}))
            await ws.send(json.dumps({"COMMAND": "LISTEN", "DATA": "/vj/tempo"}))
            got = {}

            async def until(pred):
                while not pred():
                    m = await asyncio.wait_for(ws.recv(), 10)
                    if isinstance(m, bytes):
                        o = OscMessage(m)
                        got.setdefault(o.address, []).append(o.params[0])
            await until(lambda: "/vj/param/speed" in got and "/vj/tempo" in got)  # current values first
            c.send_message("/vj/param/speed", 0.9)
            await until(lambda: any(v == pytest.approx(0.9) for v in got["/vj/param/speed"]))
            # a binary frame is OSC in, like UDP
            from pythonosc.osc_message_builder import OscMessageBuilder
            b = OscMessageBuilder("/vj/tempo")
            b.add_arg(140.0)
            await ws.send(b.build().dgram)
            await until(lambda: any(v == pytest.approx(140.0) for v in got["/vj/tempo"]))
            await ws.send(json.dumps({"COMMAND": "IGNORE", "DATA": "/vj/tempo"}))
            return got
    got = asyncio.run(session())
    assert got["/vj/param/speed"][0] == pytest.approx(0.25)


def test_record_start_stop_over_osc(show):
    c = udp_client.SimpleUDPClient("127.0.0.1", show["osc"])
    c.send_message("/vj/record/start", "take one")
    time.sleep(2.0)
    c.send_message("/vj/record/stop", [])
    f = show["dir"] / "takes" / "take_one.mp4"
    assert wait_for(lambda: f.exists() and get(show["oq"], "/vj/record")["VALUE"] == [0])
    time.sleep(1.0)
    frames, info = read_video(f)
    assert 30 <= len(frames) <= 90 and info["times"][0] == 0.0


def test_a_take_never_replaces_another(show):
    c = udp_client.SimpleUDPClient("127.0.0.1", show["osc"])
    takes = show["dir"] / "takes"
    for _ in range(2):
        c.send_message("/vj/record/start", "same")
        time.sleep(1.0)
        c.send_message("/vj/record/stop", [])
        assert wait_for(lambda: get(show["oq"], "/vj/record")["VALUE"] == [0])
    assert wait_for(lambda: (takes / "same.mp4").exists() and (takes / "same-2.mp4").exists())
    time.sleep(1.0)
    for name in ("same.mp4", "same-2.mp4"):
        frames, _ = read_video(takes / name)
        assert 15 <= len(frames) <= 60, name


def test_learn_over_osc_writes_the_mappings_file(show):
    c = udp_client.SimpleUDPClient("127.0.0.1", show["osc"])
    c.send_message("/vj/learn", "glow")
    time.sleep(0.5)
    c.send_message("/fader/3", 0.2)
    mf = show["dir"] / "show.mappings.toml"
    assert wait_for(lambda: mf.exists() and 'source = "osc./fader/3"' in mf.read_text())
    assert 'param = "glow"' in mf.read_text()
    c.send_message("/fader/3", 0.6)
    assert wait_for(lambda: get(show["oq"], "/vj/param/glow")["VALUE"][0] == pytest.approx(0.6))
    # edited live: invert it
    mf.write_text(mf.read_text().replace('param = "glow"', 'param = "glow"\ninvert = true'))
    time.sleep(1.5)
    c.send_message("/fader/3", 0.1)
    assert wait_for(lambda: get(show["oq"], "/vj/param/glow")["VALUE"][0] == pytest.approx(0.9))
