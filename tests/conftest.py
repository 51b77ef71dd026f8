"""Shared helpers: run the real `vj` command, read videos back, synthesise audio."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

from x_display import display  # noqa: E402,F401 - the Xvfb fixture, registered here for every test
# the tests press Ctrl-C (SIGINT) on the vj processes they start; a shell that runs the suite in
# the background starts it with SIGINT ignored, which every child would inherit (and Python
# installs no KeyboardInterrupt where it starts ignored). A handler here is reset to the default
# in each child at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not the main thread: nothing to restore from here
        pass
# every vj the tests start (run_vj gives each its own) keeps its state away from the user's
os.environ.setdefault("VJ_STATE", tempfile.mkdtemp(prefix="vj-tests-state-"))
# each xdist worker (and the vj processes its tests start) compiles librosa's numba functions
# into a cache of its own: on a fresh install, workers compiling into the one shared cache at
# the same time wrote a corrupt one, and every later analysis died of a segfault
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(),
                                                          f"vj-tests-numba-{os.environ['PYTEST_XDIST_WORKER']}"))


def free_port(kind=socket.SOCK_STREAM) -> int:
    """A port free on loopback now (TCP by default; SOCK_DGRAM for UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout: float = 5.0, step: float = 0.005) -> bool:
    """Poll ``cond`` until it is true or ``timeout`` seconds pass; its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def poll(cond, timeout: float = 20.0, proc=None, step: float = 0.05, errors=(OSError, ValueError, KeyError)):
    """``cond()`` until it is truthy, its value (an exception of ``errors`` counts as not yet: a
    server still starting, a file half there); gives up early if the process ``proc`` ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except errors:
            pass
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(step)
    try:
        return cond()
    except errors:
        return None


def vj_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "engine", *map(str, args)]


def run_vj(*args, timeout=240, check=True, **kw) -> subprocess.CompletedProcess:
    """``vj ARGS`` to its end. Each run keeps its state (scene, parameter values, bookmarks) in a
    fresh folder unless ``env`` names one in VJ_STATE: one test's show never opens in another's."""
    env = dict(kw.pop("env", None) or os.environ)
    env.setdefault("VJ_STATE", tempfile.mkdtemp(prefix="vj-state-"))
    proc = subprocess.run(vj_cmd(*args), cwd=kw.pop("cwd", ROOT), capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"vj {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stderr[-4000:]}")
    return proc


def stop(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """End a `vj` process started by a test: SIGTERM, its output read, SIGKILL if it hangs."""
    proc.terminate()
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def save_patch(path, text) -> None:
    """As editors do: a whole new file renamed over the old one, so a watcher never sees half of it."""
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def read_video(path) -> tuple[list[np.ndarray], dict]:
    """All frames as uint8 RGB arrays, plus stream facts."""
    import av
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames, times = [], []
        for f in c.decode(v):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.time))
        info = {
            "codec": v.codec_context.name,
            "pix_fmt": v.codec_context.pix_fmt,
            "fps": float(v.base_rate or v.average_rate or 0) or None,
            "times": times,
            "audio": [s.codec_context.name for s in c.streams.audio],
            "width": v.codec_context.width,
            "height": v.codec_context.height,
        }
        if c.streams.audio:
            a = c.streams.audio[0]
            info["audio_duration"] = float(a.duration * a.time_base) if a.duration else None
    return frames, info


def frame_motion(frames) -> np.ndarray:
    """Mean absolute change between consecutive frames (0..255 scale)."""
    f = [x.astype(np.int16) for x in frames]
    return np.array([np.abs(b - a).mean() for a, b in zip(f, f[1:])])


def write_wav(path, y: np.ndarray, sr: int = 44100) -> Path:
    import soundfile as sf
    sf.write(str(path), y.astype(np.float32), sr)
    return Path(path)


@pytest.fixture
def env_no_display():
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env

