"""Hands through the whole engine (issue 11): `vj run --hands`, the recorded sample driving the
Xoromancy patch, hand recordings, the hand settings in the control namespace, latency on the HUD."""
import socket
import time

import pytest
from pythonosc.udp_client import SimpleUDPClient

from conftest import ROOT, free_port, frame_motion, read_video, run_vj
from engine.signals.hand_record import read_hand_file

SAMPLE = ROOT / "patches" / "hands_sample.vjhands.gz"


def test_xoromancy_follows_the_recorded_hand(tmp_path):
    """The sample: a right hand enters, rests (1-4 s), draws a figure-eight (4.2-7.8 s), rests
    again (7.8-11 s). The replay starts with the first frame. (Measured: 0.64, 1.50, 0.09.)"""
    out = tmp_path / "hands.mp4"
    proc = run_vj("run", "patches/xoromancy.py", "--hands", f"replay:{SAMPLE}", "--headless", "--record", out,
                  "--frames", "330", "--size", "96x64", "--no-osc", "--no-midi", timeout=120)
    frames, _ = read_video(out)
    assert len(frames) == 330
    motion = frame_motion(frames)            # motion[k]: frame k -> k+1, at 30 fps
    # the first rest still fades in from the idle drift; the second is the hand alone
    rest1, moving, rest2 = motion[36:84].mean(), motion[135:195].mean(), motion[255:315].mean()
    assert moving > 1.5 * rest1 and moving > 4 * rest2, (rest1, moving, rest2)
    assert "hand to frame" in proc.stderr and "hand frames" in proc.stderr


def test_a_hand_recording_replays_what_was_recorded(tmp_path):
    rec = tmp_path / "take.vjhands.gz"
    run_vj("run", "--hands", f"replay:{SAMPLE}", "--record-hands", rec, "--headless", "--frames", "60",
           "--size", "64x64", "--no-osc", "--no-midi")
    got, original = read_hand_file(rec), read_hand_file(SAMPLE)
    assert len(got) > 60   # two seconds of a 60 fps recording (the idle start has no hands)
    # the same frames, in the same order (re-stamped to the new recording's clock)
    palms = [tuple(f["hands"][0]["palm"]) for f in got.frames if f["hands"]]
    ref = [tuple(f["hands"][0]["palm"]) for f in original.frames if f["hands"]]
    assert palms and palms == ref[:len(palms)]
    # a second recording never replaces the first
    run_vj("run", "--hands", f"replay:{SAMPLE}", "--record-hands", rec, "--headless", "--frames", "5",
           "--size", "64x64", "--no-osc", "--no-midi")
    assert (tmp_path / "take-2.vjhands.gz").exists() or any(p.name != rec.name for p in tmp_path.glob("take*"))


@pytest.mark.parametrize("spec, words", [("bogus", "a hand source is"), ("replay:/no/such.gz", "no such file"),
                                         ("osc:99999", "port"), ("leap:http://x", "ws://")])
def test_a_bad_hand_source_is_refused_at_the_command_line(spec, words):
    proc = run_vj("run", "--hands", spec, "--headless", "--frames", "1", check=False, timeout=60)
    assert proc.returncode == 2 and words in proc.stderr


def test_hand_settings_are_in_the_namespace_and_latency_on_the_hud(tmp_path):
    from engine.session import ControlOptions, Options, Session
    with Session(Options(size=(48, 32), fps=30.0, live=True, hands=[f"replay:{SAMPLE}"],
                         control=ControlOptions(osc_port=0, oscquery_port=None, midi=None,
                                                mappings=tmp_path / "m.toml"))) as s:
        tracker = s.hands.tracker
        SimpleUDPClient("127.0.0.1", s.osc_in.port).send_message("/vj/hands/filter/beta", 0.5)
        SimpleUDPClient("127.0.0.1", s.osc_in.port).send_message("/vj/hands/filter/min_cutoff", 9999.0)  # refused
        s.engine.run_live(frames=45)
        assert tracker.beta == 0.5 and tracker.min_cutoff == 1.0
        st = s.publisher.status
        assert st["hands_beta"] == 0.5 and "right.palm.x" in st["hands"] and 0 <= st["hands"]["right.palm.x"] <= 1
        line = " ".join(s.board.control_lines())
        assert "hand frames" in line and "hand to frame" in line
        assert s.stats.latency_by["hands"] < 500


