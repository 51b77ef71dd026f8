"""The latent toolkit (engine/latent/, issue 12): seed grids, splines, exact noise loops,
latent arithmetic, principal directions from real mapping networks with their disk cache,
style mixing and truncation, and the helpers on ``p`` through a real patch file."""
import os
import types

import numpy as np
import pytest

from engine.generators.base import ModelInfo
from engine.latent import arithmetic, directions, grid, paths, styles
from engine.latent.seeds import seed_z
from engine.latent.space import LatentSpace
from engine.patching.api import PatchContext
from engine.patching.loader import PatchHost
from engine.render.gpu import GeneratorRunner
from engine.signals.bus import SignalBus
from engine.signals.clock import VirtualClock


# ---------------------------------------------------------------- models (small, in memory, once)
@pytest.fixture(scope="module")
def dcgan_runner():
    from engine.generators.load import load_generator
    return GeneratorRunner(load_generator(None), device="cpu")


@pytest.fixture(scope="module")
def sg2_runner():
    from engine.generators import random_models as rm
    return GeneratorRunner(rm.build(rm.plan("stylegan2", 32, None, 8), seed=3), device="cpu")


def space_for(runner, tmp_path, samples=2000, key="model-a"):
    return LatentSpace(runner, key, cache_dir=tmp_path / "cache", samples=samples, batch=500)


