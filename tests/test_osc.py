"""OSC in through real sockets (python-osc clients and liblo's oscsend), OSC out, robustness."""
import os
import shutil
import socket
import struct
import subprocess
import time

import numpy as np
import pytest
from pythonosc import osc_bundle_builder, osc_message_builder, udp_client
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage

from conftest import wait_for
from engine.control.dispatch import Dispatcher
from engine.outputs.osc_out import OscOut, encode_bundle, encode_message, parse_destination
from engine.signals.bus import SignalBus
from engine.signals.osc import OscHandler, OscIn


SPEED = {"value": 1.0, "norm": 0.5, "lo": 0.0, "hi": 2.0, "default": 1.0, "description": ""}


def dispatcher(bus):
    """The control plane's dispatcher, for a show with three scenes and a parameter `speed`."""
    return Dispatcher(bus, status=lambda: {"scenes": 3, "scene_names": ["intro", "drop", "outro"],
                                           "params": {"speed": SPEED}})


@pytest.fixture
def osc():
    bus = SignalBus()
    rx = OscIn(bus, port=0, control=dispatcher(bus).dispatch).start()
    yield bus, rx
    rx.stop()


def msg(address, *args):
    b = osc_message_builder.OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build()


def test_python_osc_messages_become_signals(osc):
    bus, rx = osc
    c = udp_client.SimpleUDPClient("127.0.0.1", rx.port)
    c.send_message("/td/chan1", 0.25)            # TouchDesigner: one number per address
    c.send_message("/td/count", 7)               # int
    c.send_message("/max/list", [1, 2.5, 3])     # Max: a list
    c.send_message("/label", "intro")            # strings kept as the last value
    c.send_message("/go", [])                    # no argument: an event
    c.send_message("/flag", True)
    assert wait_for(lambda: rx.stats["messages"] >= 6)
    s = bus.snapshot()
    assert s["osc./td/chan1"] == 0.25 and s["osc./td/count"] == 7.0
    assert np.allclose(s["osc./max/list"], [1, 2.5, 3]) and s["osc./max/list"].dtype == np.float32
    assert s["osc./label"] == "intro" and s["osc./flag"] == 1.0
    assert s.fired("osc./go")
    assert rx.stats.problems() == 0


def test_bundles_unpacked_and_timetags_never_wait(osc):
    bus, rx = osc
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # a TouchDesigner-style bundle: many channels, timetag an hour in the future
    b = osc_bundle_builder.OscBundleBuilder(time.time() + 3600)
    for i in range(16):
        b.add_content(msg(f"/chop/chan{i}", i / 16))
    inner = osc_bundle_builder.OscBundleBuilder(osc_bundle_builder.IMMEDIATELY)
    inner.add_content(msg("/nested/x", 0.5))
    b.add_content(inner.build())
    t0 = time.monotonic()
    sock.sendto(b.build().dgram, ("127.0.0.1", rx.port))
    assert wait_for(lambda: rx.stats["messages"] >= 17, 2.0)
    assert time.monotonic() - t0 < 1.0
    s = bus.snapshot()
    assert [s[f"osc./chop/chan{i}"] for i in range(16)] == [i / 16 for i in range(16)]
    assert s["osc./nested/x"] == 0.5 and rx.stats["bundles"] == 2


def oscsend_available():
    if shutil.which("oscsend"):
        return True
    if os.environ.get("CI"):
        pytest.fail("oscsend (liblo-tools) is missing: .ci/run installs it")
    pytest.skip("oscsend (Debian liblo-tools) not installed")


