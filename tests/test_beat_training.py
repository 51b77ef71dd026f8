"""tools/train_beat_net.py: what it does to the training material keeps the beats."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import beat_material as bm

ROOT = Path(__file__).resolve().parent.parent


def _tool():
    spec = importlib.util.spec_from_file_location("train_beat_net", ROOT / "tools" / "train_beat_net.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sounding(mid):
    return [(m.channel, m.velocity) for m in mid if m.type == "note_on" and m.velocity > 0]


def test_a_remix_changes_the_balance_and_keeps_the_beats():
    tool = _tool()
    mid, beats, downs = bm.hard_case("rock", 120.0, 1)
    grid = bm.beat_grid(mid)
    before = _sounding(mid)
    drums_muted = 0
    for seed in range(40):
        mix = tool._remixed(mid, seed)
        assert abs(mix.length - mid.length) < 1e-9
        got = bm.beat_grid(mix)
        assert (got[0] == grid[0]).all() and (got[1] == grid[1]).all() and got[2] == grid[2]
        after = _sounding(mix)
        assert len(after) <= len(before) and max(v for _, v in after) <= max(v for _, v in before)
        drums_muted += not any(ch == 9 for ch, _ in after)
    assert 0 < drums_muted < 40            # sometimes the band plays without its drums