# ---------------------------------------------------------------- seed grids
def test_grid_integer_positions_are_the_seeds_exactly():
    g = grid.SeedGrid([3, 14, 15, 92, 65, 35], cols=3, dim=64)
    assert g.shape == (2, 3)
    for i, s in enumerate([3, 14, 15, 92, 65, 35]):
        assert np.array_equal(g.at(i % 3, i // 3), seed_z(s, 64))
    # clamped outside the grid, wrapped with wrap=True
    assert np.array_equal(g.at(-5, 9), seed_z(92, 64))
    w = grid.SeedGrid([3, 14, 15, 92, 65, 35], cols=3, dim=64, wrap=True)
    assert np.array_equal(w.at(3, 2), seed_z(3, 64)) and np.array_equal(w.at(-1, 0), seed_z(15, 64))
    with pytest.raises(ValueError):
        grid.SeedGrid([1, 2, 3], cols=2, dim=8)


def test_grid_midpoint_is_symmetric_and_on_the_shell():
    a, b = seed_z(1, 128), seed_z(2, 128)
    ab = grid.SeedGrid([1, 2], cols=2, dim=128).at(0.5, 0)
    ba = grid.SeedGrid([2, 1], cols=2, dim=128).at(0.5, 0)
    assert np.allclose(ab, ba, atol=1e-6)
    assert np.allclose(ab / np.linalg.norm(ab), (a + b) / np.linalg.norm(a + b), atol=1e-6)
    assert np.isclose(np.linalg.norm(ab), 0.5 * (np.linalg.norm(a) + np.linalg.norm(b)), rtol=1e-5)
    # the centre of a 2x2 cell weighs all four corners equally, whichever way round
    g = grid.SeedGrid([1, 2, 3, 4], cols=2, dim=128)
    g2 = grid.SeedGrid([4, 3, 2, 1], cols=2, dim=128)
    assert np.allclose(g.at(0.5, 0.5), g2.at(0.5, 0.5), atol=1e-6)


@pytest.mark.parametrize("wrap", [False, True])
def test_grid_is_continuous(wrap):
    g = grid.SeedGrid(range(12), cols=4, dim=64, wrap=wrap)
    xs = np.linspace(0, 3.99 if wrap else 3, 801)
    prev = None
    for x in xs:
        z = g.at(x, 1.3 * x / 3)
        if prev is not None:
            assert np.linalg.norm(z - prev) < 0.2  # small steps in, small steps out
        prev = z
    eps = 1e-7  # across an integer position, from both sides, to the seed itself
    assert np.allclose(g.at(1 - eps, 1), g.at(1, 1), atol=1e-4) and np.allclose(g.at(1 + eps, 1), g.at(1, 1), atol=1e-4)
    if wrap:
        assert np.allclose(g.at(4 - eps, 0), g.at(0, 0), atol=1e-4)


# ---------------------------------------------------------------- splines and loops
def test_spline_passes_through_keys_and_is_continuous():
    keys = [seed_z(s, 32) for s in (5, 6, 7, 8)]
    for closed in (True, False):
        for i, k in enumerate(keys):
            assert np.array_equal(paths.spline(keys, i, closed=closed), k)
        ts = np.linspace(0, 3.999 if closed else 3, 2001)
        pts = np.stack([paths.spline(keys, t, closed=closed) for t in ts])
        steps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        assert steps.max() < 0.1
        # on the shell: the length stays between the keys' lengths
        lens = np.linalg.norm(pts, axis=1)
        kl = np.linalg.norm(np.stack(keys), axis=1)
        assert lens.min() >= kl.min() - 1e-3 and lens.max() <= kl.max() + 1e-3
    # closed: the seam from the last key back to the first is smooth too
    assert np.allclose(paths.spline(keys, 4 - 1e-7), keys[0], atol=1e-4)
    assert np.array_equal(paths.spline(keys, 4.0), keys[0])
    # without shell, w keys: a straight line of keys stays a straight line (Catmull-Rom reproduces it)
    line = [np.full(3, float(i), dtype=np.float32) for i in range(4)]
    assert np.allclose(paths.spline(line, 1.5, closed=False, shell=False), 1.5, atol=1e-6)


@pytest.mark.parametrize("harmonics", [1, 3])
def test_noise_loop_is_exactly_periodic(harmonics):
    z0 = paths.noise_loop(7, 0.0, 512, harmonics=harmonics)
    for ph in (1.0, 2.0, -1.0, 5.0, -0.0, -1e-300):
        assert np.array_equal(paths.noise_loop(7, ph, 512, harmonics=harmonics), z0)
    assert not np.array_equal(paths.noise_loop(7, 0.25, 512, harmonics=harmonics), z0)
    near = paths.noise_loop(7, 1 - 1e-9, 512, harmonics=harmonics)
    assert np.allclose(near, z0, atol=1e-5)  # continuous at the seam
    # every point is standard normal: about sqrt(dim) long everywhere on the loop
    lens = [np.linalg.norm(paths.noise_loop(7, t, 512, harmonics=harmonics)) for t in np.linspace(0, 1, 50)]
    assert 19 < min(lens) and max(lens) < 26
    if harmonics == 1:
        assert np.array_equal(z0, seed_z(7, 512))  # a plain circle through p.seed(7)
    a, b = seed_z(1, 16), seed_z(2, 16)
    assert np.array_equal(paths.circle(a, b, 0.0), paths.circle(a, b, 1.0))
    assert np.allclose(paths.circle(a, b, 0.25), b, atol=1e-6)


class Snap(types.SimpleNamespace):
    """Snapshot-like: what PatchContext._begin reads."""


def ctx_at(beat, beats_per_bar=3, time=0.0, space=None, info=None):
    info = info or ModelInfo(name="t", architecture="dcgan", resolution=64, z_dim=16, w_dim=16, num_ws=1)
    p = PatchContext(info, space=space)
    p._begin(Snap(dt=0.0, time=time, beat=beat, bpm=120.0, beats_per_bar=beats_per_bar))
    return p


def test_loop_bars_lock_a_lap_to_the_bar_clock():
    keys = [seed_z(s, 16) for s in (1, 2, 3)]
    start = ctx_at(0.0).loop(keys, bars=2)
    assert np.array_equal(ctx_at(6.0).loop(keys, bars=2), start)      # 2 bars of 3 beats: one lap
    assert np.array_equal(ctx_at(12.0).loop(keys, bars=2), start)
    assert np.array_equal(ctx_at(2.0).loop(keys, bars=2), ctx_at(2.0).loop(keys, beats=6))
    assert not np.array_equal(ctx_at(2.0, beats_per_bar=4).loop(keys, bars=2), ctx_at(2.0).loop(keys, bars=2))
    with pytest.raises(ValueError):
        ctx_at(0.0).loop(keys, bars=2, beats=4)
    n0 = ctx_at(0.0).noise_loop(9, bars=4)
    assert np.array_equal(ctx_at(12.0).noise_loop(9, bars=4), n0)
    assert np.array_equal(ctx_at(24.0).noise_loop(9, bars=4), n0)
    assert np.array_equal(ctx_at(5.0).noise_loop(9, 0.0), n0)        # a given phase ignores the clock
    assert not np.array_equal(ctx_at(5.0).noise_loop(9, bars=4), n0)
    assert np.array_equal(ctx_at(0.0, time=10.0).noise_loop(9, seconds=5), n0)


# ---------------------------------------------------------------- arithmetic and styles
def test_combine():
    a, b, c = (seed_z(s, 8) for s in (1, 2, 3))
    assert np.allclose(arithmetic.combine(a, plus=[b], minus=[c]), a + b - c, atol=1e-6)
    assert np.allclose(arithmetic.combine(a, plus=b, minus=c, scale=0.5), a + 0.5 * (b - c), atol=1e-6)
    assert np.array_equal(arithmetic.combine(a), a)
    ws = np.stack([a, b, c])
    out = arithmetic.combine(ws, plus=[a])          # a w edit applies to every layer of a ws
    assert out.shape == (3, 8) and np.allclose(out, ws + a, atol=1e-6)
    assert np.allclose(arithmetic.combine(ws, plus=ws), 2 * ws)
    with pytest.raises(ValueError):
        arithmetic.combine(a, plus=[ws])
    assert np.allclose(arithmetic.difference(a, b), a - b)


def test_style_mixing_by_layers_and_crossover():
    a = np.zeros((8, 4), dtype=np.float32)
    b = np.ones((8, 4), dtype=np.float32)
    m = styles.mix(a, b, crossover=5)
    assert np.array_equal(m[:5], a[:5]) and np.array_equal(m[5:], b[5:])
    m = styles.mix(a, b, layers=[0, 2, -1])
    assert m[:, 0].tolist() == [1, 0, 1, 0, 0, 0, 0, 1]
    assert np.array_equal(styles.mix(a, b, layers=slice(2, 4)), styles.mix(a, b, layers=range(2, 4)))
    half = styles.mix(a, b, layers=range(8), amount=0.25)
    assert np.allclose(half, 0.25)
    w = np.full(4, 3.0, dtype=np.float32)           # a single w stands for all layers
    assert styles.mix(w, b, crossover=7).shape == (8, 4)
    for bad in (dict(layers=3), dict(), dict(layers=[8]), dict(layers=[0], crossover=2)):
        with pytest.raises(ValueError):
            styles.mix(a, b, **bad)
    assert np.all(a == 0) and np.all(b == 1)  # inputs untouched


def test_truncation_toward_the_mean_and_toward_a_target():
    rng = np.random.default_rng(0)
    ws = rng.standard_normal((6, 16)).astype(np.float32)
    avg = rng.standard_normal(16).astype(np.float32)
    target = rng.standard_normal((6, 16)).astype(np.float32)
    assert np.array_equal(styles.truncate(ws, 1.0, avg), ws)
    assert np.array_equal(styles.truncate(ws, 0.0, avg), np.broadcast_to(avg, ws.shape))
    assert np.array_equal(styles.truncate(ws, 0.0, target), target)
    assert np.allclose(styles.truncate(ws, 0.5, target), (ws + target) / 2, atol=1e-6)
    part = styles.truncate(ws, 0.0, target, layers=slice(0, 2))
    assert np.array_equal(part[:2], target[:2]) and np.array_equal(part[2:], ws[2:])


# ---------------------------------------------------------------- directions
def check_principal(d, v, w_dim):
    assert d.shape[1] == w_dim and d.dtype == np.float32
    assert np.abs(d @ d.T - np.eye(len(d))).max() < 1e-4
    assert np.all(np.diff(v) <= 1e-6 * v[0]) and v[0] > v[-1] >= 0


def test_pca_finds_the_stretched_axis():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4000, 6)) * np.array([1, 1, 5, 1, 2, 1])
    p = directions.pca(x, 3)
    assert abs(p.directions[0, 2]) > 0.99 and abs(p.directions[1, 4]) > 0.99
    assert np.isclose(p.variances[0], 25, rtol=0.1)
    r = directions.random_directions(5, 32, seed=4)
    assert np.abs(r @ r.T - np.eye(5)).max() < 1e-5
    assert np.array_equal(r, directions.random_directions(5, 32, seed=4))
    assert not np.allclose(r, directions.random_directions(5, 32, seed=5))


