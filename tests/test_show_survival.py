"""What a show keeps survives the worst ends: a SIGKILL right after learning a control and saving
a bookmark loses neither, and a damaged show state file falls back to its previous good copy
(and says so). Real `vj run` processes, driven by real UDP OSC datagrams."""
import json
import signal
import socket
import subprocess
import time
import tomllib
import urllib.request

from pythonosc import udp_client

from conftest import ROOT, free_port, vj_cmd
from conftest import poll as conftest_poll

PATCH = """
def frame(p, s):
    p.param('speed', 0.5)
    return p.controls(z=p.seed(1))
"""

SET = """
[[scene]]
name = "one"
patch = "a.py"
[[scene]]
name = "two"
patch = "a.py"
"""

START_S = 120.0   # a cold start on a loaded 2-core machine (imports, the model, the first frame)
WAIT_S = 60.0


def poll(cond, timeout=WAIT_S, proc=None, step=0.05):
    return conftest_poll(cond, timeout, proc, step, errors=(OSError, ValueError, KeyError, tomllib.TOMLDecodeError))


class Vj:
    """`vj run TARGET --headless --state DIR` live, its log in a file (a pipe could fill and stall it)."""

    def __init__(self, tmp_path, env, target, state, *args):
        self.osc, self.oq = free_port(socket.SOCK_DGRAM), free_port()
        self.log = tmp_path / f"vj-{time.monotonic_ns()}.log"
        self.err = open(self.log, "w")
        cmd = vj_cmd("run", target, "--headless", "--state", state, "--size", "64x48", "--fps", "30",
                     "--no-midi", "--osc-port", self.osc, "--oscquery-port", self.oq, *args)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.err)
        self.client = udp_client.SimpleUDPClient("127.0.0.1", self.osc)
        # OSC is accepted once the OSCQuery server answers with the patch's parameter
        assert poll(lambda: self.get("/vj/param/speed"), START_S, self.proc), \
            f"vj did not come up (exit {self.proc.poll()})\n{self.text()[-4000:]}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.oq}{path}", timeout=5) as r:
            return json.loads(r.read() or b"null")

    def send(self, address, *args):
        self.client.send_message(address, list(args))

    def stop(self, sig=signal.SIGTERM) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.close()
        return self.text()


def engines():
    started = []

    def close():
        for e in started:
            if e.proc.poll() is None:
                e.proc.kill()
                e.proc.wait()
            if not e.err.closed:
                e.err.close()
    return started, close


def state_env(env, state):
    env = dict(env)
    env["VJ_STATE"] = str(state)
    return env


def bindings(path):
    return [(b.get("source"), b.get("param")) for b in tomllib.loads(path.read_text()).get("binding", [])]


def bookmark_names(state):
    names = []
    for f in sorted((state / "bookmarks").glob("*.json")):
        names += [b["name"] for b in json.loads(f.read_text())["bookmarks"]]
    return names


def test_sigkill_right_after_learning_and_bookmarking_loses_nothing(tmp_path, env_no_display):
    (tmp_path / "a.py").write_text(PATCH)
    state = tmp_path / "state"
    env = state_env(env_no_display, state)
    mappings = tmp_path / "a.mappings.toml"
    started, close = engines()
    try:
        e = Vj(tmp_path, env, tmp_path / "a.py", state)
        started.append(e)
        e.send("/vj/learn", "speed")
        assert poll(lambda: "learn" in e.text(), WAIT_S, e.proc), e.text()[-4000:]

        def learnt():  # a control moved (a frame apart) until learn has bound it and written it
            e.send("/fader", 0.7)
            return ("osc./fader", "speed") in bindings(mappings)
        assert poll(learnt, WAIT_S, e.proc, step=1 / 30), e.text()[-4000:]
        e.send("/vj/bookmark/save", "keep")
        assert poll(lambda: "keep" in bookmark_names(state), WAIT_S, e.proc), e.text()[-4000:]
        e.proc.send_signal(signal.SIGKILL)
        e.proc.wait(timeout=30)
        assert e.proc.returncode == -signal.SIGKILL
        e.err.close()

        # both files parse and hold what was made, right as the process died
        assert ("osc./fader", "speed") in bindings(mappings)
        books = list((state / "bookmarks").glob("*.json"))
        assert len(books) == 1
        doc = json.loads(books[0].read_text())
        assert doc["vj"] == "bookmarks" and [b["name"] for b in doc["bookmarks"]] == ["keep"]
        assert not list((state / "bookmarks").glob("*.tmp-*"))

        # the next start has both: the binding loaded, the bookmark there to recall
        e2 = Vj(tmp_path, env, tmp_path / "a.py", state)
        started.append(e2)
        assert poll(lambda: f"mappings: 1 binding from {mappings}" in e2.text(), WAIT_S, e2.proc), e2.text()[-4000:]
        e2.send("/vj/bookmark/recall", "keep")
        assert poll(lambda: "bookmark keep recalled" in e2.text(), WAIT_S, e2.proc), e2.text()[-4000:]
        # the learnt binding drives speed: a pick-up binding takes over once the control crosses
        # the value, so sweep the fader across the whole range first, a frame apart
        for i in range(21):
            e2.send("/fader", i / 20)
            time.sleep(1 / 30)

        def driven():
            e2.send("/fader", 0.25)
            return abs(e2.get("/vj/param/speed")["VALUE"][0] - 0.25) < 1e-3
        assert poll(driven, WAIT_S, e2.proc, step=0.2), e2.text()[-4000:]
        log = e2.stop()
        assert "no such bookmark" not in log
        assert "mappings not loaded" not in log and "mappings: " + str(mappings.name) not in log
        assert "Traceback" not in log
    finally:
        close()


