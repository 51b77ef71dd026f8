"""The attacker's tests for sets, bookmarks and show recordings: hostile set keys, bookmark
commands and recording notes are refused or reported, the frames keep coming and nothing the
user made is lost."""
import math

import numpy as np
import pytest

from conftest import run_vj
from engine.session import Options, Session
from engine.show.sets import SetError, SetList
from engine.show.signal_file import SignalRecorder
from engine.signals.bus import SignalBus

STILL = "def frame(p, s):\n    p.param('x', 0.5)\n    return p.controls(z=p.seed(1))\n"


@pytest.mark.parametrize("scene, key", [
    ("params = { x = nan }", "params"),
    ("params = { x = inf }", "params"),
    ("params = { x = 1e300 }", "params"),
    ("params = { 'Bad Name' = 1 }", "params"),
    ("params = 3", "params"),
    ("post = { feedback = nan }", "post"),
    ("post = { nope = 1 }", "post"),
    ("transition = { kind = 'explode', beats = 1 }", "transition"),
    ("transition = { kind = 'crossfade', beats = -1 }", "transition"),
    ("transition = { kind = 'crossfade', beats = 1e12 }", "transition"),
    ("transition = { kind = 'crossfade', beats = 1, seconds = 1 }", "transition"),
    ("transition = { kind = 'wipe' }", "transition"),
    ("note = 128", "note"),
    ("note = 1.5", "note"),
    ("model = 7", "model"),
    ("bookmark = \"a\\u0007b\"", "bookmark"),
])
def test_hostile_scene_keys_refuse_the_set_naming_file_scene_and_key(tmp_path, scene, key):
    (tmp_path / "a.py").write_text(STILL)
    f = tmp_path / "set.toml"
    f.write_text(f'[[scene]]\nname = "one"\npatch = "a.py"\n{scene}\n')
    with pytest.raises(SetError) as e:
        SetList(f)
    assert str(e.value).startswith(f'{f}: scene 1 "one": {key}: '), str(e.value)


def test_hostile_set_options_refuse_the_set(tmp_path):
    (tmp_path / "a.py").write_text(STILL)
    for line in ("memory_limit = 0", "memory_limit = nan", "transition = 'fade'", "transition = []"):
        f = tmp_path / "set.toml"
        f.write_text(f'{line}\n[[scene]]\npatch = "a.py"\n')
        with pytest.raises(SetError, match=line.split()[0]):
            SetList(f)


def test_hostile_bookmark_commands_are_refused_and_the_book_survives(tmp_path):
    (tmp_path / "a.py").write_text(STILL)
    o = Options(patch=tmp_path / "a.py", size=(32, 32), fps=30, live=False, state=tmp_path / "state")
    with Session(o) as s:
        d = s.dispatcher
        frames = 0
        for k, (address, args) in enumerate([
                ("/vj/bookmark/save", ("keep",)), (None, None),
                ("/vj/bookmark/save", ("x" * 10_000,)),               # too long
                ("/vj/bookmark/save", ("bell\x07",)),                 # a control character
                ("/vj/bookmark/recall", ("nope",)),                   # no such bookmark
                ("/vj/bookmark/recall", ("keep", math.nan)),
                ("/vj/bookmark/recall", ("keep", 1e12)),
                ("/vj/bookmark/recall", ("keep", "soon")),
                ("/vj/bookmark/rename", ("keep", "")),
                ("/vj/bookmark/delete", ("../../etc/passwd",)),
                ("/vj/bookmark/release", (-1.0,)),
                ("/vj/bookmark/save", (1.5,))]):
            if address is not None:
                d.dispatch(address, args, None, source="osc")
            if s.engine.render_frame() is not None:
                frames += 1
        assert frames == 11                     # one frame in flight (pipelined)
        assert s.bookmarks.book(s.runner).names() == ["keep"] and s.bookmarks.saved == ["keep"]
        # the empty new name passes the edge (a string) and is refused by the book: reported, nothing renamed
        assert d.stats["accepted"] == 2 and d.problems() == 9
        s.state_writer.flush()
    again = Session(Options(patch=tmp_path / "a.py", size=(32, 32), fps=30, live=False, state=tmp_path / "state"))
    with again:
        assert again.bookmarks.book(again.runner).names() == ["keep"]


def test_a_recording_with_hostile_notes_replays_every_frame_and_says_so(tmp_path, caplog):
    """Notes vj never writes (garbage bindings, NaN and wrong-typed parameter values, a patch
    note of the wrong shape mid-show) are reported and skipped; every frame is still drawn."""
    patch = tmp_path / "a.py"
    patch.write_text(STILL)
    path = tmp_path / "show.vjsig.gz"
    bus = SignalBus()
    notes = {0: [("patch", {"scene": 0, "path": str(patch), "source": STILL})],
             3: [("mappings", [1, 2, 3])],
             4: [("mappings", [{"source": "osc./x", "param": "x", "curve": "nope"}])],
             5: [("params", {"x": math.nan, "y": "many", 7: 1.0})],
             6: [("params", [1, 2])],
             7: [("patch", {"scene": 5, "path": "x.py", "source": "boom"})]}
    with SignalRecorder(path, {"fps": 30, "size": [32, 32], "patch": str(patch), "set": None}) as rec:
        for k in range(12):
            rec.record(bus.snapshot(time=k / 30, dt=1 / 30, frame=k, bpm=120.0, beat=k / 15), notes.get(k, ()))
    out = tmp_path / "out.mp4"
    proc = run_vj("render", "--signals", path, "--out", out, "--quiet", "--size", "32x32", "--trust")
    assert "a 'mappings' note cannot be used" in proc.stderr and "a 'params' note cannot be used" in proc.stderr
    assert "a 'patch' note cannot be used" in proc.stderr and "Traceback" not in proc.stderr
    assert "wrote" in proc.stderr and "12 frames" in proc.stderr, proc.stderr[-2000:]


def test_a_recording_whose_patch_note_is_not_vj_s_is_refused_before_rendering(tmp_path):
    patch = tmp_path / "a.py"
    patch.write_text(STILL)
    path = tmp_path / "show.vjsig.gz"
    bus = SignalBus()
    with SignalRecorder(path, {"fps": 30, "size": [32, 32], "patch": str(patch)}) as rec:
        rec.record(bus.snapshot(time=0.0, dt=0.0, frame=0), [("patch", {"scene": "0", "path": 3, "source": []})])
    proc = run_vj("render", "--signals", path, "--out", tmp_path / "o.mp4", "--quiet", check=False)
    assert proc.returncode == 2 and "not one vj writes" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_frames_keep_coming_while_a_scene_s_patch_raises_during_a_crossfade(tmp_path):
    (tmp_path / "a.py").write_text(STILL)
    (tmp_path / "bad.py").write_text("def frame(p, s):\n    raise RuntimeError('boom')\n")
    f = tmp_path / "set.toml"
    f.write_text('transition = { kind = "crossfade", seconds = 0.2 }\n'
                 '[[scene]]\npatch = "a.py"\n[[scene]]\npatch = "bad.py"\n')
    sl = SetList(f)
    with Session(Options(setlist=sl, patch=sl.scene.patch, size=(32, 32), fps=30, live=False)) as s:
        drawn = []
        for k in range(20):
            if k == 3:
                s.bus.emit("cue.next")
            fr = s.engine.render_frame()
            if fr is not None:
                drawn.append(np.frombuffer(fr.texture.read(), np.uint8).mean())
        assert len(drawn) == 19 and s.patches.errors >= 1
        assert "boom" in (s.patches.last_error or "")
