"""Bookmarks: exact round trips, damaged entries skipped, surviving a SIGKILL, morphs."""
from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine.show.bookmarks import MAX_BOOKMARKS, BookmarkBook, BookmarkError, Morph, ease
from engine.show.state import StateWriter

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (4, 8)


def ws(seed=0):
    return np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)


def book(tmp_path, **kw):
    return BookmarkBook(tmp_path, "model-0123456789abcdef", SHAPE, **kw)


def test_round_trip_bit_exact(tmp_path):
    b = book(tmp_path)
    w = ws(1)
    w[0, 0], w[0, 1], w[0, 2] = -0.0, np.float32(1e-45), np.finfo(np.float32).max  # awkward floats
    params = {"speed": 0.1, "hue.shift": -3.25, "n_1": 7}
    assert b.save(w, params, scene="intro") == "1"
    again = book(tmp_path)
    m = again.get("1")
    assert m.ws.dtype == np.float32 and m.ws.tobytes() == w.tobytes()
    assert m.params == {"speed": 0.1, "hue.shift": -3.25, "n_1": 7.0}
    assert m.scene == "intro" and abs(m.created - b.get("1").created) == 0
    assert again.problems == []
    assert b.path == tmp_path / "bookmarks" / "model-0123456789abcdef.json"


def test_names_replace_rename_delete(tmp_path):
    b = book(tmp_path)
    assert [b.save(ws(i), {}) for i in range(3)] == ["1", "2", "3"]
    b.delete("2")
    assert b.save(ws(9), {}) == "2"  # the first unused number
    assert b.save(ws(4), {}, name="drop") == "drop"
    b.save(ws(5), {"x": 1.0}, name="1")  # replaces, in place
    assert b.names() == ["1", "3", "2", "drop"] and len(b) == 4
    assert b.get("1").ws.tobytes() == ws(5).tobytes()
    b.rename("drop", "the drop")
    assert b.names() == ["1", "3", "2", "the drop"]
    with pytest.raises(BookmarkError):
        b.rename("1", "3")
    with pytest.raises(KeyError):
        b.rename("nope", "x")
    with pytest.raises(KeyError):
        b.delete("nope")
    again = book(tmp_path)
    assert again.names() == b.names()
    assert again.get("the drop").ws.tobytes() == ws(4).tobytes()
    # the version before the last change is still there
    prev = json.loads(Path(str(b.path) + ".prev").read_text())
    assert [e["name"] for e in prev["bookmarks"]] == ["1", "3", "2", "drop"]


def test_refuses_bad_input(tmp_path):
    b = book(tmp_path)
    bad_ws = ws()
    bad_ws[1, 1] = np.nan
    with pytest.raises(BookmarkError):
        b.save(bad_ws, {})
    with pytest.raises(BookmarkError):
        b.save(np.zeros((5, 8), np.float32), {})
    with pytest.raises(BookmarkError):
        b.save(ws(), {"Bad Name": 1.0})
    with pytest.raises(BookmarkError):
        b.save(ws(), {"x": float("inf")})
    with pytest.raises(BookmarkError):
        b.save(ws(), {"x": True})
    for name in ("", " ", "x" * 65, "a\nb"):
        with pytest.raises(BookmarkError):
            b.save(ws(), {}, name=name)
    assert len(b) == 0 and not b.path.exists()
    # a batch of one is taken; the stored copy is read-only and apart from the caller's
    src = ws(3)[None]
    b.save(src, {})
    src[0, 0, 0] = 42
    assert b.get("1").ws[0, 0] != 42
    with pytest.raises(ValueError):
        b.get("1").ws[0, 0] = 1
    with pytest.raises(ValueError):
        BookmarkBook(tmp_path, "../escape", SHAPE)


def test_damaged_entries_skipped(tmp_path, caplog):
    b = book(tmp_path)
    for i in range(6):
        b.save(ws(i), {"p": float(i)}, name=f"b{i}")
    doc = json.loads(b.path.read_text())
    marks = doc["bookmarks"]
    marks[0]["ws"]["shape"] = [8, 4]                          # another model's shape
    nan = ws(1)
    nan[2, 2] = np.nan
    marks[1]["ws"]["data"] = base64.b64encode(nan.astype("<f4").tobytes()).decode()  # non-finite
    marks[2]["params"] = {"Bad Name": 1}                      # bad param name
    marks[3]["name"] = "x" * 100                              # bad bookmark name
    marks[4]["ws"]["data"] = "A" * 10 ** 6                    # too large for its shape
    marks.append(dict(marks[5]))                              # a second of the same name
    marks.append(dict(marks[5], name="big", params={"p": 10 ** 400}))  # overflows a float
    marks.append(dict(marks[5], name="when", created=10 ** 400))
    marks.append("not a table")
    b.path.write_text(json.dumps(doc))
    caplog.set_level(logging.WARNING, logger="vj")
    again = book(tmp_path)
    assert again.names() == ["b5"]
    assert again.get("b5").ws.tobytes() == ws(5).tobytes()
    assert len(again.problems) == 9
    for name in ("b0", "b1", "b2", "b4", "big", "when"):
        assert any(f'"{name}"' in p and str(b.path) in p and "skipped" in p for p in again.problems), name
    assert any("bookmark 10" in p for p in again.problems)
    assert len([r for r in caplog.records if "skipped" in r.getMessage()]) == 9


