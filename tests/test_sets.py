"""Set lists: scenes, cues and timed advance, through set files and `vj run SET`."""
import re
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import read_video, run_vj
from engine.control.dispatch import Dispatcher
from engine.patching.api import Controls
from engine.show.scenes import SetStage, Slot
from engine.show.sets import SetError, SetList
from engine.signals.bus import SignalBus

BLACK = "def frame(p, s):\n    return p.controls(z=p.seed(1), brightness=-1.0)\n"
SHOW = "def frame(p, s):\n    return p.controls(z=p.seed(2))\n"


def make_set(tmp_path, body):
    (tmp_path / "black.py").write_text(BLACK)
    (tmp_path / "show.py").write_text(SHOW)
    f = tmp_path / "set.toml"
    f.write_text(body)
    return f


class ScriptHost:
    """A patch host that notes the frames it drew."""

    def __init__(self, name, log):
        self.name, self.log = name, log

    def frame(self, snap):
        self.log.append((snap.frame, self.name))
        return Controls(z=np.zeros(4, np.float32))


def set_stage(sl, dispatch, drawn=None):
    drawn = [] if drawn is None else drawn
    hosts = [ScriptHost(sc.patch.name, drawn) for sc in sl.scenes]
    return SetStage(sl, hosts, [None] * len(hosts), [Slot(None, None)], dispatch), drawn


def snap(bus, t=0.0, beat=0.0):
    return bus.snapshot(time=t, beat=beat, bpm=120.0)


def test_cues_move_between_scenes(tmp_path):
    sl = SetList(make_set(tmp_path, '[[scene]]\nname = "a"\npatch = "black.py"\n'
                                    '[[scene]]\nname = "b"\npatch = "show.py"\n'
                                    '[[scene]]\nname = "c"\npatch = "drift"\n'))
    bus = SignalBus()
    assert sl.scene.name == "a" and sl.update(snap(bus)) is None
    bus.emit("cue.next")
    assert sl.update(snap(bus)).name == "b"
    bus.emit("cue.prev")
    assert sl.update(snap(bus)).name == "a"
    bus.emit("cue.prev")  # wraps around
    assert sl.update(snap(bus)).name == "c"
    bus.emit("cue.goto", "b")
    assert sl.update(snap(bus)).name == "b"
    bus.emit("cue.goto", 1)  # numbered from 1
    assert sl.update(snap(bus)).name == "a"
    bus.emit("cue.goto", "nope")
    assert sl.update(snap(bus)) is None and sl.scene.name == "a"


def test_scenes_advance_by_bars_or_seconds_through_the_dispatcher(tmp_path):
    """A scene whose time runs out sends /vj/cue/next through the dispatcher, once, tagged
    `set`, one frame ahead: the switch lands on the very frame the scene's time is up."""
    sl = SetList(make_set(tmp_path, '[[scene]]\npatch = "black.py"\nbars = 2\n'
                                    '[[scene]]\npatch = "show.py"\nseconds = 5\n'))
    bus = SignalBus()
    d = Dispatcher(bus, status=lambda: {"scenes": 2})
    stage, drawn = set_stage(sl, d.dispatch)
    for k in range(300):  # 30 fps at 120 bpm: 2 bars = 8 beats = 120 frames; then 5 s = 150 frames
        f = SimpleNamespace(snap=bus.snapshot(time=k / 30, dt=1 / 30 if k else 0.0, beat=k / 15, bpm=120.0, frame=k),
                            status={})
        stage.run(f)
    switched = [(k, name) for (k, name), (_, before) in zip(drawn[1:], drawn) if name != before]
    assert switched == [(120, "show.py"), (270, "black.py")]
    assert d.stats["accepted"] == 2


@pytest.mark.parametrize("body, msg", [
    ("", "no [[scene]]"),
    ("[[scene]]\nname = 'x'\n", "names no patch"),
    ("[[scene]]\npatch = 'missing.py'\n", "not found"),
    ("[[scene]\n", "set.toml"),
])
def test_bad_set_files_are_clear_errors(tmp_path, body, msg):
    with pytest.raises(SetError, match=re.escape(msg)):
        SetList(make_set(tmp_path, body))


def test_vj_run_set_advances_scenes(tmp_path, env_no_display):
    f = make_set(tmp_path, 'fps = 30\nsize = "96x64"\n[[scene]]\nname = "dark"\npatch = "black.py"\nseconds = 1.0\n'
                           '[[scene]]\nname = "face"\npatch = "show.py"\n')
    out = tmp_path / "set.mp4"
    proc = run_vj("run", f, "--headless", "--frames", "75", "--record", out, env=env_no_display)
    assert "scene 2/2: face" in proc.stderr
    frames, info = read_video(out)
    assert (info["width"], info["height"]) == (96, 64)  # from the set file
    level = np.array([fr.mean() for fr in frames])
    assert level[:25].max() < 8  # scene one: black
    assert level[-20:].min() > 20  # scene two took over within a second
