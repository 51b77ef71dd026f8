"""Messages a patch writer can act on: a bad choice names the nearest one, a signal name nothing
publishes warns once with the nearest names, a scene change says the scene, and `vj render`
checks the patch before it analyses the song."""
import logging
import os

import numpy as np
import pytest

from conftest import run_vj, write_wav
from engine.generators.base import ModelInfo
from engine.patching.api import PatchContext
from engine.patching.loader import PatchHost
from engine.signals.bus import SignalBus

INFO = ModelInfo("test", "dcgan", 64, z_dim=16, w_dim=16, num_ws=1)


def host_of(path, text):
    path.write_text(text)
    h = PatchHost(path, INFO)
    assert h.load()
    return h


def save(path, text, stamp):
    path.write_text(text)
    os.utime(path, (stamp, stamp))   # a new stamp, whatever the file system's clock resolution


@pytest.mark.parametrize("call, words", [
    (lambda p, k: p.walk(k, 0.5, ease="smoth"), "p.walk: ease='smoth' is not a choice; did you mean 'smooth'? "
                                                "(choices: 'linear', 'smooth', 'cosine')"),
    (lambda p, k: p.loop(k, ease="cosin"), "ease='cosin' is not a choice; did you mean 'cosine'?"),
    (lambda p, k: p.lfo("sin", beats=1), "p.lfo: shape='sin' is not a choice; did you mean 'sine'? "
                                         "(choices: 'sine', 'saw', 'square', 'triangle', 'random')"),
    (lambda p, k: p.curve(0.5, "smoth"), "p.curve: shape='smoth' is not a choice; did you mean 'smooth'?"),
    (lambda p, k: p.remap(0.5, shape="cubik"), "p.remap: shape='cubik' is not a choice; did you mean 'cubic'?"),
    (lambda p, k: p.controls(z=k[0], noise="rand").check(), "p.controls: noise='rand' is not a choice; "
                                                            "did you mean 'random'? (choices: 'const', 'random', 'none')"),
    (lambda p, k: p.walk(k, 0.5, ease="zzz"), "p.walk: ease='zzz' is not a choice (choices: 'linear'"),
    (lambda p, k: p.walk(k, 0.5, ease=["smooth"]), "p.walk: ease=['smooth'] is not a choice"),
])
def test_a_bad_choice_names_the_argument_the_nearest_choice_and_all_of_them(call, words):
    p = PatchContext(INFO)
    with pytest.raises(ValueError) as e:
        call(p, p.seeds([1, 2]))
    assert words in str(e.value)


def test_the_ease_error_reaches_the_performer_with_file_and_line_and_frames_keep_coming(tmp_path, caplog):
    h = host_of(tmp_path / "ease.py", "def frame(p, s):\n"
                                      "    keys = p.seeds([1, 2])\n"
                                      "    return p.controls(z=p.walk(keys, s.time, ease='smoth'))\n")
    bus = SignalBus()
    with caplog.at_level(logging.ERROR, logger="vj.patch"):
        out = [h.frame(bus.snapshot(time=k / 30)) for k in range(5)]
    assert all(c.z is not None and c.z.shape == (16,) for c in out)   # the fallback picture, every frame
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["ease.py:3: ValueError: p.walk: ease='smoth' is not a choice; did you mean 'smooth'? "
                      "(choices: 'linear', 'smooth', 'cosine')"], errors


TYPO = """def frame(p, s):
    a = s["audio.low"] + s["midi.cc.7"] + s["hands.left.grab"] + s["osc./fader/1"] + s["latent.seed"]
    b = s["audio.lwo"] + s.get("mine.level", 0.0)
    return p.controls(z=p.seed(1) * (1.0 + a + b))
"""


def test_an_unknown_signal_warns_once_per_version_with_the_nearest_names_and_reads_zero(tmp_path, caplog):
    path = tmp_path / "typo.py"
    h = host_of(path, TYPO)
    bus = SignalBus()
    bus.publish({"mine.levels": 0.5})    # a name an input did publish is offered too
    with caplog.at_level(logging.WARNING, logger="vj.patch"):
        for k in range(20):
            h.frame(bus.snapshot(time=k / 30))
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # documented names (audio, MIDI, hands, OSC, the namespace's latent.*) are quiet though nothing sent them
    assert warned == ["patch typo.py line 3: no signal 'audio.lwo' (did you mean 'audio.low'?)",
                      "patch typo.py line 3: no signal 'mine.level' (did you mean 'mine.levels'?)"], warned
    assert h.last_error is None and h.active.proven   # a warning, not an error: the patch runs

    caplog.clear()
    save(path, TYPO.replace("1.0 + a", "2.0 + a"), 1e9)   # a new version warns again, once
    with caplog.at_level(logging.WARNING, logger="vj.patch"):
        assert h.check()
        for k in range(5):
            h.frame(bus.snapshot(time=k / 30))
    assert sum("no signal 'audio.lwo'" in r.getMessage() for r in caplog.records) == 1


