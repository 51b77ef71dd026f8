"""tools/beat_compare.py: a difference between two corpus runs, and whether it is noise."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(path: Path, scores: dict[str, float]) -> Path:
    items = [{"id": i, "source": i.split("_")[0], "trackers": {"live": {"f": f}}} for i, f in scores.items()]
    path.write_text(json.dumps({"items": items}))
    return path


def _compare(a: Path, b: Path) -> str:
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "beat_compare.py"), str(a), str(b)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _row(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(name))


def test_a_lift_on_every_song_is_sure(tmp_path):
    before = {f"freedoom_s{k}@{font}": 0.6 + 0.01 * k for k in range(20) for font in ("A", "B")}
    after = {i: f + 0.05 for i, f in before.items()}
    out = _compare(_run(tmp_path / "a.json", before), _run(tmp_path / "b.json", after))
    row = _row(out, "all")
    assert "+0.050" in row and row.endswith("*")
    assert " 40 " in row and " 20 " in row                  # 40 items, 20 songs


def test_one_song_moving_many_excerpts_is_not_sure(tmp_path):
    """Thirty excerpts of one song all gaining, against nine songs that do not move: one song
    is one draw, however many excerpts it has."""
    before = {f"lmms_big@{s}s": 0.2 for s in range(30)}
    before.update({f"lmms_s{k}@15s": 0.8 for k in range(9)})
    after = dict(before)
    after.update({f"lmms_big@{s}s": 0.9 for s in range(30)})
    out = _compare(_run(tmp_path / "a.json", before), _run(tmp_path / "b.json", after))
    assert not _row(out, "all").endswith("*")


def test_runs_that_share_no_item_are_refused(tmp_path):
    a = _run(tmp_path / "a.json", {"hard_x@A": 1.0})
    b = _run(tmp_path / "b.json", {"hard_y@A": 1.0})
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "beat_compare.py"), str(a), str(b)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "no item" in r.stderr


def test_a_file_that_is_not_a_run_is_named(tmp_path):
    good = _run(tmp_path / "a.json", {"hard_x@A": 1.0})
    for text in ("{not json", '{"items": [1, 2]}', '[]'):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        r = subprocess.run([sys.executable, str(ROOT / "tools" / "beat_compare.py"), str(good), str(bad)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "bad.json" in r.stderr and "Traceback" not in r.stderr
