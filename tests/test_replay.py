"""A live show recorded with --record-signals (OSC input, a patch saved mid-run) and rendered again
with `vj render --signals`: the two videos match frame by frame."""
import subprocess
import time

import numpy as np

from conftest import free_port, read_video, run_vj, save_patch, vj_cmd

PATCH = """def setup(p):
    p.keys = p.seeds([1, 2, 3])

def frame(p, s):
    x = p.param("x", 0.0)
    return p.controls(z=p.walk(p.keys, x * 2 + p.time * 0.2), hue=x)
"""
FRAMES = 90


def test_a_live_show_replays_frame_by_frame(tmp_path):
    patch = tmp_path / "live.py"
    patch.write_text(PATCH)
    port = free_port(__import__("socket").SOCK_DGRAM)
    live, signals = tmp_path / "live.mp4", tmp_path / "show.vjsig.gz"
    proc = subprocess.Popen(vj_cmd("run", patch, "--headless", "--frames", FRAMES, "--size", "96x64",
                                   "--osc-port", port, "--no-oscquery", "--no-midi", "--record", live,
                                   "--record-signals", signals, "--state", tmp_path / "state"),
                            stderr=subprocess.PIPE, text=True)
    from pythonosc.udp_client import SimpleUDPClient
    osc = SimpleUDPClient("127.0.0.1", port)
    deadline = time.monotonic() + 60
    while not signals.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    for i in range(20):   # a fader moved over OSC
        osc.send_message("/vj/param/x", i / 20)
        time.sleep(0.03)
    save_patch(patch, PATCH.replace("hue=x", "hue=x + 0.3"))   # a live edit mid-show
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 0, err[-3000:]
    assert "reloaded (v2)" in err and "20 commands" in err, err[-3000:]

    # the recording holds patch code that is not on disk any more: refused without --trust
    out = tmp_path / "replay.mp4"
    refused = run_vj("render", "--signals", signals, "--out", out, "--quiet", check=False)
    assert refused.returncode == 2 and "--trust" in refused.stderr and not out.exists()

    run_vj("render", "--signals", signals, "--out", out, "--quiet", "--trust")
    a, _ = read_video(live)
    b, _ = read_video(out)
    assert len(a) == len(b) == FRAMES
    a, b = np.array(a, np.float64), np.array(b, np.float64)
    mse = ((a - b) ** 2).mean(axis=(1, 2, 3))
    psnr = 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-9))
    # the live take is encoded with x264's superfast preset, the render with its default: the
    # frames differ by the two encoders' losses only (measured: PSNR >= 34 dB, under 3 levels)
    assert psnr.min() > 30 and np.abs(a - b).mean(axis=(1, 2, 3)).max() < 4, (psnr.min(),)
    # and the show did change: the fader and the edit are in both (not two still pictures)
    assert np.abs(a[-1] - a[0]).mean() > 10 * np.abs(a[-1] - b[-1]).mean()

    # the same show at another size and frame rate: half the frames, each a moment of the show
    big = tmp_path / "big.mp4"
    run_vj("render", "--signals", signals, "--out", big, "--quiet", "--trust", "--size", "192x128", "--fps", "15")
    c, info = read_video(big)
    # the live frames' times are the wall clock's: 3 s of show is 45 or 46 frames at 15 fps
    assert len(c) in (FRAMES // 2, FRAMES // 2 + 1) and (info["width"], info["height"]) == (192, 128)
    # each is a moment of the show: the start at the start, the end at the end
    small = np.array(c, np.float64).reshape(len(c), 64, 2, 96, 2, 3).mean(axis=(2, 4))
    assert np.abs(small[0] - a[0]).mean() < np.abs(small[0] - a[-1]).mean() / 3
    assert np.abs(small[-1] - a[-1]).mean() < np.abs(small[-1] - a[0]).mean() / 3


SET = """fps = 30
transition = { kind = "crossfade", beats = 1 }
[[scene]]
name = "one"
patch = "p.py"
[[scene]]
name = "two"
patch = "p.py"
post = { kaleido = 6 }
params = { x = 0.2 }
"""
FED = """def setup(p):
    p.keys = p.seeds([1, 2, 3])

def frame(p, s):
    x = p.param("x", 0.0)
    return p.controls(z=p.walk(p.keys, x * 2 + p.time * 0.3), hue=x, feedback=0.5)
"""


def test_replayed_pixels_are_the_live_ones_bit_for_bit(tmp_path):
    """In-process, on the wall clock: a set with a fader move, a bookmark saved and recalled, and
    a crossfade cued; the replay's output textures equal the live ones exactly (CPU, fp32)."""
    from engine.session import Options, Session
    from engine.show.replay import Prepared
    from engine.show.sets import SetList
    (tmp_path / "p.py").write_text(FED)
    (tmp_path / "set.toml").write_text(SET)
    sl = SetList(tmp_path / "set.toml")
    signals = tmp_path / "show.vjsig.gz"
    # the serial frame: live, each frame gets its own image whatever the machine's load (pipelined,
    # a late generator shows an older image, and through the feedback trail every frame after it
    # differs from the replay, which never runs late)
    o = Options(setlist=sl, patch=sl.scene.patch, size=(96, 64), fps=30, live=True, record_signals=signals,
                state=tmp_path / "state", pipeline=False)
    commands = {5: ("/vj/param/x", (0.7,)), 10: ("/vj/bookmark/save", ("a",)), 20: ("/vj/param/x", (0.1,)),
                30: ("/vj/bookmark/recall", ("a", 0.3)), 40: ("/vj/cue/next", ())}

    def pixels(f):
        return np.frombuffer(f.texture.read(), np.uint8).copy()

    live, replayed = {}, {}
    with Session(o) as s:
        s.engine.clock.restart()
        for k in range(75):
            if k in commands:
                address, args = commands[k]
                assert s.dispatcher.dispatch(address, args, None, source="osc")
            f = s.engine.render_frame()
            if f is not None:
                live[f.snap.frame] = pixels(f)
            time.sleep(1 / 60)
        late = s.generate.late
        assert [c[1] for c in s.scenes.cues] == [1]
    prepared = Prepared(signals)
    try:
        o2 = Options(setlist=prepared.setlist, patch=prepared.patch, size=(96, 64), fps=30, live=False,
                     replay=prepared, state=prepared.state())
        with Session(o2) as s:
            for _ in range(len(prepared.replay)):
                f = s.engine.render_frame()
                if f is not None:
                    replayed[f.snap.frame] = pixels(f)
            f = s.engine.flush()
            replayed[f.snap.frame] = pixels(f)
            assert [c[1] for c in s.scenes.cues] == [1]
    finally:
        prepared.close()
    assert sorted(live) == sorted(replayed) and len(live) == 75 and late == 0
    differ = [k for k in live if not np.array_equal(live[k], replayed[k])]
    assert not differ, differ
