"""The projector window, on a virtual X display (Xvfb) with real key presses (xdotool).
Skipped where Xvfb or xdotool are missing; .ci/run installs both."""
import os
import shutil
import struct
import subprocess
import time

import numpy as np
import pytest

from conftest import ROOT, read_video, vj_cmd

pytestmark = pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool") and shutil.which("xwd")),
                                reason="needs Xvfb, xdotool and xwd (apt: xvfb xdotool x11-apps)")


@pytest.fixture
def display():
    num = next(n for n in range(90, 200) if not os.path.exists(f"/tmp/.X11-unix/X{n}"))
    xvfb = subprocess.Popen(["Xvfb", f":{num}", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(os.environ, DISPLAY=f":{num}", PYTHONUNBUFFERED="1")
    for _ in range(50):
        if subprocess.run(["xdotool", "getmouselocation"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    yield env
    xvfb.terminate()
    xvfb.wait(timeout=10)


def screenshot(env) -> np.ndarray:
    """The root window as RGB, read from xwd's format (ZPixmap, TrueColor, 3 or 4 bytes a pixel)."""
    data = subprocess.run(["xwd", "-root", "-silent"], env=env, capture_output=True, check=True).stdout
    h = struct.unpack(">25I", data[:100])
    header_size, width, height, byte_order, bpp, bpl, ncolors = h[0], h[4], h[5], h[7], h[11], h[12], h[19]
    nbytes = bpp // 8  # rows are bpl bytes apart; pixels are packed within a row
    assert nbytes in (3, 4), h
    px = np.frombuffer(data, np.uint8, offset=header_size + 12 * ncolors, count=bpl * height)
    px = px.reshape(height, bpl)[:, :width * nbytes].reshape(height, width, nbytes)
    return px[..., [2, 1, 0]] if byte_order == 0 else px[..., [nbytes - 3, nbytes - 2, nbytes - 1]]


def find_window(env, timeout=60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = subprocess.run(["xdotool", "search", "--name", "^vj$"], env=env, capture_output=True, text=True)
        if r.stdout.strip():
            return r.stdout.split()[0]
        time.sleep(0.2)
    raise AssertionError("the vj window never appeared")


def geometry(env, win) -> tuple[int, int]:
    out = subprocess.run(["xdotool", "getwindowgeometry", win], env=env, capture_output=True, text=True).stdout
    w, h = out.split("Geometry:")[1].split()[0].split("x")
    return int(w), int(h)


def key(env, win, name):
    subprocess.run(["xdotool", "key", "--window", win, name], env=env, check=True)


def test_window_draws_hud_fullscreen_and_escape(tmp_path, display):
    out = tmp_path / "w.mp4"
    p = subprocess.Popen(vj_cmd("run", "sets/demo.toml", "--size", "320x180", "--record", out, "--no-state"),
                         cwd=ROOT, env=display,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        win = find_window(display)
        # wait for the first frames (model load and shader compile take a while on busy cores)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shot = screenshot(display)[:180, :320].astype(int)
            if shot[60:, 100:220].std() > 10 and (shot[:24, :300].min(axis=2) > 200).sum() > 30:
                break
            time.sleep(0.3)
        # the picture is on screen (a face, not black) and the HUD text is drawn at the top left
        assert shot[60:, 100:220].std() > 10
        hud = shot[:24, :300]
        assert (hud.min(axis=2) > 200).sum() > 30  # light text pixels
        key(display, win, "h")  # HUD off
        time.sleep(1.0)
        assert (screenshot(display)[:24, :300].min(axis=2) > 200).sum() < (hud.min(axis=2) > 200).sum()
        key(display, win, "f")  # fullscreen on the (only) monitor
        deadline = time.monotonic() + 20
        while geometry(display, win) != (1024, 768) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert geometry(display, win) == (1024, 768)
        time.sleep(1.0)
        full = screenshot(display).astype(int)
        # aspect kept: 16:9 canvas in a 4:3 screen leaves black bars top and bottom
        assert full[:40].max() < 10 and full[-40:].max() < 10 and full[300:460].std() > 10
        key(display, win, "Right")  # next scene of the set
        time.sleep(1.0)
        key(display, win, "Escape")
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert "recording closed" in err
    assert "scene 2/3: pulse" in err
    frames, _ = read_video(out)
    assert len(frames) > 60