@pytest.mark.parametrize("which", ["dcgan", "sg2"])
def test_principal_directions_from_the_models_mapping(tmp_path, which, request):
    runner = request.getfixturevalue(f"{which}_runner")
    space = space_for(runner, tmp_path)
    d, v = space.directions(10), space.variances(10)
    check_principal(d, v, runner.info.w_dim)
    if which == "dcgan":
        assert np.allclose(space.w_avg, 0) and np.allclose(space.w(seed_z(1, 100)), seed_z(1, 100))  # identity mapping
    else:
        assert np.allclose(space.w_avg, runner.generator.average_style().numpy())
        ws = space.ws(seed_z(1, 512))
        assert ws.shape == (8, 512) and np.allclose(ws, ws[0])
        # the spread of real styles is far from isotropic: the first component dominates the tenth
        assert v[0] > 2 * v[9]
    files = list((tmp_path / "cache").glob("pca-*.npz"))
    assert len(files) == 1 and not [f for f in os.listdir(tmp_path / "cache") if f.endswith(".tmp")]


def test_direction_cache_round_trips_and_heals(tmp_path, sg2_runner, monkeypatch):
    calls = []
    first = space_for(sg2_runner, tmp_path, samples=600)
    d0 = first.directions()
    (path,) = (tmp_path / "cache").glob("pca-*.npz")

    def no_mapping(*a, **k):
        calls.append(1)
        raise AssertionError("the cache should have answered")
    again = space_for(sg2_runner, tmp_path, samples=600)
    monkeypatch.setattr(again, "_map_w", no_mapping)
    assert np.array_equal(again.directions(), d0) and not calls
    # another key (another model) is never served this model's directions
    other = space_for(sg2_runner, tmp_path, samples=600, key="model-b")
    monkeypatch.setattr(other, "_map_w", no_mapping)
    with pytest.raises(AssertionError):
        other.directions()
    # damaged files: truncated, garbage, NaN inside, wrong shapes: recomputed and rewritten
    good = path.read_bytes()
    bad_nan = dict(np.load(path))
    bad_nan["directions"] = bad_nan["directions"].copy()
    bad_nan["directions"][0, 0] = np.nan
    bad_shape = dict(np.load(path))
    bad_shape["mean"] = bad_shape["mean"][:3]
    for damage in (good[: len(good) // 2], b"not a zip at all", bad_nan, bad_shape):
        if isinstance(damage, dict):
            with open(path, "wb") as f:
                np.savez(f, **damage)
        else:
            path.write_bytes(damage)
        fresh = space_for(sg2_runner, tmp_path, samples=600)
        assert np.allclose(fresh.directions(), d0, atol=1e-5)
        healed = directions._valid(directions._load(path), "model-a", 600, 0)
        assert healed is not None and np.allclose(healed.directions, d0, atol=1e-5)
    # a pickle in the cache is never loaded
    np.save(path.with_suffix(".x"), np.array([object()], dtype=object), allow_pickle=True)
    os.replace(path.with_suffix(".x.npy"), path)
    assert np.allclose(space_for(sg2_runner, tmp_path, samples=600).directions(), d0, atol=1e-5)


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("VJ_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert directions.default_cache_dir() == tmp_path / "xdg" / "vj" / "directions"
    monkeypatch.setenv("VJ_CACHE", str(tmp_path / "vj"))
    assert directions.default_cache_dir() == tmp_path / "vj" / "directions"


def test_named_directions(tmp_path, dcgan_runner):
    space = space_for(dcgan_runner, tmp_path)
    v = seed_z(3, 100)
    space.save_direction("smile: big", v)
    assert np.array_equal(space.direction_named("smile: big"), v)
    assert space.named_directions() == ["smile: big"]
    for bad in ("", "a/b", "..", "x" * 65, "tab\there", "a\\b", 7):
        with pytest.raises(ValueError):
            space.save_direction(bad, v)
    with pytest.raises(ValueError):
        space.save_direction("short", v[:5])
    with pytest.raises(KeyError):
        space.direction_named("nothing")
    # another model does not see it
    with pytest.raises(KeyError):
        space_for(dcgan_runner, tmp_path, key="model-b").direction_named("smile: big")


def test_helpers_without_a_space_say_why():
    p = ctx_at(0.0)
    for call in (lambda: p.w(p.seed(1)), lambda: p.direction(0), lambda: p.truncate(p.seed(1), 0.5),
                 lambda: p.w_avg()):
        with pytest.raises(ValueError, match="latent space"):
            call()
    t = p.seed(2)
    assert np.array_equal(p.truncate(p.seed(1), 0.0, toward=t), t)  # an explicit centre needs no model


# ---------------------------------------------------------------- through a real patch
PATCH = '''
def setup(p):
    p.board = p.grid([1, 2, 3, 4, 5, 6], cols=3)
    p.keys = p.seeds([7, 8, 9])
    p.push = p.direction(0)                     # computed (or loaded) once, here
    p.home = p.w(p.seed(42))
    p.save_direction("push", p.push)

def frame(p, s):
    z = p.grid_at(p.board, 2.0 * (p.beat % 1), 0.5)
    z = p.slerp(z, p.spline(p.keys, p.beat / 2), 0.3)
    drift = p.noise_loop(11, bars=2)
    w = p.combine(p.w(z), plus=[p.direction_named("push") * 2.0], minus=[0.1 * p.w(drift)])
    ws = p.mix_styles(p.ws(p.loop(p.keys, bars=1)), w, crossover=1)
    ws = p.truncate(ws, 0.7, toward=p.home)
    ws = p.truncate(ws, 0.9)
    return p.controls(ws=ws)
'''


def test_a_patch_uses_the_toolkit(tmp_path, dcgan_runner):
    f = tmp_path / "toolkit.py"
    f.write_text(PATCH)
    space = space_for(dcgan_runner, tmp_path)
    messages = []
    host = PatchHost(f, dcgan_runner.info, on_message=lambda m, lvl: messages.append(m), space=space)
    assert host.load(), messages
    bus, clock = SignalBus(), VirtualClock(30)
    outs = []
    for _ in range(5):
        clock.tick()
        c = host.frame(bus.snapshot(**clock.fields()))
        outs.append(np.asarray(c.ws))
    assert host.errors == 0, messages
    assert host.active.ctx.space is space
    assert all(o.shape == (1, 100) and np.all(np.isfinite(o)) for o in outs)
    assert not np.array_equal(outs[0], outs[-1])
    img = dcgan_runner.image(dcgan_runner.styles(ws=outs[-1]))
    assert img.shape == (64, 64, 3)
    # a live edit keeps the space (an engine attribute, shared, not patch state)
    old = host.active
    f.write_text(PATCH.replace("0.7", "0.6"))
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert host.load()
    clock.tick()
    host.frame(bus.snapshot(**clock.fields()))
    assert host.active is not old and host.active.ctx.space is space and host.errors == 0, messages


def test_the_docs_example_runs_on_a_stylegan2(tmp_path, sg2_runner):
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "patches.md").read_text()
    start = doc.index("# patches/grid_push.py")
    source = doc[start:doc.index("```", start)]
    f = tmp_path / "grid_push.py"
    f.write_text(source)
    messages = []
    host = PatchHost(f, sg2_runner.info, on_message=lambda m, lvl: messages.append(m),
                     space=space_for(sg2_runner, tmp_path, samples=1000))
    assert host.load(), messages
    bus, clock = SignalBus(), VirtualClock(30)
    for i in range(3):
        clock.tick()
        bus.set("audio.low", 0.3 * i)
        c = host.frame(bus.snapshot(**clock.fields()))
    assert host.errors == 0, messages
    assert np.asarray(c.ws).shape == (8, 512) and np.all(np.isfinite(c.ws))
