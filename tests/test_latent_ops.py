"""Latent paths and patch ops."""
import math

import numpy as np
import pytest

from engine.latent.paths import loop, slerp, walk
from engine.latent.seeds import seed_z
from engine.patching import ops


def test_seeds_are_stable():
    assert np.array_equal(seed_z(42, 100), seed_z(42, 100))
    assert not np.allclose(seed_z(42, 100), seed_z(43, 100))
    assert seed_z(1, 100).dtype == np.float32


def test_slerp_endpoints_and_norm():
    a, b = seed_z(1, 512), seed_z(2, 512)
    assert np.allclose(slerp(a, b, 0), a, atol=1e-5) and np.allclose(slerp(a, b, 1), b, atol=1e-5)
    mid = slerp(a, b, 0.5)
    # stays on the shell, where a linear blend would sag towards the origin
    assert abs(np.linalg.norm(mid) - (np.linalg.norm(a) + np.linalg.norm(b)) / 2) < 0.5
    assert np.linalg.norm((a + b) / 2) < 0.8 * np.linalg.norm(mid)


def test_loop_is_closed_and_continuous():
    keys = [seed_z(i, 64) for i in range(4)]
    assert np.allclose(loop(keys, 0.0), keys[0], atol=1e-5)
    assert np.allclose(loop(keys, 0.25), keys[1], atol=1e-5)
    assert np.allclose(loop(keys, 1.0), keys[0], atol=1e-5)
    steps = [np.linalg.norm(loop(keys, t + 1e-3) - loop(keys, t)) for t in np.linspace(0, 1, 400)]
    assert max(steps) < 0.2
    assert np.allclose(walk(keys, 10, closed=False), keys[-1])


class FT(ops.FrameTime):
    pass


def test_smooth_and_follow():
    ft = FT()
    ft.dt = 0.1
    sm = ops.Smooth(ft, tau=0.1)
    sm(0.0)
    assert sm(1.0) == pytest.approx(1 - math.exp(-1))
    ar = ops.AttackRelease(ft, attack=0.0, release=1.0)
    assert ar(1.0) == 1.0  # instant attack
    assert ar(0.0) == pytest.approx(math.exp(-0.1))  # slow release


@pytest.mark.parametrize("shape, at_quarter", [("sine", 0.5), ("saw", 0.25), ("square", 1.0), ("triangle", 0.5)])
def test_lfo_shapes_locked_to_beats(shape, at_quarter):
    ft = FT()
    lfo = ops.LFO(ft, shape, beats=4)
    ft.beat = 1.0
    assert lfo() == pytest.approx(at_quarter)


def test_random_lfo_is_smooth_and_seeded():
    ft = FT()
    a, b = ops.LFO(ft, "random", seconds=1, seed=3), ops.LFO(ft, "random", seconds=1, seed=3)
    vals = []
    for i in range(300):
        ft.time = i / 100
        vals.append(a())
        assert a() == b()
    assert 0 <= min(vals) and max(vals) <= 1
    assert max(abs(np.diff(vals))) < 0.05


def test_lfo_rejects_bad_arguments():
    with pytest.raises(ValueError):
        ops.LFO(FT(), "wobble")
    with pytest.raises(ValueError):
        ops.LFO(FT(), beats=1, seconds=1)


def test_remap_and_curves():
    assert ops.remap(5, 0, 10, 100, 200) == 150
    assert ops.remap(20, 0, 10, 0, 1) == 1.0  # clamped
    assert ops.remap(0.5, shape="exp") == 0.25
    assert ops.curve(0.25, 0.5) == pytest.approx(0.5)
    assert np.allclose(ops.remap(np.array([0, 1]), 0, 1, -1, 1), [-1, 1])
