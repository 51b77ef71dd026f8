"""Transitions between scenes: wipes and morphs to the frame, a cue during a transition, a
morph between two models, and sets whose models do not fit."""
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import run_vj
from engine.patching.api import Controls
from engine.render.stages import GenerateStage, Layer
from engine.session import Options, Session
from engine.show.scenes import SetStage, Slot
from engine.show.sets import SetList
from engine.signals.bus import SignalBus

STILL = "def frame(p, s):\n    return p.controls(z=p.seed(1))\n"


def write_set(tmp_path, body: str):
    (tmp_path / "a.py").write_text(STILL)
    f = tmp_path / "set.toml"
    f.write_text(body)
    return SetList(f)


class Host:
    def __init__(self, z):
        self.z = z

    def frame(self, snap):
        return Controls(z=np.full(4, self.z, np.float32), post={"hue": self.z})


def stage_for(sl, runners=None):
    n = len(sl.scenes)
    return SetStage(sl, [Host(float(i)) for i in range(n)], runners or [object()] * n,
                    [Slot("A", None), Slot("B", None)], lambda *a, **k: False)


def step(stage, bus, k):
    f = SimpleNamespace(snap=bus.snapshot(time=k / 30, dt=1 / 30, beat=k / 15, bpm=120.0, frame=k),
                        status={}, layers=None, mix=None, controls=None)
    stage.run(f)
    return f


def test_a_morph_blends_the_latents_over_its_frames_in_one_slot(tmp_path):
    sl = write_set(tmp_path, 'transition = { kind = "morph", seconds = 0.2 }\n'
                             '[[scene]]\npatch = "a.py"\n[[scene]]\npatch = "a.py"\n')
    stage, bus = stage_for(sl), SignalBus()
    seen = []
    for k in range(12):
        if k == 3:
            bus.emit("cue.next")
        f = step(stage, bus, k)
        (layer,) = f.layers
        assert layer.slot.chain == "A" and f.mix is None
        seen.append(None if layer.toward is None else round(layer.toward[1], 6))
        if layer.toward is not None:
            assert layer.controls.z[0] == 0.0 and layer.toward[0].z[0] == 1.0
            k_ = layer.toward[1]
            assert layer.post["hue"] == pytest.approx(k_)   # shader settings travel too
    # 0.2 s at 30 fps = 6 frames, the cued one first: 1/6 .. 6/6, then the new scene alone
    assert seen == [None] * 3 + [round(i / 6, 6) for i in range(1, 7)] + [None] * 3
    assert f.layers[0].controls.z[0] == 1.0


def test_a_morph_between_two_models_is_a_crossfade(tmp_path):
    sl = write_set(tmp_path, 'transition = { kind = "morph", seconds = 0.1 }\n'
                             '[[scene]]\npatch = "a.py"\n[[scene]]\npatch = "a.py"\n')
    stage, bus = stage_for(sl, runners=[object(), object()]), SignalBus()
    bus.emit("cue.next")
    f = step(stage, bus, 0)
    assert len(f.layers) == 2 and f.mix == (1 / 3, "crossfade")
    assert stage.cues == [(0, 1, "crossfade over 0.1 s")]


def test_a_cue_during_a_transition_finishes_it_and_starts_the_next(tmp_path):
    sl = write_set(tmp_path, 'transition = { kind = "crossfade", seconds = 1 }\n'
                             '[[scene]]\npatch = "a.py"\n[[scene]]\npatch = "a.py"\n[[scene]]\npatch = "a.py"\n')
    stage, bus = stage_for(sl), SignalBus()
    bus.emit("cue.next")
    step(stage, bus, 0)
    step(stage, bus, 1)
    bus.emit("cue.next")
    f = step(stage, bus, 2)
    # scene 2 is on screen now (its slot was handed over), fading into scene 3
    assert [lay.controls.z[0] for lay in f.layers] == [1.0, 2.0] and f.mix[0] == pytest.approx(1 / 30)
    assert stage.live == 1 and stage.transition.target == 2


def test_the_generator_blends_styles_per_layer_for_a_morph():
    from engine.generators.load import load_generator
    from engine.render.gpu import GeneratorRunner
    runner = GeneratorRunner(load_generator(None), device="cpu")
    a, b = Controls(z=np.full(runner.info.z_dim, 0.3, np.float32)), Controls(z=np.full(runner.info.z_dim, -0.5, np.float32))
    stage = GenerateStage(runner, report=print, clear=lambda m: None)
    f = SimpleNamespace(layers=[Layer(runner, a, toward=(b, 0.25))], controls=a, stamps={}, gen_ms=0.0)
    stage.run(f)
    wa, wb = runner.styles(z=a.z), runner.styles(z=b.z)
    expect = runner.frame(wa + (wb - wa) * 0.25)
    assert np.array_equal(f.images[0][1].numpy(), expect.numpy())


def test_a_wipe_uncovers_the_new_scene_from_the_left_over_its_frames(tmp_path):
    sl = write_set(tmp_path, 'transition = { kind = "wipe", seconds = 0.2 }\n'
                             '[[scene]]\npatch = "a.py"\npost = { brightness = -1, fit = 1 }\n'
                             '[[scene]]\npatch = "a.py"\npost = { brightness = 1, fit = 1 }\n')
    o = Options(setlist=sl, patch=sl.scene.patch, size=(64, 16), fps=30, live=False)
    lit = []
    with Session(o) as s:
        for k in range(12):
            if k == 3:
                s.bus.emit("cue.next")
            f = s.engine.render_frame()
            if f is not None:
                row = np.frombuffer(f.texture.read(), np.uint8).reshape(16, 64, 4)[8, :, 0]
                lit.append(row > 127)
        lit.append(None)
    # frames 0-2 dark; 3..8 the edge moves right, a lit part on the left; from 8 all lit
    assert not any(lit[k].any() for k in range(3))
    widths = [int(lit[k].sum()) for k in range(3, 9)]
    assert widths == sorted(widths) and 0 < widths[0] < widths[-2] < 64 and widths[-1] == 64
    for k in range(3, 8):
        w = int(lit[k].sum())
        assert lit[k][:w].all() and not lit[k][w:].any()   # lit from the left edge
    assert lit[10].all()


def test_a_set_of_two_models_that_do_not_fit_is_refused_with_both_figures(tmp_path):
    model = tmp_path / "sg2.safetensors"
    run_vj("models", "random", "stylegan2", "--resolution", "32", "--channel-divisor", "8", "--out", model)
    (tmp_path / "a.py").write_text(STILL)
    f = tmp_path / "two.toml"
    f.write_text('memory_limit = 20\n[[scene]]\npatch = "a.py"\n'
                 f'[[scene]]\npatch = "a.py"\nmodel = "{model}"\n')
    proc = run_vj("run", f, "--headless", "--frames", "3", "--no-osc", "--no-midi", check=False)
    assert proc.returncode != 0
    err = proc.stderr
    assert "2 models need about" in err and "digiface64" in err and "sg2" in err and "memory_limit" in err, err[-2000:]
    # with room for both, the same set plays
    f.write_text(f.read_text().replace("memory_limit = 20", "memory_limit = 4096"))
    ok = run_vj("run", f, "--headless", "--frames", "3", "--no-osc", "--no-midi")
    assert "models of the set" in ok.stderr
