"""Patch isolation through real patch files: whatever a patch does, frames come out."""
import math
import time

import numpy as np
import pytest

from engine.generators.base import ModelInfo
from engine.patching.api import Controls
from engine.patching.loader import PatchHost
from engine.signals.bus import SignalBus
from engine.signals.clock import VirtualClock

INFO = ModelInfo(name="t", architecture="dcgan", resolution=64, z_dim=8, w_dim=8, num_ws=1)


class Rig:
    def __init__(self, path):
        self.bus, self.clock = SignalBus(), VirtualClock(30)
        self.messages = []
        self.host = PatchHost(path, INFO, on_message=lambda m, lvl: self.messages.append(m))
        self.host.load()

    def frame(self) -> Controls:
        self.clock.tick()
        return self.host.frame(self.bus.snapshot(**self.clock.fields()))


def write(path, text):
    path.write_text(text)
    # make sure the mtime moves even on coarse filesystems
    st = path.stat()
    import os
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


GOOD = "def frame(p, s):\n    return p.controls(z=p.seed(1))\n"


def test_good_patch_returns_controls(tmp_path):
    f = tmp_path / "a.py"
    write(f, GOOD)
    c = Rig(f).frame()
    assert np.allclose(c.z, np.random.default_rng(1).standard_normal(8).astype(np.float32))


@pytest.mark.parametrize("bad, expect", [
    ("def frame(p, s)\n    return 1\n", "SyntaxError"),
    ("def setup(p):\n    raise RuntimeError('boom in setup')\ndef frame(p, s):\n    return p.seed(1)\n",
     "boom in setup"),
    ("def frame(p, s):\n    return p.controls(z=p.seed(1) * float('nan'))\n", "non-finite z"),
    ("def frame(p, s):\n    return {}['missing']\n", "KeyError"),
    ("x = 1\n", "defines no frame"),
    ("def frame(p, s):\n    return p.controls(z=p.seed(1), hue=float('inf'))\n", "non-finite hue"),
])
def test_bad_reload_keeps_last_good_patch(tmp_path, bad, expect):
    f = tmp_path / "a.py"
    write(f, GOOD)
    rig = Rig(f)
    good = rig.frame().z
    write(f, bad)
    assert rig.host.check()
    for _ in range(5):
        c = rig.frame()
        assert np.allclose(c.z, good)
    errors = [m for m in rig.messages if expect in m]
    assert len(errors) == 1, rig.messages  # reported once, not every frame
    assert expect in (rig.host.last_error or "")


def test_runtime_error_in_proven_patch_reuses_last_controls(tmp_path):
    f = tmp_path / "a.py"
    write(f, "def frame(p, s):\n    if s.frame == 3:\n        raise ValueError('frame three')\n"
             "    return p.controls(z=p.seed(int(s.frame)))\n")
    rig = Rig(f)
    zs = [rig.frame().z for _ in range(5)]
    assert np.allclose(zs[3], zs[2])  # the bad frame repeats the previous one
    assert not np.allclose(zs[4], zs[2])  # and the patch carries on
    assert any("a.py:3: ValueError: frame three" in m for m in rig.messages)


def test_no_good_patch_yet_still_gives_controls(tmp_path):
    f = tmp_path / "a.py"
    write(f, "def frame(p, s)\n")
    rig = Rig(f)
    c = rig.frame()
    assert c.z.shape == (8,) and np.all(np.isfinite(c.z))
    write(f, GOOD)
    rig.host.check()
    assert np.allclose(rig.frame().z, np.random.default_rng(1).standard_normal(8))


def test_return_forms(tmp_path):
    f = tmp_path / "a.py"
    write(f, "def frame(p, s):\n    return {'z': p.seed(2), 'hue': 0.5}\n")
    c = Rig(f).frame()
    assert c.post == {"hue": 0.5} and c.z.shape == (8,)
    write(f, "def frame(p, s):\n    return p.seed(2)\n")
    assert Rig(f).frame().z.shape == (8,)


def test_watcher_thread_picks_up_changes(tmp_path):
    f = tmp_path / "a.py"
    write(f, GOOD)
    rig = Rig(f)
    rig.host.start_watching()
    try:
        rig.frame()
        write(f, "def frame(p, s):\n    return p.controls(z=p.seed(9))\n")
        target = np.random.default_rng(9).standard_normal(8)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not np.allclose(rig.frame().z, target):
            time.sleep(0.02)
        assert np.allclose(rig.frame().z, target)
        assert rig.host.reloads == 1
    finally:
        rig.host.stop()


def test_ops_in_a_patch_use_frame_time(tmp_path):
    f = tmp_path / "a.py"
    write(f, "def setup(p):\n    p.sm = p.smooth(0.5)\n    p.env = p.envelope(0.0, 0.2)\n"
             "def frame(p, s):\n    v = p.sm(1.0 if s.time > 0 else 0.0)\n    e = p.env(s.fired('hit'))\n"
             "    return p.controls(z=p.seed(1), brightness=v, contrast=1 + e)\n")
    rig = Rig(f)
    rig.frame()
    for _ in range(15):  # 0.5 s at 30 fps = one time constant
        c = rig.frame()
    assert abs(c.post["brightness"] - (1 - math.exp(-1))) < 0.05
    rig.bus.emit("hit")
    assert rig.frame().post["contrast"] == pytest.approx(2.0)
    for _ in range(6):  # 0.2 s: one decay constant
        c = rig.frame()
    assert c.post["contrast"] - 1 == pytest.approx(math.exp(-1), abs=0.05)


def test_list_as_shader_setting_is_a_patch_error_not_a_crash(tmp_path):
    f = tmp_path / "a.py"
    write(f, GOOD)
    rig = Rig(f)
    good = rig.frame().z
    write(f, "def frame(p, s):\n    return p.controls(z=p.seed(3), hue=[0.1, 0.2])\n")
    rig.host.check()
    assert np.allclose(rig.frame().z, good)
    assert "single numbers" in rig.host.last_error


def test_log_messages_reach_the_hud_text(tmp_path):
    f = tmp_path / "a.py"
    write(f, "def frame(p, s):\n    p.log('hello from the patch')\n    return p.seed(1)\n")
    rig = Rig(f)
    rig.frame()
    rig.frame()
    assert rig.host.last_message[1] == "a: hello from the patch"
    assert rig.messages.count("a: hello from the patch") == 1
    assert rig.host.last_error is None
