"""Mappings that can't be lost: every value checked at load, learn binds only declared names,
saves keep comments and mode, never overwrite edits vj has not read, and survive a SIGKILL.

The first half drives MappingsFile and ParamSet on real files; the second runs the real engine
(`vj run ... --learn NAME`) and moves controls with real OSC datagrams."""
import logging
import math
import os
import re
import signal
import socket
import stat
import subprocess
import time
import tomllib
import urllib.request
import json

import pytest
from pythonosc import udp_client

from conftest import ROOT, vj_cmd
from engine.patching.params import Binding, BindingError, ParamSet
from engine.show import mappings
from test_params import Frames

COMMENTED = """\
# my rig: the left fader is speed, the right one glow
# (keep this file tidy, it is printed for the crew)

[[binding]]  # left fader
source = "osc./fader/1"   # TouchOSC page 1
param = "speed"
range = [0.0, 1.0]
# the right fader, inverted because it is mounted upside down
[[binding]]
source = "osc./fader/2"
param = "glow"
invert = true
"""


def umask():
    old = os.umask(0)
    os.umask(old)
    return old


def new_mode():
    return 0o666 & ~umask()


def learn(ps, f, name, **signal):
    f.emit("param.learn", name)
    f()
    f(**signal)
    f()


def keys(path):
    return [(b["source"], b["param"]) for b in tomllib.loads(path.read_text()).get("binding", [])]


# --- values: checked once, at load ----------------------------------------------------------

def test_a_bad_binding_is_skipped_with_a_message_naming_file_binding_and_key(tmp_path, caplog):
    path = tmp_path / "show.mappings.toml"
    path.write_text("""
[[binding]]
source = "osc./good/1"
param = "speed"

[[binding]]
source = "osc./a"
param = "speed"
range = [0.0, nan]

[[binding]]
source = "osc./b"
param = "speed"
smooth = inf

[[binding]]
source = "osc./c"
param = "speed"
curve = "expo"

[[binding]]
source = "osc./d"
param = "speed"
mode = "abs"

[[binding]]
source = "osc./e"
param = "speed"
curve = nan

[[binding]]
source = "osc./f"
param = "speed"
takeover = "soft"

[[binding]]
source = "osc./g"
param = "speed"
invert = "false"

[[binding]]
source = "osc./h"
param = "speed"
step = -inf

[[binding]]
source = "osc./i"
param = "speed\\n"

[[binding]]
source = "osc./j"
param = "speed"
colour = "red"

[[binding]]
source = "osc./k"
param = "/vj/record/start"

[[binding]]
source = "osc./l"
param = "speed"
range = [0.5, 0.5]

[[binding]]
source = "osc./m"
param = "speed"
curve = -1.0

[[binding]]
source = "osc./good/2"
param = "/vj/tempo"
""")
    ps = ParamSet()
    ps.declare("speed")
    mf = mappings.MappingsFile(path, ps)
    with caplog.at_level(logging.ERROR, logger="vj"):
        assert mf.load()
    f = Frames(ps)
    f()
    assert [(b.source, b.param) for b in ps.bindings] == [("osc./good/1", "speed"), ("osc./good/2", "/vj/tempo")]
    said = [r.getMessage() for r in caplog.records]
    expect = {"a": "range", "b": "smooth", "c": "curve", "d": "mode", "e": "curve", "f": "takeover",
              "g": "invert", "h": "step", "i": "param", "j": "colour", "k": "param", "l": "range", "m": "curve"}
    for n, (letter, key) in enumerate(expect.items(), start=2):
        line = [m for m in said if f"'osc./{letter}'" in m]
        assert len(line) == 1, (letter, said)
        assert f"show.mappings.toml: binding {n} ('osc./{letter}' -> " in line[0] and f"): {key}: " in line[0]
        assert line[0].endswith("skipped")
    # the values that got in are finite, so the picture moves and OSCQuery's JSON stays JSON
    f(**{"osc./good/1": 0.3})
    assert ps.params["speed"].value == pytest.approx(0.3)
    json.dumps(ps.published, allow_nan=False)


