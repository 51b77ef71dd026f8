"""Editing a patch while `vj run` is running: errors are reported, frames never stop,
and the fixed patch takes over."""
import subprocess
import threading
import time

import numpy as np

from conftest import ROOT, read_video, save_patch, vj_cmd

GOOD = """
def setup(p):
    p.keys = p.seeds([1, 2, 3])

def frame(p, s):
    return p.controls(z=p.loop(p.keys, seconds=3))
"""

BROKEN = """
def frame(p, s)
    return p.controls(z=p.seed(1))
"""

# black: brightness pushes every pixel to 0; easy to recognise in the video
FIXED_BLACK = """
def frame(p, s):
    return p.controls(z=p.seed(5), brightness=-1.0)
"""


def test_syntax_error_while_running_then_fix(tmp_path, env_no_display):
    patch = tmp_path / "live.py"
    save_patch(patch, GOOD)
    out = tmp_path / "live.mp4"
    frames_total = 330  # 11 s at 30 fps
    p = subprocess.Popen(vj_cmd("run", patch, "--headless", "--frames", frames_total, "--record", out,
                                "--size", "160x90", "--fps", "30"),
                         cwd=ROOT, env=env_no_display, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []      # (when it arrived, the line): the log says when the fixed patch was loaded

    def read():
        for line in p.stderr:
            lines.append((time.monotonic(), line.rstrip("\n")))
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (out.exists() and out.stat().st_size > 2000):
            time.sleep(0.1)
        time.sleep(1.5)
        save_patch(patch, BROKEN)
        time.sleep(3.0)
        t_fix = time.monotonic()
        save_patch(patch, FIXED_BLACK)
        p.wait(timeout=120)
        reader.join(10)
    finally:
        p.kill()
    err = "\n".join(line for _, line in lines)
    assert p.returncode == 0, err[-3000:]
    frames, info = read_video(out)
    assert len(frames) == frames_total  # the broken patch never stopped the frames
    # the syntax error was reported once, with file and line
    reports = [line for line in err.splitlines() if line.startswith("vj: patch not loaded")]
    assert len(reports) == 1 and "SyntaxError" in reports[0], err
    assert "live.py:2" in err
    # the fixed patch took over: the tail of the video is black, the good patch drew until then
    brightness = np.array([f.mean() for f in frames])
    assert brightness[-30:].max() < 8
    first_black = int(np.argmax(brightness < 8))
    assert brightness[:first_black].min() > 20  # good patch kept drawing through the error
    # ... within a second of the save: when the engine said it loaded it (the watcher polls)
    loaded = [t for t, line in lines if " reloaded (v" in line and t >= t_fix]
    print(f"\nthe fixed patch took over {loaded[0] - t_fix:.2f} s after the save" if loaded else "")
    assert loaded and loaded[0] - t_fix < 1.0 + 0.25, (loaded[:1], t_fix, err[-2000:])
