"""Hangs while `vj run` runs, through real patch saves and the recorded video: a patch that
loops in frame(), one that sleeps 5 s in frame() and one that loops in setup() during a
reload. Frames keep coming (no gap over a second), the last good patch runs, a fixed save
loads."""
import subprocess
import time

import numpy as np

from conftest import ROOT, frame_motion, read_video, save_patch, vj_cmd
from test_hot_reload import FIXED_BLACK as BLACK
from test_hot_reload import GOOD as MOVING  # a loop over three seeds: every frame moves

FPS = 30

LOOP_IN_FRAME = """
def frame(p, s):
    while True:
        pass
"""
SLEEP_IN_FRAME = """
import time

def frame(p, s):
    time.sleep(5)
    return p.controls(z=p.seed(9), brightness=-1.0)
"""
LOOP_IN_SETUP = """
def setup(p):
    while True:
        pass

def frame(p, s):
    return p.controls(z=p.seed(9), brightness=-1.0)
"""


def test_hangs_while_running(tmp_path, env_no_display):
    patch = tmp_path / "live.py"
    save_patch(patch, MOVING)
    out = tmp_path / "live.mp4"
    # moving -> loop in frame -> black (fixed) -> sleep in frame -> moving (fixed) -> loop in setup -> black
    plan = [(LOOP_IN_FRAME, 2.0), (BLACK, 2.0), (SLEEP_IN_FRAME, 2.0), (MOVING, 2.0), (LOOP_IN_SETUP, 3.0),
            (BLACK, 2.5)]
    total = int(FPS * (2.5 + sum(d for _, d in plan)))
    p = subprocess.Popen(vj_cmd("run", patch, "--headless", "--frames", total, "--record", out,
                                "--size", "96x64", "--fps", FPS, "--no-osc", "--no-midi"),
                         cwd=ROOT, env=env_no_display, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (out.exists() and out.stat().st_size > 2000):
            time.sleep(0.05)
        time.sleep(1.0)
        for text, wait in plan:
            save_patch(patch, text)
            time.sleep(wait)
        _, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 0, err[-3000:]
    frames, info = read_video(out)
    times = np.array(info["times"])
    gaps = np.diff(times)
    # frames kept coming: no gap over a second, and about one long gap per hang in frame()
    assert gaps.max() < 1.0, gaps.max()
    assert (gaps > 2.0 / FPS + 1e-6).sum() <= 4, [(round(times[i], 2), round(gaps[i], 3)) for i in np.flatnonzero(gaps > 2.0 / FPS + 1e-6)]
    assert len(frames) >= 0.85 * total
    # what was drawn, in order: moving, moving on through the loop in frame(), black, black on
    # through the sleep, moving, moving on through the loop in setup(), black at the end
    dark = np.array([f.mean() < 8 for f in frames])
    runs = [bool(dark[0])] + [bool(b) for a, b in zip(dark, dark[1:]) if a != b]
    assert runs == [False, True, False, True], runs
    bright = np.flatnonzero(~dark)
    first_black = int(np.argmax(dark))
    first_moving_again = bright[bright > first_black][0]
    last_black_start = int(np.flatnonzero(~dark)[-1]) + 1
    motion = frame_motion(frames)
    # the last good patch ran (moving, not a held picture) from the hang in frame() to the fix,
    # and again through the loop in setup()
    assert np.median(motion[FPS:first_black - 1]) > 0.5
    assert np.median(motion[first_moving_again:last_black_start - 1]) > 0.5
    assert (dark[last_black_start:]).all() and len(frames) - last_black_start > FPS // 2
    assert err.count("frame() did not return within 0.25 s") == 2, err[-3000:]
    assert "stuck at live.py:3 `while True:`" in err or "stuck at live.py:4 `pass`" in err, err[-3000:]
    assert "did not return within 5 s" in err or "replaced by a newer save" in err, err[-3000:]