def test_liblo_oscsend_reaches_signals_and_engine_events(osc):
    oscsend_available()
    bus, rx = osc
    for args in (["/liblo/fader", "f", "0.75"], ["/liblo/list", "iff", "1", "2.5", "-3.5"],
                 ["/liblo/name", "s", "verse"], ["/vj/cue/next"], ["/vj/tempo", "f", "128"],
                 ["/vj/param/speed", "f", "0.3"], ["/vj/scene", "s", "drop"]):
        subprocess.run(["oscsend", "127.0.0.1", str(rx.port), *args], check=True, timeout=10)
    assert wait_for(lambda: rx.stats["messages"] >= 7)
    s = bus.snapshot()
    assert s["osc./liblo/fader"] == 0.75
    assert np.allclose(s["osc./liblo/list"], [1, 2.5, -3.5])
    assert s["osc./liblo/name"] == "verse"
    assert s.fired("cue.next") and s.events_of("clock.tempo") == (128.0,)
    assert s.events_of("param.set") == (("speed", pytest.approx(0.3), "norm"),)
    assert s.events_of("cue.goto") == ("drop",)


def test_engine_namespace_events_and_counted_mistakes():
    bus = SignalBus()
    d = dispatcher(bus)
    h = OscHandler(bus, control=d.dispatch)
    for m in (msg("/vj/cue/next"), msg("/vj/cue/prev"), msg("/vj/scene", 2.0), msg("/vj/cue/goto", 3),
              msg("/vj/tap"), msg("/vj/tempo", 90), msg("/vj/param/speed", 0.5),
              msg("/vj/param/speed/raw", 1.5), msg("/vj/latent/key", 3), msg("/vj/latent/seed", 42.0),
              msg("/vj/record/start", "take1"), msg("/vj/record/stop"), msg("/vj/learn", "speed"),
              msg("/vj/learn", "speed", "relative"), msg("/vj/learn/cancel")):
        h.datagram(m.dgram)
    s = bus.snapshot()
    assert s.fired("cue.next") and s.fired("cue.prev") and s.fired("clock.tap")
    assert s.events_of("cue.goto") == (2, 3)
    assert s.events_of("clock.tempo") == (90.0,)
    assert s.events_of("param.set") == (("speed", 0.5, "norm"), ("speed", 1.5, "raw"))
    assert s["latent.key"] == 3 and s.events_of("latent.seed") == (42,)
    assert s.events_of("record.start") == ("take1",) and s.events_of("record.stop") == (None,)
    assert s.events_of("param.learn") == (("speed",), ("speed", "relative"), None)
    assert h.stats.problems() == 0 and d.problems() == 0
    for m in (msg("/vj/tempo", "fast"), msg("/vj/tempo", 9999), msg("/vj/param/speed", "x"),
              msg("/vj/scene"), msg("/vj/learn", 3)):
        h.datagram(m.dgram)
    h.datagram(msg("/vj/nope", 1).dgram)
    assert d.stats["bad_type"] == 4 and d.stats["out_of_range"] == 1 and d.stats["unknown"] == 1
    assert h.stats.problems() == 0  # well-formed OSC: the packets were fine, the commands were not
    assert not bus.snapshot().events


def test_malformed_truncated_huge_and_deep_packets_are_counted(osc):
    bus, rx = osc
    good = msg("/ok", 1.0).dgram
    deep = good
    for _ in range(3000):  # far deeper than any real bundle: refused, not recursed into
        deep = b"#bundle\0" + struct.pack(">Q", 1) + struct.pack(">i", len(deep)) + deep
    bad = [b"", b"\x00\x01", b"hello world!", good[:-2], good[:8], b"/x\0\0,f\0\0\0",
           b"/x\0\0,s\0\0\xff\xfe\0\0", b"#bundle\0" + b"\0" * 8 + struct.pack(">i", 9999),
           b"/x\0\0,zzz" + b"\0" * 8, b"/" + b"a" * 400 + b"\0\0\0" + b",f\0\0" + b"\0" * 4,
           os.urandom(65000), deep[:60000]]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    for b in bad:
        sock.sendto(b, ("127.0.0.1", rx.port))
        time.sleep(0.002)
    sock.sendto(good, ("127.0.0.1", rx.port))
    assert wait_for(lambda: bus.peek("osc./ok") == 1.0)
    assert rx.stats["malformed"] >= len(bad) - 3, rx.stats
    assert rx.crashed is None and rx._thread.is_alive()
    # a handler fed directly: the deep bundle in full, and an oversized "datagram" (WebSocket)
    h = OscHandler(SignalBus())
    h.datagram(deep)
    h.datagram(b"/" + b"x" * 70000)
    assert h.stats["malformed"] == 1 and h.stats["oversize"] == 1


