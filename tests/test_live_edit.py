"""Saving a running patch keeps its state (docs/patches.md, "Live edits keep state"):
real patch files, run frame by frame through PatchHost with real snapshots, edited and
saved with a new mtime, drawn with the built-in model."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from engine.generators.base import ModelInfo
from engine.patching.api import Controls, PatchContext, carry_state, fingerprint, setup_record
from engine.patching.loader import PatchHost
from engine.signals.bus import SignalBus
from engine.signals.clock import VirtualClock

INFO = ModelInfo(name="t", architecture="dcgan", resolution=64, z_dim=8, w_dim=8, num_ws=1)

# a walk whose speed eases in through a smoother: position and smoother are the state
WALK = """
HUE = {hue}

def setup(p):
    p.keys = p.seeds([1, 2, 3, 4])
    p.speed = p.smooth(0.5, initial=0.0)
    p.kick = p.envelope(attack=0.0, decay=0.3)
    p.position = 0.0

def frame(p, s):
    p.position += p.dt * p.speed(1.5)                  # keyframes per second
    kick = p.kick(s.fired("audio.onset"))
    return p.controls(z=p.walk(p.keys, p.position), hue=HUE, brightness=0.2 * kick)
"""


def save(path, text):
    """Write as an editor does, and make sure the mtime moves even on coarse filesystems."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, max(st.st_mtime_ns, before + 1_000_000)))


class Live:
    """A patch host driven like the render loop drives it: clock, bus snapshot, frame."""

    def __init__(self, path, info=INFO):
        self.bus, self.clock = SignalBus(), VirtualClock(30)
        self.messages = []
        self.host = PatchHost(path, info, on_message=lambda m, lvl: self.messages.append(m))
        assert self.host.load(), self.messages

    def frame(self):
        self.clock.tick()
        c = self.host.frame(self.bus.snapshot(**self.clock.fields()))
        return c

    def frames(self, n):
        return [self.frame() for _ in range(n)]

    @property
    def p(self):
        return self.host.active.ctx


def z_steps(controls):
    z = np.array([np.asarray(c.z, np.float64) for c in controls])
    return np.linalg.norm(np.diff(z, axis=0), axis=1)


def test_saving_a_colour_change_keeps_the_walk_and_the_picture_does_not_jump(tmp_path):
    from engine.generators.load import load_generator
    from engine.render.gpu import GeneratorRunner
    runner = GeneratorRunner(load_generator(None), device="cpu")
    f = tmp_path / "walk.py"
    save(f, WALK.format(hue=0.0))
    live = Live(f, runner.info)
    before = live.frames(45)                          # 1.5 s: the speed has eased in
    p1 = live.p
    position, speed = p1.position, p1.speed.value
    assert position > 0.5 and 0.5 < speed < 1.5
    save(f, WALK.format(hue=0.25))                    # the edit: a colour setting
    assert live.host.check()
    after = live.frames(10)
    assert live.host.active.version == 2 and live.host.last_error is None
    assert after[0].post["hue"] == 0.25               # the new version draws ...
    p2 = live.p
    assert p2 is not p1 and p2.speed is not p1.speed
    # ... with the state of the old one: the position and the smoother continue
    assert p2.position > position
    assert p2.speed.value > speed and p2.speed.tau == 0.5
    assert live.host.carried["kept"] == ["keys", "speed", "kick", "position"]

    # the picture: the change across the save is an ordinary frame-to-frame change
    zs = before[-6:] + after[:6]
    steps = z_steps(zs)
    across = steps[5]                                 # last old frame -> first new frame
    assert across <= 1.25 * np.median(np.delete(steps, 5))

    def image(c):
        return runner.image(runner.styles(z=c.z, psi=c.psi), c.noise).astype(np.float64)

    images = [image(c) for c in zs]
    change = [np.abs(b - a).mean() for a, b in zip(images, images[1:])]
    ordinary = np.delete(change, 5)
    assert change[5] <= 1.5 * max(ordinary)
    # against what a restart would have drawn: back at the first keyframe
    reset = image(Controls(z=live.p.keys[0]))
    assert np.abs(reset - images[5]).mean() > 3 * change[5]


def test_without_the_carry_the_same_save_would_jump(tmp_path):
    """The measure above is meaningful: a scene change (fresh state) of the same picture jumps."""
    f = tmp_path / "walk.py"
    save(f, WALK.format(hue=0.0))
    live = Live(f)
    before = live.frames(45)
    live.host.switch(f)                               # a scene change starts fresh, even the same file
    after = live.frames(3)
    assert live.p.position < 0.1
    steps = z_steps(before[-6:] + after[:3])
    assert steps[5] > 5 * np.median(np.delete(steps, 5))


