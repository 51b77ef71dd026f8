"""Every writable address of the namespace, with a set loaded, sent every wrong value there is
(wrong types, NaN, +-inf, 1e300, a negative and a huge integer, a 10 KB string) over UDP and
over the OSCQuery WebSocket while the engine renders: frames keep coming, every bad value is
counted and dropped, and a good command still works afterwards."""
import logging
import socket
import threading
import time

from pythonosc.osc_message_builder import OscMessageBuilder

from conftest import wait_for
from test_rig_run import free_port
from engine.control import namespace

BAD = [float("nan"), float("inf"), float("-inf"), 1e300, -1, 2 ** 62, "x" * 10_000, b"\x00" * 16, True,
       "no-such-name", "2", "bell\x07"]


def datagrams(status):
    out = []
    for e, key in namespace.expand(status):
        if not e.writable:
            continue
        for sig in e.signatures:
            n = max(1, len(sig))
            for v in BAD:
                for tag in ("f", "d") if isinstance(v, float) else (None,):
                    if tag == "f" and abs(v) == 1e300:
                        continue  # no float32 holds it: sent as a double only
                    b = OscMessageBuilder(e.path(key))
                    for _ in range(n):
                        b.add_arg(v, tag)
                    out.append(b.build().dgram)
    # and the same again, packed into bundles of eight (one datagram, one time stamp for all)
    bundles = []
    for i in range(0, len(out), 8):
        part = out[i:i + 8]
        bundles.append(b"#bundle\0" + b"\0" * 7 + b"\1" + b"".join(len(m).to_bytes(4, "big") + m for m in part))
    return out, bundles


def test_every_bad_value_over_udp_and_websocket_is_counted_and_frames_keep_coming(tmp_path):
    from websockets.sync.client import connect

    from engine.session import ControlOptions, Options, Session
    from engine.show.sets import SetList
    (tmp_path / "p.py").write_text(
        "def frame(p, s):\n    p.param('speed', default=1.0, lo=0, hi=2)\n    return p.controls(z=p.seed(1))\n")
    (tmp_path / "show.toml").write_text('[[scene]]\nname = "one"\npatch = "p.py"\n'
                                        '[[scene]]\nname = "two"\npatch = "p.py"\nbars = 64\n')
    sl = SetList(tmp_path / "show.toml")
    session = Session(Options(patch=sl.scene.patch, setlist=sl, size=(48, 32), fps=30.0, live=True,
                              control=ControlOptions(osc_port=0, oscquery_port=free_port(socket.SOCK_STREAM),
                                                     midi=None, mappings=tmp_path / "m.toml",
                                                     record_dir=tmp_path / "takes")))
    with session:
        engine, d = session.engine, session.dispatcher
        engine.run_live(frames=5)
        pkts, bundles = datagrams(session.publisher.status)
        assert len(pkts) > 150
        done = threading.Event()
        sent = {"udp": 0, "ws": 0}

        def udp():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for i, p in enumerate(pkts + bundles):
                    s.sendto(p, ("127.0.0.1", session.osc_in.port))
                    sent["udp"] += 1 if i < len(pkts) else 8 if i < len(pkts) + len(bundles) - 1 else \
                        len(pkts) - 8 * (len(bundles) - 1)
                    if i % 20 == 19:
                        time.sleep(0.005)  # a busy controller, not a flood: every packet must be read

        def ws():
            with connect(f"ws://127.0.0.1:{session.oscquery.port}/") as c:
                for p in pkts:
                    c.send(p)
                    sent["ws"] += 1

        def both():
            try:
                udp()
                ws()
            finally:
                done.set()
        records = []
        counter = logging.Handler()
        counter.emit = records.append
        logging.getLogger().addHandler(counter)
        sender = threading.Thread(target=both)
        frames0 = engine.stats.frame
        t0 = time.monotonic()
        sender.start()
        engine.run_live(should_stop=lambda: done.is_set() and time.monotonic() - t0 > 2.0 or
                        time.monotonic() - t0 > 120)
        sender.join()
        deadline = time.monotonic() + 10
        total = sent["udp"] + sent["ws"]
        while d.problems() + d.stats["accepted"] < total and time.monotonic() < deadline:
            engine.run_live(frames=3)
        logging.getLogger().removeHandler(counter)
        took = time.monotonic() - t0
        drawn = engine.stats.frame - frames0
        report = f"{drawn} frames in {took:.1f} s; sent {sent}; dispatcher {dict(d.stats)}; osc {dict(session.osc_in.stats)}"
        print(report)
        assert drawn >= 0.5 * 30 * took, report         # frames kept coming
        assert d.problems() + d.stats["accepted"] == total, report   # every command was judged
        # only the few values that fit (a -1 or True clipped into a parameter, a scene 1...) got through
        assert d.problems() >= 0.85 * total, report
        for kind in ("bad_type", "not_finite", "out_of_range", "too_long"):
            assert d.stats[kind] > 0, (kind, report)
        assert session.patches.last_error is None, session.patches.last_error
        assert not engine._stage_errors, engine._stage_errors
        # the log says what is wrong, rate-limited: not a line per bad packet
        assert len(records) < 0.05 * total, (len(records), [r.getMessage() for r in records[:20]])
        # and the engine still answers
        assert d.dispatch("/vj/tempo", (100.0,)) and d.dispatch("/vj/scene", ("two",))
        engine.run_live(frames=3)
        assert session.clock.bpm == 100.0 and session.setlist.index == 1


def test_garbage_over_the_websocket_is_said_on_the_hud_like_garbage_over_udp(tmp_path):
    """OSC over OSCQuery's WebSocket has a handler of its own: its bad packets reach the HUD's
    news and the log's input summary too, not only the UDP port's."""
    from websockets.sync.client import connect

    from engine.session import ControlOptions, Options, Session
    (tmp_path / "p.py").write_text("def frame(p, s):\n    return p.controls(z=p.seed(1))\n")
    with Session(Options(patch=tmp_path / "p.py", size=(48, 32), fps=30.0, live=True,
                         control=ControlOptions(osc_port=0, oscquery_port=free_port(socket.SOCK_STREAM), midi=None,
                                                mappings=tmp_path / "m.toml", record_dir=tmp_path / "takes"))) as s:
        s.engine.run_live(frames=3)
        with connect(f"ws://127.0.0.1:{s.oscquery.port}/") as c:
            for junk in (b"\xff" * 40, b"/vj/tempo\0\0\0,q\0\0", b"#bundle\0" + b"\0" * 8 + b"\0\0\0\x07"):
                c.send(junk)
        assert wait_for(lambda: s.ws_osc.stats.problems() >= 3, 5), dict(s.ws_osc.stats)
        s.board.report_problems()
        news = [m for _, m in s.board.news]
        assert any("websocket OSC" in m and "malformed" in m for m in news), news
        s.engine.run_live(frames=3)       # and the frames keep coming