def test_allow_list_and_channel_cap():
    bus = SignalBus()
    rx = OscIn(bus, port=0, allow=["127.0.0.2"]).start()
    try:
        udp_client.SimpleUDPClient("127.0.0.1", rx.port).send_message("/x", 1.0)
        assert wait_for(lambda: rx.stats["refused"] == 1)
        assert "osc./x" not in bus.snapshot()
    finally:
        rx.stop()
    h = OscHandler(bus, max_channels=3)
    for i in range(5):
        h.datagram(msg(f"/c{i}", 1.0).dgram)
    # a full table forgets its stalest addresses: the newest always get in
    assert h.stats["evicted"] == 2 and bus.peek("osc./c0") is None and bus.peek("osc./c4") == 1.0
    h.datagram(msg("/c2", 3.0).dgram)  # written again: now the freshest
    h.datagram(msg("/late", 2.0).dgram)
    assert bus.peek("osc./late") == 2.0 and bus.peek("osc./c2") == 3.0 and bus.peek("osc./c3") is None


def test_osc_out_one_number_per_address_and_bundles():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    port = rx.getsockname()[1]
    state = {"/vj/tempo": 128.0, "/vj/beat": 3.5, "/vj/param/speed": 0.25}
    out = OscOut([f"127.0.0.1:{port}"]).start()
    try:
        out.publish(state)
        got = {}
        for _ in range(3):
            m = OscMessage(rx.recv(65536))
            got[m.address] = m.params
        assert got == {k: [pytest.approx(v)] for k, v in state.items()}
    finally:
        out.stop()
    big = {f"/vj/param/p{i:03d}": i / 500 for i in range(500)}
    out = OscOut([("127.0.0.1", port)], bundle=True)
    out.send(big)
    seen = {}
    while len(seen) < 500:
        b = OscBundle(rx.recv(65536))
        assert b.size < 8192 + 64
        for m in b:
            seen[m.address] = m.params[0]
    assert seen == {k: pytest.approx(v) for k, v in big.items()}
    assert OscMessage(encode_message("/a", 1.5)).params == [1.5]
    assert [m.address for m in OscBundle(encode_bundle([encode_message("/a", 1), encode_message("/b", 2)]))] == ["/a", "/b"]
    assert parse_destination("9000") == ("127.0.0.1", 9000)
    with pytest.raises(ValueError):
        parse_destination("host:port")


def test_osc_out_to_liblo_oscdump():
    oscsend_available()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dump = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        out = OscOut([("127.0.0.1", port)])
        for _ in range(5):
            out.send({"/vj/tempo": 128.0, "/vj/audio/low": 0.5})
            time.sleep(0.1)
    finally:
        time.sleep(0.3)
        dump.terminate()
        text = dump.communicate(timeout=5)[0]
    assert "/vj/tempo f 128.0" in text and "/vj/audio/low f 0.5" in text


def test_a_controller_plugged_in_late_works_after_a_flood_of_addresses():
    """Real UDP: 3000 distinct addresses fill the table; a fader that appears afterwards is heard."""
    bus = SignalBus()
    rx = OscIn(bus, port=0).start()
    try:
        c = udp_client.SimpleUDPClient("127.0.0.1", rx.port)
        for i in range(3000):
            c.send_message(f"/spam/{i}", float(i))
            if i % 200 == 0:
                time.sleep(0.01)  # stay under the socket buffer: this is about the table, not drops
        assert wait_for(lambda: rx.stats["messages"] >= 3000 - rx.stats["kernel_drops"])
        c.send_message("/late/fader", 0.5)
        assert wait_for(lambda: bus.peek("osc./late/fader") == 0.5)
        assert rx.stats["evicted"] >= 3000 - 2048 - rx.stats["kernel_drops"]
        assert len(bus.snapshot().values) <= 2048
    finally:
        rx.stop()