def test_the_miss_reads_zero_and_a_name_made_up_each_frame_is_bounded(tmp_path):
    h = host_of(tmp_path / "many.py", "def setup(p):\n    p.n = 0\n"
                                      "def frame(p, s):\n    p.n += 1\n    p.v = s[f'made.up.{p.n}']\n"
                                      "    return p.controls(z=p.seed(1))\n")
    bus = SignalBus()
    for k in range(3):
        h.frame(bus.snapshot(time=k / 30))
    assert h.active.ctx.v == 0.0
    assert h.active.signals.MAX_NAMES >= len(h.active.signals._judged) == 3


def test_a_scene_change_logs_the_scene_and_a_save_logs_a_reload(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = tmp_path / "a.py", tmp_path / "pulse.py"
    h = host_of(a, "def frame(p, s):\n    return p.controls(z=p.seed(1))\n")
    b.write_text("def frame(p, s):\n    return p.controls(z=p.seed(2))\n")
    bus = SignalBus()
    with caplog.at_level(logging.INFO, logger="vj.patch"):
        h.frame(bus.snapshot())
        h.switch(b, scene="2 'drop'")
        h.frame(bus.snapshot())
        save(b, "def frame(p, s):\n    return p.controls(z=p.seed(3))\n", 1e9)
        assert h.check()
        h.frame(bus.snapshot())
    said = [r.getMessage() for r in caplog.records]
    assert said == ["scene 2 'drop' (pulse.py)", "patch pulse reloaded (v3)"], said


def test_a_set_logs_each_scene_with_its_patch_file(tmp_path, env_no_display):
    for name, seed in (("dark", 1), ("drop", 2)):
        (tmp_path / f"{name}.py").write_text(f"def frame(p, s):\n    return p.controls(z=p.seed({seed}))\n")
    show = tmp_path / "show.toml"
    show.write_text('fps = 30\nsize = "32x32"\n[[scene]]\nname = "dark"\npatch = "dark.py"\nseconds = 0.5\n'
                    '[[scene]]\nname = "drop"\npatch = "drop.py"\n')
    proc = run_vj("run", show, "--headless", "--frames", "30", "--no-osc", "--no-midi", "--state", tmp_path / "state",
                  env=env_no_display)
    assert "scene 2/2: drop (" in proc.stderr and "drop.py; frame 1" in proc.stderr, proc.stderr[-2000:]
    assert "reloaded" not in proc.stderr


def test_render_checks_the_patch_before_the_audio_and_says_it_once(tmp_path):
    wav = write_wav(tmp_path / "a.wav", np.zeros(22050, np.float32), sr=22050)
    patch = tmp_path / "ease.py"
    patch.write_text("def frame(p, s):\n    return p.controls(z=p.walk(p.seeds([1, 2]), s.time, ease='smoth'))\n")
    out = tmp_path / "o.mp4"
    p = run_vj("render", "--audio", wav, "--patch", patch, "--out", out, "--size", "32x32", "--quiet", check=False)
    assert p.returncode == 1, p.stderr[-2000:]
    assert p.stderr.count("did you mean 'smooth'?") == 1 and "ease.py:2: ValueError" in p.stderr, p.stderr[-2000:]
    assert "analys" not in p.stderr and not out.exists()
    patch.write_text("def setup(p):\n    p.k = 1 / 0\n\ndef frame(p, s):\n    return p.controls(z=p.seed(1))\n")
    p = run_vj("render", "--audio", wav, "--patch", patch, "--out", out, "--size", "32x32", "--quiet", check=False)
    assert p.returncode == 1 and p.stderr.count("ZeroDivisionError") == 1, p.stderr[-2000:]
    assert "analys" not in p.stderr and not out.exists()


def test_the_signal_warning_is_said_once_in_a_render_from_a_later_start(tmp_path):
    """From a later start the patch runs in two sessions (the warm-up pass, then the render)."""
    wav = write_wav(tmp_path / "a.wav", 0.1 * np.sin(np.arange(22050) / 10).astype(np.float32), sr=22050)
    patch = tmp_path / "typo.py"
    patch.write_text("def frame(p, s):\n    x = s['audio.lwo']\n    return p.controls(z=p.seed(1) * (1 + x))\n")
    p = run_vj("render", "--audio", wav, "--patch", patch, "--out", tmp_path / "o.mp4", "--size", "32x32",
               "--fps", "10", "--start", "0.5", "--quiet")
    warned = [line for line in p.stderr.splitlines() if "no signal" in line]
    assert warned == ["vj: patch typo.py line 2: no signal 'audio.lwo' (did you mean 'audio.low'?)"], p.stderr[-2000:]