def test_changed_values_win_removed_go_new_come_and_frame_made_state_stays(tmp_path):
    f = tmp_path / "a.py"
    save(f, """
def setup(p):
    p.keys = p.seeds([1, 2])
    p.gain = 2.0
    p.extra = [1, 2, 3]
    p.glide = p.smooth(0.2, initial=0.0)
    p.wobble = p.lfo("sine", beats=4)
    p.direction = p.seed(1) - p.seed(2)

def frame(p, s):
    p.count = getattr(p, "count", 0) + 1               # state made by frame()
    p.level = p.glide(1.0)
    p.speed = p.param("speed", 0.5)                    # a parameter: lives on the host
    return p.controls(z=p.walk(p.keys, 0.0) + p.direction * 0.0)
""")
    live = Live(f)
    live.frames(12)
    old = live.p
    glide_value = old.glide.value
    assert old.count == 12 and 0.5 < glide_value < 1.0
    save(f, """
def setup(p):
    p.keys = p.seeds([5, 6])                           # changed: the new value wins
    p.gain = 2                                         # an int is not the float 2.0: new value
    p.glide = p.smooth(0.6, initial=0.0)               # new setting, continues from its value
    p.wobble = p.lfo("sine", beats=4)                  # the same: kept
    p.direction = p.seed(1) - p.seed(2)                # the same array: kept
    p.fresh = "new"                                    # new attribute

def frame(p, s):
    p.count = getattr(p, "count", 0) + 1
    p.level = p.glide(1.0)
    return p.controls(z=p.walk(p.keys, 0.0), hue=0.1)
""")
    assert live.host.check()
    live.frame()
    new = live.p
    assert live.host.active.version == 2
    assert np.allclose(new.keys[0], new.seed(5)) and np.allclose(new.keys[1], new.seed(6))
    assert new.gain == 2 and type(new.gain) is int
    assert not hasattr(new, "extra")                   # no longer set by setup: gone
    assert new.fresh == "new"
    assert new.count == 13                             # made by frame(): carried over
    assert new.glide.tau == 0.6 and new.glide.value > glide_value  # continued, not restarted
    assert new.wobble is not old.wobble and new.direction is not old.direction  # copies
    assert np.array_equal(new.direction, old.direction)
    carried = live.host.carried
    assert sorted(carried["kept"]) == ["direction", "wobble"]
    assert sorted(carried["new"]) == ["gain", "glide", "keys"]
    assert carried["dropped"] == ["extra"]
    assert sorted(carried["carried"]) == ["count", "level", "speed"]
    assert live.host.params.params["speed"].value == 0.5


def bad_versions():
    base = WALK.format(hue=0.0)
    return {
        "syntax error": base.replace("def frame(p, s):", "def frame(p, s)"),
        "raising setup": base.replace("    p.position = 0.0", "    p.position = 0.0\n    raise RuntimeError('no')"),
        # the first frame touches the carried state, then fails: the old version must not see it
        "raising first frame": base.replace(
            "    kick = p.kick(", "    p.speed(1000.0); p.keys.append(p.seed(9)); p.position += 5\n"
                                  "    raise ValueError('first frame')\n    kick = p.kick("),
    }


EXPECT = {"syntax error": "SyntaxError", "raising setup": "RuntimeError: no", "raising first frame": "first frame"}


@pytest.mark.parametrize("kind", list(bad_versions()))
def test_a_failing_new_version_leaves_the_old_one_running_untouched(tmp_path, kind):
    f, g = tmp_path / "walk.py", tmp_path / "twin.py"
    save(f, WALK.format(hue=0.0))
    save(g, WALK.format(hue=0.0))
    live, twin = Live(f), Live(g)                      # twin: the same patch, never edited
    for _ in range(30):
        assert np.array_equal(live.frame().z, twin.frame().z)
    old = live.p
    save(f, bad_versions()[kind])
    live.host.check()
    if kind == "raising first frame":
        # the new version's one frame fails: the last good picture is drawn again, and the
        # old version (which did not run on that frame) takes over again from the next one
        last = live.host._last_controls
        assert live.frame() is last
        twin.clock.tick()
        twin.bus.snapshot()
    for k in range(20):
        if k == 10:
            live.bus.emit("audio.onset")
            twin.bus.emit("audio.onset")
        c, t = live.frame(), twin.frame()
        assert np.array_equal(c.z, t.z) and c.post == t.post, (kind, k)
    assert live.p is old and live.host.active.version == 1
    assert old.position == twin.p.position and old.speed.value == twin.p.speed.value
    assert old.kick.value == twin.p.kick.value > 0
    assert len(old.keys) == 4
    assert any(EXPECT[kind] in m for m in live.messages), live.messages