def show_file(state):
    files = sorted((state / "shows").glob("*.json"))
    assert len(files) == 1, files
    return files[0]


def saved_scene(state):
    """The scene the show state file records; None while there is none yet."""
    files = sorted((state / "shows").glob("*.json"))
    return json.loads(files[0].read_text())["scene"] if len(files) == 1 else None


def test_a_damaged_state_file_falls_back_to_the_previous_copy_and_says_so(tmp_path, env_no_display):
    (tmp_path / "a.py").write_text(PATCH)
    (tmp_path / "show.toml").write_text(SET)
    state = tmp_path / "state"
    env = state_env(env_no_display, state)
    started, close = engines()
    try:
        # first run: cue to "two"; the state records it
        e = Vj(tmp_path, env, tmp_path / "show.toml", state)
        started.append(e)
        e.send("/vj/scene", "two")
        assert poll(lambda: e.get("/vj/scene")["VALUE"] == [2], WAIT_S, e.proc), e.text()[-4000:]
        assert poll(lambda: saved_scene(state) == "two", WAIT_S, e.proc), e.text()[-4000:]
        log = e.stop()
        assert e.proc.returncode == 0, log[-4000:]
        assert saved_scene(state) == "two"

        # second run opens in "two"; cue back to "one": the good "two" copy is kept as .prev
        e = Vj(tmp_path, env, tmp_path / "show.toml", state)
        started.append(e)
        assert poll(lambda: "back in scene 2/2 two" in e.text(), WAIT_S, e.proc), e.text()[-4000:]
        assert e.get("/vj/scene")["VALUE"] == [2]
        e.send("/vj/scene", "one")
        assert poll(lambda: e.get("/vj/scene")["VALUE"] == [1], WAIT_S, e.proc), e.text()[-4000:]
        assert poll(lambda: saved_scene(state) == "one", WAIT_S, e.proc), e.text()[-4000:]
        log = e.stop()
        assert e.proc.returncode == 0, log[-4000:]
        current = show_file(state)
        prev = current.with_name(current.name + ".prev")
        assert current.exists() and prev.exists()
        assert json.loads(current.read_text())["scene"] == "one"
        kept = json.loads(prev.read_text())
        assert kept["vj"] == "show" and kept["scene"] == "two"

        # a disk, an editor or a sync tool damages the current file
        current.write_bytes(b"\x00\xff{garbage\x9c not json")

        e = Vj(tmp_path, env, tmp_path / "show.toml", state)
        started.append(e)
        assert poll(lambda: "back in scene 2/2 two" in e.text(), WAIT_S, e.proc), e.text()[-4000:]
        text = e.text()
        note = [x for x in text.splitlines() if "show state:" in x]
        assert note, text[-4000:]
        assert str(current) in note[0] and "not UTF-8 text" in note[0], note
        assert f"using the previous good copy {prev.name}" in note[0], note
        assert e.get("/vj/scene")["VALUE"] == [2]
        log = e.stop()
        assert e.proc.returncode == 0, log[-4000:]
        assert "Traceback" not in log
    finally:
        close()
