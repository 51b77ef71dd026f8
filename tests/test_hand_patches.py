"""The hand patches (xoromancy, hands_theremin) driven through the real patch API: hand frames
go through a real HandTracker onto a real SignalBus, and each patch frame takes a snapshot,
as tests/test_biggan.py's ``_patch_frames`` does."""
from pathlib import Path

import numpy as np
import pytest

from engine.generators.base import ModelInfo
from engine.patching.loader import PatchHost
from engine.signals.bus import SignalBus
from engine.signals.clock import VirtualClock
from engine.signals.hand_record import read_hand_file
from engine.signals.hands import HandTracker

ROOT = Path(__file__).resolve().parent.parent
DCGAN = ModelInfo(name="d", architecture="dcgan", resolution=64, z_dim=8, w_dim=8, num_ws=1)
BIGGAN = ModelInfo(name="b", architecture="biggan", resolution=128, z_dim=8, w_dim=8, num_ws=1, c_dim=1000)
T0 = 100.0     # hand-frame times are offset onto this clock
FPS = 30


def sample_frames():
    for where in (ROOT / "tests" / "data", ROOT / "patches"):
        path = where / "hands_sample.vjhands.gz"
        if path.exists():
            return read_hand_file(path).frames
    pytest.skip("no hands_sample.vjhands.gz")


def hand(y=200.0, x=0.0, z=0.0, grab=0.0, pinch=0.0, side="right"):
    """One hand, palm in mm (the default box: centre (0, 200, 0), 235 x 235 x 147 mm)."""
    return {"id": 1 if side == "right" else 2, "type": side, "palm": [x, y, z],
            "grab": grab, "pinch": pinch}


def run(patch, info, frames, n, hold=None):
    """Play ``frames`` (hand frames, ``t`` from 0) for ``n`` patch frames at 30 fps; returns
    (controls per frame, the patch's messages, the host)."""
    messages = []
    host = PatchHost(ROOT / "patches" / patch, info, on_message=lambda m, lvl: messages.append(m))
    host.load()
    bus, clock = SignalBus(), VirtualClock(FPS)
    tracker = HandTracker(bus)
    out, i = [], 0
    for k in range(n):
        now = T0 + k / FPS
        while i < len(frames) and frames[i]["t"] + T0 <= now:
            tracker.push(dict(frames[i], t=frames[i]["t"] + T0))
            i += 1
        tracker.tick(now)
        clock.tick()
        out.append(host.frame(bus.snapshot(**clock.fields())))
    assert not any("error" in m.lower() or "traceback" in m.lower() for m in messages), messages
    return out, messages, host


def steps(controls, a, b):
    """Latent change per frame over frames a..b (seconds in, 30 fps)."""
    z = np.array([np.asarray(c.z, float) for c in controls[int(a * FPS):int(b * FPS)]])
    return np.linalg.norm(np.diff(z, axis=0), axis=1)


def test_xoromancy_follows_the_recorded_hand_and_never_jumps():
    # the sample: enter ~0.3 s, rest to 4 s, figure-eight with grab and pinch 4..8 s,
    # rest to 11 s, a fast swipe out to the right, gone from ~11.5 s; then 3.5 s with no hands
    out, _, _ = run("xoromancy.py", DCGAN, sample_frames(), 15 * FPS)
    moving, resting = steps(out, 4.2, 7.8), steps(out, 9.5, 11.2)
    assert moving.mean() > 8 * resting.mean()
    # continuity: entering and leaving are no bigger steps than the gesture itself
    assert steps(out, 0.0, 2.0).max() < moving.max()
    assert steps(out, 11.5, 15.0).max() < moving.max()
    assert np.all(np.isfinite([np.asarray(c.z) for c in out]))


def test_grab_lowers_psi():
    frames = [{"t": k / 60, "hands": [hand(grab=1.0 if k >= 120 else 0.0)]} for k in range(240)]
    out, _, _ = run("xoromancy.py", DCGAN, frames, 4 * FPS)
    assert out[int(1.9 * FPS)].psi > 0.6 and out[-1].psi < 0.15


def test_pinch_drops_keyframes_and_keeps_a_bounded_number():
    frames, t = [], 0.0
    for n in range(12):                          # 12 pinches, each at another height
        for pinch in (0.0,) * 10 + (1.0,) * 10:
            frames.append({"t": t, "hands": [hand(y=100 + 15 * n, pinch=pinch)]})
            t += 1 / 60
    _, _, host = run("xoromancy.py", DCGAN, frames[:60], 2 * FPS)
    assert len(host.active.ctx.dropped["right"]) == 3       # one per pinch
    _, _, host = run("xoromancy.py", DCGAN, frames, int(t * FPS) + 2)
    p = host.active.ctx
    assert len(p.dropped["right"]) == 8 and not p.dropped["left"]     # bounded: oldest replaced
    assert p.dropped["right"][-1][1] > p.dropped["right"][0][1]        # the newest is the highest


def test_no_hands_idles_and_keeps_moving():
    out, messages, _ = run("xoromancy.py", DCGAN, [], 20 * FPS)
    assert np.linalg.norm(np.asarray(out[0].z) - np.asarray(out[-1].z)) > 0.1
    assert steps(out, 0, 20).max() < 0.2 and steps(out, 10, 20).min() > 0
    assert any("no classes" in m for m in messages)


def test_class_follows_hand_height_on_a_class_model():
    frames = [{"t": k / 60, "hands": [hand(y=100.0 if k < 240 else 300.0)]} for k in range(480)]
    out, _, _ = run("xoromancy.py", BIGGAN, frames, 8 * FPS)
    low, high = out[int(3.9 * FPS)].c, out[-1].c
    assert low.shape == (1000,) and abs(low.sum() - 1) < 1e-5 and abs(high.sum() - 1) < 1e-5
    assert np.argmax(low) != np.argmax(high)


def test_theremin_plays_with_palm_height():
    frames = [{"t": k / 60, "hands": [hand(y=120.0 + 0.5 * k, x=-60.0, grab=0.5)]} for k in range(240)]
    out, _, _ = run("hands_theremin.py", DCGAN, frames, 4 * FPS)
    assert np.linalg.norm(np.asarray(out[FPS].z) - np.asarray(out[-1].z)) > 0.5
    assert 0.4 < out[-1].psi < 0.6
