"""State files: atomic saves with a previous good copy, the writer thread, per-model keys."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.show import state
from engine.show.state import StateFile, StateWriter, default_state_dir, model_key

ROOT = Path(__file__).resolve().parent.parent


def _check(data):
    if not isinstance(data, dict) or "n" not in data:
        raise ValueError("no n")


def _errors(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "vj" and r.levelno >= logging.ERROR]


def test_default_state_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("VJ_STATE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "x"))
    assert default_state_dir() == tmp_path / "a"
    monkeypatch.delenv("VJ_STATE")
    assert default_state_dir() == tmp_path / "x" / "vj"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_dir() == tmp_path / "home" / ".local" / "state" / "vj"


def test_save_and_load(tmp_path):
    f = StateFile(tmp_path / "sub" / "s.json", check=_check)
    assert f.load() == (None, None)  # nothing saved yet: no note either
    f.save({"n": 1, "text": "ünï"})
    assert f.load() == ({"n": 1, "text": "ünï"}, None)
    assert not f.prev_path.exists()  # nothing before the first save to keep
    f.save({"n": 2})
    assert f.load() == ({"n": 2}, None)
    assert json.loads(f.prev_path.read_text()) == {"n": 1, "text": "ünï"}
    f.save({"n": 3})
    assert json.loads(f.prev_path.read_text()) == {"n": 2}
    # no temporary files left behind
    assert sorted(p.name for p in f.path.parent.iterdir()) == ["s.json", "s.json.prev"]


def test_save_refuses_what_would_not_load(tmp_path):
    f = StateFile(tmp_path / "s.json", check=_check, max_bytes=1000)
    f.save({"n": 1})
    for bad in ({"n": float("nan")}, {"m": 1}, {"n": "x" * 2000}, {"n": object()}):
        with pytest.raises(ValueError):
            f.save(bad)
    assert f.load() == ({"n": 1}, None)


def test_prev_not_replaced_by_a_damaged_current(tmp_path):
    f = StateFile(tmp_path / "s.json", check=_check)
    f.save({"n": 1})
    f.save({"n": 2})
    f.path.write_bytes(b"\x00garbage")
    f.save({"n": 3})  # the damaged file is not the previous *good* copy: {"n": 1} stays
    assert json.loads(f.prev_path.read_text()) == {"n": 1}
    assert f.load() == ({"n": 3}, None)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "fails check", "huge", "nan", "missing",
                                    "empty", "deep", "folder"])
def test_damaged_current_falls_back_to_prev(tmp_path, damage):
    f = StateFile(tmp_path / "s.json", check=_check)
    f.save({"n": 1})
    f.save({"n": 2, "pad": "y" * 100})
    good = f.path.read_bytes()
    if damage == "truncated":
        f.path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        f.path.write_bytes(os.urandom(300))
    elif damage == "fails check":
        f.path.write_text(json.dumps({"m": 2}))
    elif damage == "huge":
        with open(f.path, "wb") as out:  # over 8 MiB: refused without being read whole
            out.write(b'{"n": 2, "pad": "' + b"z" * (state.MAX_BYTES + 10) + b'"}')
    elif damage == "nan":
        f.path.write_text('{"n": NaN}')
    elif damage == "missing":
        f.path.unlink()
    elif damage == "empty":
        f.path.write_bytes(b"")
    elif damage == "deep":
        f.path.write_text("[" * 100000 + "]" * 100000)
    elif damage == "folder":
        f.path.unlink()
        f.path.mkdir()
    data, note = f.load()
    assert data == {"n": 1}
    assert str(f.path) in note and "previous good copy" in note and "s.json.prev" in note


def test_both_bad(tmp_path):
    f = StateFile(tmp_path / "s.json", check=_check)
    f.save({"n": 1})
    f.save({"n": 2})
    f.path.write_text("{")
    f.prev_path.write_text("[]")
    data, note = f.load()
    assert data is None and "s.json" in note and "cannot be used either" in note
    f.prev_path.unlink()
    data, note = f.load()
    assert data is None and "no previous copy" in note
    f.path.unlink()
    assert f.load() == (None, None)


def test_stale_tmp_files_swept(tmp_path):
    f = StateFile(tmp_path / "s.json")
    f.save({"n": 1})
    old = tmp_path / "s.json.tmp-deadbeef"
    new = tmp_path / "s.json.tmp-cafe"
    other = tmp_path / "other.json.tmp-1"
    for p in (old, new, other):
        p.write_text("half")
    os.utime(old, (time.time() - 2 * state.STALE_TMP_S,) * 2)
    os.utime(other, (time.time() - 2 * state.STALE_TMP_S,) * 2)
    f.load()
    assert not old.exists() and new.exists() and other.exists()


def test_keeps_mode(tmp_path):
    f = StateFile(tmp_path / "s.json")
    f.save({"n": 1})
    os.chmod(f.path, 0o600)
    f.save({"n": 2})
    assert (f.path.stat().st_mode & 0o777) == 0o600


def test_current_never_missing_during_saves(tmp_path):
    """A reader polling all the time sees a whole good file at every moment."""
    f = StateFile(tmp_path / "s.json", check=_check)
    f.save({"n": 0})
    stop = threading.Event()
    bad = []

    def read():
        while not stop.is_set():
            data, note = f.load()
            if note is not None or data is None:
                bad.append(note)
    t = threading.Thread(target=read)
    t.start()
    try:
        for i in range(200):
            f.save({"n": i, "pad": "p" * (i * 10)})
    finally:
        stop.set()
        t.join()
    assert bad == []


# --- the writer thread
class SlowFile(StateFile):
    """Records what was saved; the first save waits for a gate, so puts pile up behind it."""

    def __init__(self, path, gate=None):
        super().__init__(path)
        self.saved = []
        self.gate = gate

    def save(self, data):
        if self.gate is not None:
            self.gate.wait(5)
        super().save(data)
        self.saved.append(data)


def test_writer_coalesces_and_flushes(tmp_path):
    gate = threading.Event()
    f = SlowFile(tmp_path / "s.json", gate)
    g = SlowFile(tmp_path / "t.json")
    w = StateWriter()
    try:
        assert threading.current_thread() is not w._thread and w._thread.name == "state writer"
        w.put(f, {"n": 0})
        assert wait(lambda: w.pending() == 1 and not w._pending)  # in the first save, held at the gate
        for i in range(1, 50):
            w.put(f, {"n": i})
        w.put(g, {"n": "g"})
        assert not w.flush(0.1)     # held: not on disk yet
        gate.set()
        assert w.flush(5)
        assert f.saved == [{"n": 0}, {"n": 49}]  # only the newest pending one was written
        assert g.saved == [{"n": "g"}]
        assert f.load() == ({"n": 49}, None) and w.pending() == 0
    finally:
        assert w.close()
    assert not w._thread.is_alive()


def test_writer_put_after_close_still_writes(tmp_path):
    w = StateWriter()
    w.close()
    f = StateFile(tmp_path / "s.json")
    w.put(f, {"n": 1})
    assert f.load() == ({"n": 1}, None)


def test_writer_reports_once_keeps_data_and_retries(tmp_path, caplog):
    """Works as root too: the folder is a plain file at first, so nothing can be made in it."""
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    f = StateFile(blocker / "s.json")
    w = StateWriter(retry_s=0.05)
    caplog.set_level(logging.INFO, logger="vj")
    try:
        for i in range(5):
            w.put(f, {"n": i})
            assert not w.flush(0.2)
        time.sleep(0.3)  # several timed retries, all failing the same way
        errs = _errors(caplog)
        assert len(errs) == 1, errs
        assert str(f.path) in errs[0] and "kept in memory" in errs[0]
        assert w.error == errs[0] and w.pending() == 1
        blocker.unlink()
        blocker.mkdir()           # the folder can be made now: the timed retry writes it
        assert w.flush(5)
        assert f.load() == ({"n": 4}, None)
        assert w.error is None
        assert any("saved now" in r.getMessage() for r in caplog.records)
    finally:
        w.close()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_writer_read_only_folder(tmp_path, caplog):
    d = tmp_path / "ro"
    d.mkdir()
    f = StateFile(d / "s.json")
    f.save({"n": 0})
    os.chmod(d, 0o500)
    w = StateWriter(retry_s=60)  # only puts retry here
    try:
        for i in range(1, 4):
            w.put(f, {"n": i})
            assert not w.flush(0.3)
        assert len(_errors(caplog)) == 1
        assert f.load() == ({"n": 0}, None)
        os.chmod(d, 0o700)
        w.put(f, {"n": 4})
        assert w.flush(5)
        assert f.load() == ({"n": 4}, None)
    finally:
        os.chmod(d, 0o700)
        w.close()


def test_writer_survives_unexpected_errors(tmp_path, caplog):
    class Broken(StateFile):
        def save(self, data):
            raise RuntimeError("boom")
    w = StateWriter(retry_s=60)
    try:
        w.put(Broken(tmp_path / "b.json"), {"n": 1})
        assert not w.flush(0.2)
        f = StateFile(tmp_path / "s.json")
        w.put(f, {"n": 2})
        assert wait(lambda: f.load()[0] == {"n": 2})
        assert any("boom" in m for m in _errors(caplog))
    finally:
        w.close(0.1)


def wait(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


# --- model keys
def test_model_key_files(tmp_path):
    a = tmp_path / "my model (v2).pkl"
    a.write_bytes(b"weights" * 1000)
    k = model_key(a)
    assert k == model_key(str(a)) and state._UNSAFE.search(k) is None and len(k) <= 80
    assert k.startswith("my_model__v2_-") and len(k.split("-")[-1]) == 16
    # the content decides, not the name or place
    b = tmp_path / "elsewhere" / "renamed.pkl"
    b.parent.mkdir()
    b.write_bytes(a.read_bytes())
    assert model_key(b).split("-")[-1] == k.split("-")[-1]
    b.write_bytes(b"other weights")
    assert model_key(b).split("-")[-1] != k.split("-")[-1]
    # a long stem is cut; the key stays a safe name
    c = tmp_path / ("x" * 200 + ".pt")
    c.write_bytes(b"1")
    assert len(model_key(c)) <= 80


def test_model_key_stable_across_runs(tmp_path):
    a = tmp_path / "m.safetensors"
    a.write_bytes(os.urandom(3 * 1024 * 1024 + 5))  # more than one chunk
    code = "import sys; from engine.show.state import model_key; print(model_key(sys.argv[1]))"
    runs = {subprocess.run([sys.executable, "-c", code, str(a)], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.strip() for _ in range(2)}
    assert runs == {model_key(a)}


def test_model_key_memo_notices_changes(tmp_path):
    a = tmp_path / "m.pt"
    a.write_bytes(b"one")
    k1 = model_key(a)
    a.write_bytes(b"two, longer")
    assert model_key(a) != k1


def test_model_key_names():
    assert model_key(None) == "default"
    assert model_key("stylegan2-ffhq") == "stylegan2-ffhq"
    weird = model_key("../a b")
    assert state._UNSAFE.search(weird) is None and not weird.startswith(".")
    assert weird != model_key("../a_b") != model_key("a_b")
    assert model_key("x" * 500).__len__() <= 80
    for name in ("..", ".", "", "/", "\x00"):
        k = model_key(name)
        assert k not in ("", ".", "..") and state._UNSAFE.search(k) is None

    class Entry:
        name, file = "reg", Path("/nonexistent/file.pkl")
    assert model_key(Entry()) == "reg"


def test_writer_permission_denied_reported_once(tmp_path, caplog, monkeypatch):
    """As a read-only folder fails for a user (simulated: the tests may run as root). Each try
    uses a new temporary name; the report must not, or it would repeat every few seconds."""
    f = StateFile(tmp_path / "s.json")
    f.save({"n": 0})
    real_open = os.open
    denied = [True]

    def fake_open(path, flags, *a, **kw):
        if denied[0] and ".tmp-" in os.fspath(path):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, *a, **kw)
    monkeypatch.setattr(state.os, "open", fake_open)
    w = StateWriter(retry_s=0.02)
    try:
        for i in range(1, 4):
            w.put(f, {"n": i})
            assert not w.flush(0.1)
        errs = _errors(caplog)
        assert len(errs) == 1 and "Permission denied" in errs[0] and ".tmp-" not in errs[0]
        assert f.load() == ({"n": 0}, None)
        denied[0] = False
        assert w.flush(5)
        assert f.load() == ({"n": 3}, None)
    finally:
        w.close()