def test_a_hostile_leap_stream_never_stops_the_frames():
    """Invalid JSON, wrong shapes, NaN, absurd values, then a flood of frames, from a local
    Leap WebSocket server while the show runs: counted, dropped, and the frames keep their pace."""
    import threading
    from test_leap import LeapServer, _v6_frame

    from engine.session import Options, Session
    port = free_port()
    server = LeapServer(port).start()
    try:
        with Session(Options(size=(48, 32), fps=30.0, live=True,
                             hands=[f"leap:ws://127.0.0.1:{port}/v6.json"])) as s:
            deadline = time.monotonic() + 5
            while not server.conns and time.monotonic() < deadline:
                time.sleep(0.02)
            assert server.conns, "the Leap client did not connect"

            def attack():
                server.send("{not json")
                server.send([1, 2, 3])
                bad = _v6_frame(ts=1_000)
                bad["hands"][0]["palmPosition"] = [float("nan"), 1.0, 2.0]
                server.send(json_text(bad))
                huge = _v6_frame(ts=2_000)
                huge["hands"][0]["palmPosition"] = [1e9, 0.0, 0.0]
                server.send(huge)
                server.send({"hands": "many"})
                for k in range(3000):  # a flood: faster than any sensor
                    server.send(_v6_frame(ts=10_000 + 1_000 * k))

            t = threading.Thread(target=attack, daemon=True)
            t.start()
            t0 = time.monotonic()
            s.engine.run_live(frames=60)
            took = time.monotonic() - t0
            t.join(30)
            assert took < 4.0, took                       # 60 frames at 30 fps: about 2 s
            leap = s.hands.sources[0].stats
            tracker = s.hands.tracker.stats
            assert leap["bad_json"] >= 2 and leap["bad_frames"] >= 1
            assert tracker["rejected"] >= 1                # the absurd palm
            assert tracker["frames"] > 100
            assert s.stats.dropped <= 3
    finally:
        server.stop()


def json_text(obj) -> str:
    import json
    return json.dumps(obj)  # NaN goes out as the bare token NaN, as a broken sender would write it


def test_osc_hands_reach_the_patch_signals():
    """`--hands osc:PORT`: a hand sent as one OSC bundle in the `vj` scheme over real UDP."""
    from test_hand_osc import _bundle, _msg

    from engine.session import Options, Session
    with Session(Options(size=(48, 32), fps=30.0, live=True, hands=["osc:0"])) as s:
        port = s.hands.sources[0].port
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for k in range(10):
                sock.sendto(_bundle([_msg("/hands/right/palm", 60.0, 250.0, 0.0), _msg("/hands/right/grab", 0.8)]).dgram,
                            ("127.0.0.1", port))
                time.sleep(0.01)
        s.engine.run_live(frames=5)
        st = s.publisher.status["hands"]
        assert st["right.visible"] == 1.0 and st["right.grab"] == pytest.approx(0.8, abs=1e-3)
        assert st["right.palm.x"] > 0.6 and st["right.palm.y"] > 0.6   # right of and above the box centre


def test_a_chosen_interaction_box_wins_over_the_sensors():
    from engine.signals.bus import SignalBus
    from engine.signals.hand_sources import parse_box
    from engine.signals.hands import HandTracker
    frame = {"t": 1.0, "hands": [{"id": 1, "type": "right", "palm": [50.0, 300.0, 0.0]}],
             "box": {"center": [0, 200, 0], "size": [235, 235, 147]}}
    bus = SignalBus()
    HandTracker(bus, box=parse_box("0,250,0,100,100,100")).push(frame)
    assert bus.peek("hands.right.palm.x") == pytest.approx(1.0) and bus.peek("hands.right.palm.y") == pytest.approx(1.0)
    for bad in ("1,2,3", "0,0,0,0,100,100", "nan,0,0,1,1,1", "a,b,c,d,e,f"):
        with pytest.raises(ValueError):
            parse_box(bad)
    proc = run_vj("run", "--hands-box", "1,2,3", "--headless", "--frames", "1", check=False, timeout=60)
    assert proc.returncode == 2 and "six" in proc.stderr