def test_a_good_version_after_a_failing_one_still_carries(tmp_path):
    f = tmp_path / "walk.py"
    save(f, WALK.format(hue=0.0))
    live = Live(f)
    live.frames(30)
    save(f, bad_versions()["raising first frame"])
    live.host.check()
    live.frames(2)
    position = live.p.position
    save(f, WALK.format(hue=0.5))
    live.host.check()
    c = live.frame()
    assert c.post["hue"] == 0.5 and live.host.active.version == 3
    assert position < live.p.position < position + 0.2


def test_a_scene_change_to_another_file_starts_fresh(tmp_path):
    f, g = tmp_path / "walk.py", tmp_path / "other.py"
    save(f, WALK.format(hue=0.0))
    save(g, WALK.format(hue=0.5))
    live = Live(f)
    live.frames(30)
    assert live.p.position > 0.2
    live.host.switch(g)
    c = live.frame()
    assert c.post["hue"] == 0.5 and live.p.position < 0.05
    assert live.p.speed.value < 0.2


def test_live_edit_through_the_watcher_thread(tmp_path):
    f = tmp_path / "walk.py"
    save(f, WALK.format(hue=0.0))
    live = Live(f)
    live.host.poll = 0.02
    # a frame stalled past the live budget on a loaded machine is drawn from the last controls
    # and the walk catches up on the next (a step of two frames): not what this test is about
    live.host.frame_budget = PatchHost.OFFLINE_FRAME_BUDGET
    live.host.start_watching()
    try:
        drawn = live.frames(30)
        save(f, WALK.format(hue=0.3))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and drawn[-1].post["hue"] != 0.3:
            drawn.append(live.frame())
            time.sleep(0.01)
        assert drawn[-1].post["hue"] == 0.3 and live.host.reloads == 1
        # the frame the new version took over on moved like any other
        steps = z_steps(drawn)
        assert steps[-1] <= 1.25 * np.median(steps[-10:-1])
    finally:
        live.host.stop()


def test_fingerprint_rule():
    ctx = PatchContext(INFO)
    same = [(1.0, 1.0), (float("nan"), float("nan")), ("a", "a"), ((1, "x"), (1, "x")),
            (np.arange(3.0), np.arange(3.0)), ([np.ones(2)], [np.ones(2)]), ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
            (ctx.smooth(0.2), ctx.smooth(0.2)), (ctx.lfo("saw", beats=8), ctx.lfo("saw", beats=8)),
            (np.float32(1.5), np.float32(1.5)), (None, None)]
    for a, b in same:
        assert fingerprint(a) == fingerprint(b), (a, b)
    different = [(1.0, 1), (True, 1), (np.arange(3.0), np.arange(3)), (np.zeros(2), np.zeros((1, 2))),
                 ([1.0], (1.0,)), (ctx.smooth(0.2), ctx.smooth(0.3)), (ctx.smooth(0.2), ctx.follow(0.2, 0.2)),
                 (ctx.lfo("saw"), ctx.lfo("sine")), (object(), object()), (lambda: 1, lambda: 1)]
    for a, b in different:
        assert fingerprint(a) != fingerprint(b), (a, b)
    thing = object()
    assert fingerprint(thing) != fingerprint(thing)      # anything else: always taken from the new setup
    loop = []
    loop.append(loop)
    assert fingerprint(loop) != fingerprint(loop)        # a list that holds itself does not hang


def test_carry_state_shares_the_clock_and_maps_references_to_p():
    old = PatchContext(INFO)
    old.sm = old.smooth(0.1)
    rec = setup_record(old)
    old.sm(1.0)
    old.me = {"p": old, "sm": old.sm}                  # made by frame(), refers to p and a helper
    new = PatchContext(INFO, frame_time=old._ft)
    new.sm = new.smooth(0.1)
    carry_state(old, rec, new, setup_record(new))
    assert new.sm is not old.sm and new.sm.ft is old._ft is new._ft and new.sm.value == 1.0
    assert new.me["p"] is new and new.me["sm"] is new.sm  # references follow the copy
    assert old.me["p"] is old and old.me["sm"] is old.sm
