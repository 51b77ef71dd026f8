"""A virtual X display (Xvfb) for window tests: the fixture, real key presses (xdotool) and
screenshots (xwd). Tests import the helpers from here; tests/conftest.py registers the ``display`` fixture."""
import os
import shutil
import struct
import subprocess
import time

import numpy as np
import pytest

needs_x = pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool") and shutil.which("xwd")),
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