def test_too_many_bookmarks(tmp_path):
    b = book(tmp_path)
    entry = b.document()
    b.save(ws(), {})
    one = b.document()["bookmarks"][0]
    entry["bookmarks"] = [dict(one, name=str(i)) for i in range(MAX_BOOKMARKS + 5)]
    b.path.write_text(json.dumps(entry))
    again = book(tmp_path)
    assert len(again) == MAX_BOOKMARKS
    assert any("5 bookmarks past" in p for p in again.problems)
    with pytest.raises(BookmarkError):
        again.save(ws(), {})
    again.save(ws(2), {}, name="7")  # replacing one is still fine


def test_damaged_file_uses_previous_copy(tmp_path):
    b = book(tmp_path)
    b.save(ws(1), {}, name="a")
    b.save(ws(2), {}, name="b")
    b.path.write_bytes(b.path.read_bytes()[:50])  # truncated
    again = book(tmp_path)
    assert again.names() == ["a"]
    assert "previous good copy" in again.problems[0]
    # the next change writes a good current file again; the damaged one is not kept as .prev
    again.save(ws(3), {}, name="c")
    assert book(tmp_path).names() == ["a", "c"]


def test_with_writer(tmp_path):
    w = StateWriter()
    try:
        b = book(tmp_path, writer=w)
        for i in range(20):
            b.save(ws(i), {"i": float(i)})
        b.delete("3")
        assert b.flush(5)
        again = book(tmp_path)
        assert again.names() == [str(i) for i in range(1, 21) if i != 3]
        assert again.get("20").ws.tobytes() == ws(19).tobytes()
    finally:
        w.close()


def test_unwritable_without_writer_keeps_and_retries(tmp_path, caplog):
    blocker = tmp_path / "bookmarks"
    blocker.write_text("a file where the folder goes")
    b = book(tmp_path)
    b.save(ws(1), {})
    b.save(ws(2), {})
    assert b.names() == ["1", "2"] and b.error and str(b.path) in b.error
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    assert not b.flush()
    blocker.unlink()
    assert b.flush()
    assert book(tmp_path).names() == ["1", "2"]


SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from engine.show.bookmarks import BookmarkBook
    from engine.show.state import StateWriter
    folder, mode = sys.argv[1], sys.argv[2]
    w = StateWriter() if mode == "writer" else None
    book = BookmarkBook(folder, "m-0000000000000000", (4, 8), writer=w)
    ws = np.arange(32, dtype=np.float32).reshape(4, 8) / 7
    book.save(ws, {"speed": 0.25}, name="kept")
    if w is not None:
        assert w.flush(10)
    print("saved", flush=True)
    while True:  # keeps writing: the kill lands at any point of a later save
        book.save(ws * 2, {"speed": 0.5})
        if w is not None:
            w.flush(10)
""")


@pytest.mark.parametrize("mode", ["sync", "writer"])
def test_sigkill_survival(tmp_path, mode):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path), mode], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        os.kill(proc.pid, signal.SIGKILL)
        assert line.strip() == "saved", proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    b = BookmarkBook(tmp_path, "m-0000000000000000", (4, 8))
    assert "kept" in b.names(), b.problems
    assert b.get("kept").ws.tobytes() == (np.arange(32, dtype=np.float32).reshape(4, 8) / 7).tobytes()
    assert b.get("kept").params == {"speed": 0.25}
    assert b.problems == []  # the current file itself is whole


# --- morphs
def test_ease():
    us = np.linspace(0, 1, 1001)
    vals = [ease(u) for u in us]
    assert vals[0] == 0.0 and vals[-1] == 1.0 and ease(-1) == 0.0 and ease(2) == 1.0
    assert all(b >= a for a, b in zip(vals, vals[1:]))
    assert ease(0.5) == 0.5


def test_morph_endpoints_and_monotonic():
    a, b = ws(1), ws(2)
    m = Morph(a, b, 2.0)
    assert m.at(0).tobytes() == a.tobytes() and m.at(-1).tobytes() == a.tobytes()
    assert m.at(2.0).tobytes() == b.tobytes() and m.at(5).tobytes() == b.tobytes()
    assert not m.done(1.9) and m.done(2.0)
    assert m.at(1.0).dtype == np.float32
    np.testing.assert_allclose(m.at(1.0), (a + b) / 2, rtol=1e-5, atol=1e-6)
    # every element moves one way only, from start to target
    path = np.stack([m.at(t) for t in np.linspace(0, 2, 201)])
    step = np.diff(path, axis=0) * np.sign(b - a)
    assert (step >= -1e-6).all()
    out = m.at(2.0)
    out[0, 0] = 99  # a copy: the target stays
    assert m.at(2.0)[0, 0] == b[0, 0]


def test_morph_zero_is_a_jump_and_checks():
    a, b = ws(1), ws(2)
    m = Morph(a, b, 0)
    assert m.done(0) and m.at(0).tobytes() == b.tobytes()
    with pytest.raises(ValueError):
        Morph(a, b, -1)
    with pytest.raises(ValueError):
        Morph(a, b, float("nan"))
    with pytest.raises(ValueError):
        Morph(a, np.zeros((2, 2), np.float32), 1)


def test_morph_torch():
    torch = pytest.importorskip("torch")
    a, b = torch.zeros(2, 3), torch.ones(2, 3)
    m = Morph(a, b, 1.0)
    assert torch.equal(m.at(0), a) and torch.equal(m.at(1), b)
    assert torch.allclose(m.at(0.5), torch.full((2, 3), 0.5))