@pytest.mark.parametrize("kw", [dict(range=(0.0, math.nan)), dict(range=(0, 1, 2)), dict(range="01"),
                                dict(smooth=math.inf), dict(smooth=-1.0), dict(smooth=True),
                                dict(curve=math.nan), dict(curve="expo"), dict(curve=0), dict(curve=True),
                                dict(step=math.nan), dict(step=0.0), dict(mode="abs"), dict(mode=["absolute"]),
                                dict(takeover=None), dict(invert=1), dict(source="osc./a\nb"),
                                dict(source="osc./" + "x" * 400), dict(source="osc./\ud800"),
                                dict(param="speed\n"), dict(param="Speed"), dict(param="a" * 65),
                                dict(param="/vj/nope"), dict(param="/vj/param/x\n"), dict(param="/vj/tempo\n")])
def test_a_binding_refuses_values_the_frame_cannot_use(kw):
    args = {"source": "osc./a", "param": "speed", **kw}
    with pytest.raises(BindingError) as e:
        Binding(**args)
    assert e.value.key in kw


def test_a_file_that_is_not_toml_keeps_the_previous_bindings(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('[[binding]]\nsource = "osc./a"\nparam = "x"\n')
    ps = ParamSet()
    mf = mappings.MappingsFile(path, ps)
    assert mf.load()
    Frames(ps)()
    path.write_text('[[binding]]\nsource = "osc./a\nparam = "x"\n')
    assert not mf.check() and "not TOML" in mf.error
    Frames(ps)()
    assert [b.source for b in ps.bindings] == ["osc./a"]
    # and the performer sees why on the HUD, not only in the log
    from engine.render.hud import StatusBoard
    board = StatusBoard(None, None, "m", (64, 64), 30, params=ps, mappings=mf)
    assert any("not TOML" in line for line in board.control_lines())


# --- learn: only names it can bind -------------------------------------------------------------

HOSTILE = ["speed\n", "speed\r\n", "\nspeed", "speed\x00", "sp\"eed", "speed\\", "s" * 65, "s" * 100_000,
           "/vj/tempo\n", "/vj/tempo\x1b[2J", "/vj/nope", "/vj/param/speed\n", "/vj/param/Speed", "", " speed",
           "SPEED", "speed]\n[[binding]]\nsource = \"x\""]


@pytest.mark.parametrize("name", HOSTILE, ids=[repr(n)[:24] for n in HOSTILE])
def test_learn_refuses_a_hostile_name_and_writes_nothing(tmp_path, name):
    path = tmp_path / "show.mappings.toml"
    ps = ParamSet()
    mf = mappings.MappingsFile(path, ps)
    ps.on_learned = mf.add
    ps.declare("speed")
    f = Frames(ps)
    ps.arm_learn(name, t=f.t)
    f()
    f(**{"osc./fader/1": 0.4})
    f()
    f(**{"osc./fader/1": 0.5})
    assert ps.learning is None and ps.bindings == []
    assert not path.exists() and not mf.learned_path.exists()
    assert any(("not a parameter's name" in m or "cancelled" in m or m == "learn: off") for m in ps.messages)


def test_learn_takes_a_hostile_osc_address_as_a_source_that_reads_back(tmp_path):
    """OSC addresses are the sender's: quotes, backslashes, TOML syntax, brackets, unicode."""
    path = tmp_path / "show.mappings.toml"
    ps = ParamSet()
    mf = mappings.MappingsFile(path, ps)
    ps.on_learned = mf.add
    ps.declare("speed")
    f = Frames(ps)
    weird = ['/a"b', "/c\\d", '/e"\n', "/f]]\n[[binding]]", "/g'''", '/h"""', '/i" # c', "/j\\u0000",
             '/k"\nparam = "glow', "/é/ü/☃"]
    for addr in weird:
        if not addr.isprintable():
            continue  # OSC in refuses these; learn never sees them
        learn(ps, f, "speed", **{"osc." + addr: 0.5})
    expected = [("osc." + a, "speed") for a in weird if a.isprintable()]
    assert keys(path) == expected
    # an address that ends in [n] would read back as element n of another signal: not learnt
    learn(ps, f, "speed", **{"osc./xy[3]": 0.5})
    assert ps.learning is not None and keys(path) == expected
    ps2 = ParamSet()
    assert mappings.MappingsFile(path, ps2).load()
    Frames(ps2)()
    assert [(b.source, b.param) for b in ps2.bindings] == expected


def test_learn_an_engine_address_only_if_learnable(tmp_path):
    path = tmp_path / "m.toml"
    ps = ParamSet(command=lambda *a: None)
    mf = mappings.MappingsFile(path, ps)
    ps.on_learned = mf.add
    f = Frames(ps)
    learn(ps, f, "/vj/record/start", **{"osc./pad": 1.0})
    assert not path.exists()
    learn(ps, f, "/vj/cue/next", **{"osc./pad": 1.0})
    assert keys(path) == [("osc./pad", "/vj/cue/next")]


# --- learn keeps the user's file -------------------------------------------------------------

def test_learn_keeps_comments_layout_and_mode(tmp_path):
    path = tmp_path / "show.mappings.toml"
    path.write_text(COMMENTED)
    os.chmod(path, 0o644)
    ps = ParamSet()
    mf = mappings.MappingsFile(path, ps)
    mf.load()
    ps.on_learned = mf.add
    for n in ("speed", "glow", "hue"):
        ps.declare(n)
    f = Frames(ps)
    learn(ps, f, "hue", **{"osc./fader/3": 0.5})
    text = path.read_text()
    assert text.startswith(COMMENTED)  # every byte the user wrote, then the new binding
    assert keys(path) == [("osc./fader/1", "speed"), ("osc./fader/2", "glow"), ("osc./fader/3", "hue")]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    # learning again the same control for the same parameter rewrites that table where it is
    os.chmod(path, 0o640)
    learn(ps, f, "glow", **{"osc./fader/2": 0.1})
    text = path.read_text()
    for line in COMMENTED.splitlines():
        if line.startswith("#") or "#" in line:
            assert line in text
    assert keys(path) == [("osc./fader/1", "speed"), ("osc./fader/2", "glow"), ("osc./fader/3", "hue")]
    assert "invert =" not in text  # learnt afresh: the new binding, as learn made it
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_a_new_file_gets_the_umask_mode_and_a_file_without_newline_or_with_crlf_is_extended(tmp_path):
    ps = ParamSet()
    ps.declare("speed")
    f = Frames(ps)
    path = tmp_path / "new.mappings.toml"
    mf = mappings.MappingsFile(path, ps)
    ps.on_learned = mf.add
    learn(ps, f, "speed", **{"osc./a": 0.5})
    assert stat.S_IMODE(path.stat().st_mode) == new_mode()
    assert path.read_text().startswith("# vj mappings")
    for name, text in (("nonl.toml", '# mine\n[[binding]]\nsource = "osc./z"\nparam = "speed"'),
                       ("crlf.toml", '# mine\r\n[[binding]]\r\nsource = "osc./z"\r\nparam = "speed"\r\n')):
        p = tmp_path / name
        p.write_bytes(text.encode())
        ps2 = ParamSet()
        ps2.declare("speed")
        f2 = Frames(ps2)
        mf2 = mappings.MappingsFile(p, ps2)
        mf2.load()
        ps2.on_learned = mf2.add
        learn(ps2, f2, "speed", **{"osc./y": 0.5})
        assert p.read_bytes().startswith(b"# mine")
        assert keys(p) == [("osc./z", "speed"), ("osc./y", "speed")]


def test_a_symlinked_file_stays_a_symlink(tmp_path):
    real = tmp_path / "real.toml"
    real.write_text(COMMENTED)
    link = tmp_path / "show.mappings.toml"
    link.symlink_to(real)
    ps = ParamSet()
    ps.declare("hue")
    mf = mappings.MappingsFile(link, ps)
    mf.load()
    ps.on_learned = mf.add
    learn(ps, Frames(ps), "hue", **{"osc./h": 0.5})
    assert link.is_symlink() and keys(real)[-1] == ("osc./h", "hue")


def test_an_edit_vj_has_not_read_goes_untouched_and_learn_writes_beside_it(tmp_path, caplog):
    path = tmp_path / "show.mappings.toml"
    path.write_text(COMMENTED)
    ps = ParamSet()
    for n in ("speed", "glow", "hue"):
        ps.declare(n)
    mf = mappings.MappingsFile(path, ps)
    mf.load()
    ps.on_learned = mf.add
    f = Frames(ps)
    edited = COMMENTED + '\n[[binding]]\nsource = "midi.ch1.cc.7"\nparam = "hue"\n'
    path.write_text(edited)  # the watcher has not looked yet
    with caplog.at_level(logging.WARNING, logger="vj"):
        learn(ps, f, "speed", **{"osc./fader/9": 0.5})
    assert path.read_text() == edited
    learned = tmp_path / "show.mappings.learned.toml"
    assert keys(learned) == [("osc./fader/9", "speed")]
    line = [r.getMessage() for r in caplog.records if "learned.toml" in r.getMessage()]
    assert line and str(learned) in line[0] and str(path) in line[0] and "changed on disk" in line[0]
    # while the learned file exists, learn adds there (the newest binding always wins)
    mf.check()
    learn(ps, f, "glow", **{"osc./fader/2": 0.5})
    assert path.read_text() == edited
    assert keys(learned) == [("osc./fader/9", "speed"), ("osc./fader/2", "glow")]
    # next start: the main file's bindings, with the learned ones over them
    ps2 = ParamSet()
    assert mappings.MappingsFile(path, ps2).load()
    Frames(ps2)()
    got = {(b.source, b.param): b for b in ps2.bindings}
    assert set(got) == {("osc./fader/1", "speed"), ("osc./fader/2", "glow"), ("midi.ch1.cc.7", "hue"),
                        ("osc./fader/9", "speed")}
    assert got[("osc./fader/2", "glow")].invert is False  # the learned one, over the file's inverted one


@pytest.mark.parametrize("broken", ['[[binding]]\nsource = "osc./a\n', "\xff\xfe not text", "binding = 3\n", None])
def test_a_main_file_that_does_not_parse_is_never_written_over(tmp_path, broken):
    path = tmp_path / "show.mappings.toml"
    if broken is None:
        path.mkdir()  # not even a file
    else:
        path.write_bytes(broken.encode("latin-1"))
    ps = ParamSet()
    ps.declare("speed")
    mf = mappings.MappingsFile(path, ps)
    assert not mf.load() and mf.error
    ps.on_learned = mf.add
    learn(ps, Frames(ps), "speed", **{"osc./f": 0.5})
    if broken is None:
        assert path.is_dir()
    else:
        assert path.read_bytes() == broken.encode("latin-1")
    assert keys(mf.learned_path) == [("osc./f", "speed")]
    assert mf.error is None


def test_io_errors_are_reported_once_the_frames_go_on_and_the_binding_is_written_later(tmp_path, caplog):
    blocker = tmp_path / "rig"
    blocker.write_text("a file where the folder should be")
    path = blocker / "show.mappings.toml"
    ps = ParamSet()
    ps.declare("speed")
    mf = mappings.MappingsFile(path, ps)
    mf.load()
    f = Frames(ps)
    with caplog.at_level(logging.ERROR, logger="vj"):
        for i in range(3):
            learn(ps, f, "speed", **{"osc./f": 0.2 + i / 10})
            deadline = time.monotonic() + 5
            while mf.error is None and time.monotonic() < deadline:
                time.sleep(0.01)
            mf._last_try = 0  # as if the retry interval had passed
            mf.check()
    said = [r.getMessage() for r in caplog.records if "not saved" in r.getMessage()]
    assert len(said) == 1 and "kept while vj runs" in said[0]
    f(**{"osc./f": 0.9})
    f(**{"osc./f": 0.8})
    assert ps.params["speed"].value == pytest.approx(0.8)  # the binding is live meanwhile
    blocker.unlink()
    blocker.mkdir()
    mf._last_try = 0
    mf.check()
    assert keys(path) == [("osc./f", "speed")] and mf.error is None


def test_a_save_that_would_not_read_back_replaces_nothing(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(COMMENTED)
    before = path.read_bytes()
    with pytest.raises(mappings.MappingsError, match="read back different"):
        mappings.write_checked(path, COMMENTED, [Binding("osc./fader/1", "speed")])
    with pytest.raises(mappings.MappingsError, match="not TOML"):
        mappings.write_checked(path, '[[binding]]\nsource = "a\nb"\n', [])
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.toml"]


# --- the real engine ---------------------------------------------------------------------------

PATCH = """
def setup(p):
    p.keys = p.seeds([1, 2, 3])

def frame(p, s):
    speed = p.param("speed", default=0.5, lo=0, hi=2)
    glow = p.param("glow", default=0.0)
    return p.controls(z=p.loop(p.keys, beats=8), zoom=1 + 0.1 * speed, brightness=0.2 * glow)
"""


def free_port(kind=socket.SOCK_DGRAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Engine:
    """`vj run PATCH --headless ... --learn NAME`, its log in a file (a pipe could fill and stall it)."""

    def __init__(self, tmp_path, env, *args, frames=900, learn=None, oscquery=False, umask=0o022):
        self.dir, self.osc = tmp_path, free_port()
        self.log = tmp_path / f"vj-{time.monotonic_ns()}.log"
        self.oq = free_port(socket.SOCK_STREAM) if oscquery else None
        cmd = vj_cmd("run", tmp_path / "rig.py", "--headless", "--size", "64x64", "--frames", frames,
                     "--no-midi", "--osc-port", self.osc,
                     *(["--oscquery-port", self.oq] if oscquery else ["--no-oscquery"]),
                     *(["--learn", learn] if learn is not None else []), *args)
        self.err = open(self.log, "w")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.err,
                                     umask=umask)
        self.client = udp_client.SimpleUDPClient("127.0.0.1", self.osc)
        assert self.wait(lambda: "frame" in self.text() or "model" in self.text(), 90), self.text()

    def text(self):
        return self.log.read_text()

    def wait(self, cond, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and not cond():
                return False
            try:
                if cond():
                    return True
            except (OSError, ValueError, tomllib.TOMLDecodeError):
                pass
            time.sleep(0.05)
        return False

    def move_until(self, address, cond, timeout=30.0):
        """Move a control (a real UDP datagram) every 50 ms until ``cond``."""
        value = [0.0]

        def moved():
            value[0] = (value[0] + 0.05) % 1.0
            self.client.send_message(address, value[0])
            return cond()
        return self.wait(moved, timeout)

    def stop(self, sig=signal.SIGINT):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.close()
        return self.text()

    def param(self, name):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.oq}/vj/param/{name}", timeout=5) as r:
            return json.loads(r.read())["VALUE"][0]


@pytest.fixture
def rig(tmp_path, env_no_display):
    (tmp_path / "rig.py").write_text(PATCH)
    started = []

    def start(*args, **kw):
        e = Engine(tmp_path, env_no_display, *args, **kw)
        started.append(e)
        return e
    start.dir = tmp_path
    yield start
    for e in started:
        e.stop(signal.SIGKILL)


@pytest.mark.parametrize("name", ["glow\n", "/vj/tempo\n", 'gl"ow', "g" * 5000, "/vj/record/start"],
                         ids=["newline", "address-newline", "quote", "long", "not-learnable"])
def test_engine_learn_with_a_hostile_name_writes_nothing(rig, name):
    """`--learn '/vj/tempo<newline>'` used to write `param = "/vj/tempo` + a raw newline: a file
    that no longer parsed, so every binding was gone at the next start."""
    e = rig(learn=name)
    mf = e.dir / "rig.mappings.toml"
    assert e.wait(lambda: "learn is off" in e.text(), 30), e.text()
    e.move_until("/fader/1", lambda: False, timeout=0.75)
    log = e.stop()
    assert not mf.exists() and not (e.dir / "rig.mappings.learned.toml").exists()
    assert "not a parameter's name or a learnable address" in log
    assert "Traceback" not in log


def test_engine_learn_keeps_the_users_comments_and_mode(rig):
    path = rig.dir / "rig.mappings.toml"
    path.write_text(COMMENTED.replace('param = "glow"', 'param = "speed"'))
    os.chmod(path, 0o644)
    e = rig(learn="glow")
    assert e.move_until("/fader/7", lambda: ("osc./fader/7", "glow") in keys(path)), e.text()
    log = e.stop()
    assert path.read_text().startswith(COMMENTED.replace('param = "glow"', 'param = "speed"'))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert "mappings saved" in log and "Traceback" not in log


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_engine_learn_makes_a_new_file_with_the_umask_mode(rig, mask):
    e = rig(learn="speed", umask=mask)
    path = e.dir / "rig.mappings.toml"
    assert e.move_until("/knob", lambda: ("osc./knob", "speed") in keys(path)), e.text()
    e.stop()
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_engine_a_broken_edit_while_running_goes_untouched_and_the_learned_file_is_merged_next_start(rig):
    e = rig(learn="glow")
    path = e.dir / "rig.mappings.toml"
    learned = e.dir / "rig.mappings.learned.toml"
    broken = COMMENTED + '\n[[binding]]\nsource = "osc./half typed\n'
    path.write_text(broken)
    assert e.wait(lambda: "mappings not loaded" in e.text(), 10), e.text()
    assert e.move_until("/fader/5", lambda: ("osc./fader/5", "glow") in keys(learned)), e.text()
    log = e.stop()
    assert path.read_text() == broken
    line = [x for x in log.splitlines() if "learned.toml" in x and "written" in x]
    assert line and str(path) in line[0] and "does not parse" in line[0], log
    # the user fixes the file; the next start has both: the file's, and the learned one over them
    path.write_text(COMMENTED)
    e = rig(oscquery=True)
    assert e.wait(lambda: "1 learnt binding from" in e.text(), 30), e.text()
    # a loaded pick-up binding waits for the control to reach the value (glow is at 0.0)
    e.client.send_message("/fader/5", 0.0)
    time.sleep(0.3)
    e.client.send_message("/fader/5", 0.25)
    assert e.wait(lambda: abs(e.param("glow") - 0.25) < 1e-6, 10)
    e.client.send_message("/fader/1", 0.75)
    assert e.wait(lambda: abs(e.param("speed") - 0.75) < 1e-6, 10)  # the main file's binding too
    e.stop()


def test_engine_sigkill_right_after_learn_leaves_every_binding(rig):
    path = rig.dir / "rig.mappings.toml"
    path.write_text(COMMENTED)
    e = rig(learn="glow")
    assert e.move_until("/fader/8", lambda: ("osc./fader/8", "glow") in keys(path)), e.text()
    e.proc.send_signal(signal.SIGKILL)
    e.proc.wait()
    assert keys(path) == [("osc./fader/1", "speed"), ("osc./fader/2", "glow"), ("osc./fader/8", "glow")]
    assert path.read_text().startswith(COMMENTED)


def test_engine_sigkill_while_learning_never_leaves_a_partial_file(rig):
    """Learn over and over (a new control each time) and kill the engine at a random moment."""
    import random
    rng = random.Random(7)
    path = rig.dir / "rig.mappings.toml"
    path.write_text(COMMENTED)
    for attempt in range(3):
        e = rig()
        before = keys(path)
        deadline = time.monotonic() + 1.5 + rng.random() * 3.0
        n = 0
        while time.monotonic() < deadline:
            n += 1
            e.client.send_message("/vj/learn", "speed" if n % 2 else "glow")
            time.sleep(0.07)
            e.client.send_message(f"/k{attempt}/{n}", 0.5)
            time.sleep(0.07)
        e.proc.send_signal(signal.SIGKILL)
        e.proc.wait()
        after = keys(path)  # parses: never half a file
        assert after[:len(before)] == before, (before, after)
        assert path.read_text().startswith(COMMENTED)
        assert all(re.fullmatch(rf"osc\./k{attempt}/\d+", s) for s, _ in after[len(before):])
        assert len(after) > len(before)
