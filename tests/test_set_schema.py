"""Set files are checked whole when loaded: a bad value anywhere refuses the set before the
show starts, naming the file, the scene and the key; an unknown key is a warning. Then the
attacker's test: set files with random values in every field either are refused cleanly or
run."""
import datetime
import json
import logging
import math
import random
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import ROOT, run_vj
from engine.patching.api import Controls
from engine.show.scenes import SetStage, Slot
from engine.show.sets import SetError, SetList
from engine.signals.bus import SignalBus

PATCH = "def frame(p, s):\n    return p.controls(z=p.seed(1))\n"
RUN = ("--headless", "--frames", "3", "--size", "64x64", "--no-osc", "--no-midi")


def write_set(tmp_path, body, name="set.toml"):
    (tmp_path / "a.py").write_text(PATCH)
    f = tmp_path / name
    f.write_text(body)
    return f


def three_scenes(third: str) -> str:
    return ('title = "t"\nfps = 30\n'
            '[[scene]]\nname = "a"\npatch = "a.py"\nbars = 4\n'
            '[[scene]]\nname = "b"\npatch = "drift"\nseconds = 2.5\n'
            f'[[scene]]\nname = "c"\npatch = "a.py"\n{third}\n')


def refused_at_start(proc, *words):
    """Exit 2, each word on a `vj: set list:` line, no traceback, nothing opened."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "OpenGL" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("vj: set list: ")]
    assert any(all(w in ln for w in words) for ln in lines), proc.stderr


def test_a_later_scene_is_checked_at_load(tmp_path):
    f = write_set(tmp_path, three_scenes('bars = "1"'))
    with pytest.raises(SetError) as e:
        SetList(f)
    assert str(e.value) == f'{f}: scene 3 "c": bars: expected an integer in 1..100000, got "1"'


@pytest.mark.parametrize("third, words", [
    ('bars = "1"', ('scene 3 "c": bars: expected an integer in 1..100000, got "1"',)),
    ('patch = "missing.py"', ('scene 3 "c": patch: "missing.py" not found',)),
    ('seconds = inf', ('scene 3 "c": seconds: expected a number in 0.1..86400, got inf',)),
])
def test_vj_run_refuses_a_bad_set_before_the_show(tmp_path, third, words):
    # `patch` twice would be a TOML error, so a missing patch replaces the table's own
    body = three_scenes(third).replace('name = "c"\npatch = "a.py"\npatch', 'name = "c"\npatch')
    f = write_set(tmp_path, body)
    refused_at_start(run_vj("run", f, *RUN, check=False, timeout=60), str(f), *words)


def test_a_bad_set_option_is_refused_like_the_command_line(tmp_path):
    f = write_set(tmp_path, 'fps = inf\n[[scene]]\npatch = "a.py"\n')
    refused_at_start(run_vj("run", f, *RUN, check=False, timeout=60), f"{f}: fps: expected a number in 1..240, got inf")


@pytest.mark.parametrize("key, value, words", [
    ("bars", "0", "expected an integer in 1..100000, got 0"),
    ("bars", "-1", "got -1"),
    ("bars", "1.5", "got 1.5"),
    ("bars", "16.0", "got 16.0"),
    ("bars", "true", "got true"),
    ("bars", "nan", "got nan"),
    ("bars", "9223372036854775807", "got 9223372036854775807"),
    ("bars", "1" + "0" * 400, "got 1000000000"),  # tomllib allows more than TOML's 64 bits
    ("seconds", "0", "expected a number in 0.1..86400, got 0"),
    ("seconds", "1e-300", "got 1e-300"),
    ("seconds", "-inf", "got -inf"),
    ("seconds", '"5"', 'got "5"'),
    ("seconds", "[5]", "got an array"),
    ("name", "5", "expected a name of 1..64 printable characters, got 5"),
    ("name", '""', 'got ""'),
    ("name", '"a\\tb"', 'got "a\\tb"'),
    ("name", '"' + "x" * 65 + '"', 'got "xxxxxxx'),
    ("patch", "5", "patch: expected a patch file or name of 1..4096 characters, got 5"),
    ("patch", '""', 'patch: expected a patch file or name'),
    ("patch", '"' + "x" * 1000 + '"', "not found"),  # longer than a file name may be
    ("patch", '"a\\u0000.py"', "not found"),
    ("patch", "{ file = 'a.py' }", "got a table"),
], ids=lambda v: v[:20] if isinstance(v, str) else None)
def test_bad_scene_values_name_scene_and_key(tmp_path, key, value, words):
    body = f'[[scene]]\npatch = "a.py"\n[[scene]]\npatch = "a.py"\n{key} = {value}\n'
    if key == "patch":
        body = f'[[scene]]\npatch = "a.py"\n[[scene]]\n{key} = {value}\n'
    f = write_set(tmp_path, body)
    with pytest.raises(SetError) as e:
        SetList(f)
    message = str(e.value)
    assert message.startswith(f"{f}: scene 2") and f"{key}: " in message and words in message, message
    assert len(message) < 400  # a hostile value is quoted, not echoed whole


@pytest.mark.parametrize("top, words", [
    ("fps = nan", "fps: expected a number in 1..240, got nan"),
    ("fps = 1e-300", "fps: expected a number in 1..240, got 1e-300"),
    ("fps = 0", "got 0"),
    ("fps = 1000", "got 1000"),
    ("fps = 1" + "0" * 400, "got 1000000000"),
    ('fps = "30"', 'got "30"'),
    ("bpm = 10", "bpm: expected a number in 20..400, got 10"),
    ("bpm = inf", "got inf"),
    ("bpm = false", "got false"),
    ('size = "10x10"', 'size: expected a size like "1280x720", each side 16..8192, got "10x10"'),
    ("size = 640", "got 640"),
    ("size = [64, 64]", "got an array"),
    ('size = "infxnan"', 'got "infxnan"'),
    ("model = 5", "model: expected a registry name or model file"),
    ("title = 5", "title: expected a string"),
    ("scene = 5", "scene: expected [[scene]] tables, got 5"),
    ("scene = [1, 2]", "scene: expected [[scene]] tables, got an array"),
])
def test_bad_options_are_refused(tmp_path, top, words):
    scenes = "" if top.startswith("scene") else '[[scene]]\npatch = "a.py"\n'
    f = write_set(tmp_path, f"{top}\n{scenes}")
    with pytest.raises(SetError, match=None) as e:
        SetList(f)
    assert str(e.value).startswith(f"{f}: ") and words in str(e.value), str(e.value)


def test_a_single_scene_table_is_not_a_list(tmp_path):
    with pytest.raises(SetError, match=r"scene: expected \[\[scene\]\] tables, got a table"):
        SetList(write_set(tmp_path, '[scene]\npatch = "a.py"\n'))


def test_every_problem_is_listed_at_once(tmp_path):
    f = write_set(tmp_path, 'fps = inf\n[[scene]]\nname = "a"\npatch = "a.py"\nbars = 0\n'
                            '[[scene]]\nname = "b"\n[[scene]]\npatch = "a.py"\nseconds = "x"\n')
    with pytest.raises(SetError) as e:
        SetList(f)
    assert str(e.value).splitlines() == [
        f"{f}: fps: expected a number in 1..240, got inf",
        f'{f}: scene 1 "a": bars: expected an integer in 1..100000, got 0',
        f'{f}: scene 2 "b": names no patch',
        f'{f}: scene 3: seconds: expected a number in 0.1..86400, got "x"',
    ]


def test_unknown_keys_warn_and_the_set_loads(tmp_path, caplog):
    f = write_set(tmp_path, 'tempo = 120\n[[scene]]\nname = "a"\npatch = "a.py"\nbar = 4\n')
    with caplog.at_level(logging.WARNING, logger="vj"):
        sl = SetList(f)
    assert [s.name for s in sl.scenes] == ["a"] and sl.scenes[0].bars is None
    assert f'set list: {f}: unknown key "tempo" ignored' in caplog.messages
    assert f'set list: {f}: scene 1 "a": unknown key "bar" ignored (did you mean "bars"?)' in caplog.messages


def test_vj_run_warns_of_an_unknown_key_and_the_show_runs(tmp_path):
    f = write_set(tmp_path, '[[scene]]\nname = "a"\npatch = "a.py"\nsekonds = 3\n')
    proc = run_vj("run", f, *RUN, timeout=120)
    assert f'vj: set list: {f}: scene 1 "a": unknown key "sekonds" ignored (did you mean "seconds"?)' in proc.stderr
    assert "frame 3" in proc.stderr


def test_a_scene_name_used_twice_warns(tmp_path, caplog):
    f = write_set(tmp_path, '[[scene]]\nname = "a"\npatch = "a.py"\n[[scene]]\nname = "a"\npatch = "a.py"\n')
    with caplog.at_level(logging.WARNING, logger="vj"):
        SetList(f)
    assert any('scene 2 "a": the name is scene 1\'s too' in m for m in caplog.messages)


@pytest.mark.parametrize("path", sorted((ROOT / "sets").glob("*.toml")), ids=lambda p: p.name)
def test_the_shipped_sets_load_without_warnings(path, caplog):
    with caplog.at_level(logging.WARNING, logger="vj"):
        sl = SetList(path)
    assert sl.scenes and not caplog.messages


def test_values_are_typed_as_the_engine_uses_them(tmp_path):
    f = write_set(tmp_path, 'bpm = 90\nfps = 25\nsize = "96x64"\nmodel = "m"\n'
                            '[[scene]]\npatch = "a.py"\nbars = 2\n[[scene]]\npatch = "drift"\nseconds = 3\n')
    sl = SetList(f)
    assert sl.options == {"bpm": 90.0, "fps": 25.0, "size": (96, 64), "model": "m"}
    assert isinstance(sl.options["fps"], float) and isinstance(sl.scenes[1].seconds, float)
    assert [(s.name, s.patch.name, s.bars, s.seconds) for s in sl.scenes] == [
        ("scene 1", "a.py", 2, None), ("scene 2", "drift.py", None, 3.0)]


# ------------------------------------------------------------------ the attacker's test
POOL = ["1", "", "x" * 300, "drift", "a.py", "nope.py", "\u0000", "a\tb", "96x64", "64x64", "ünï", "scene 1",
        0, 1, -1, 2, 16, 300, 2 ** 63 - 1, -2 ** 63, 10 ** 400,
        0.0, 0.05, 0.5, 2.5, 30.0, 1e-300, 1e300, math.inf, -math.inf, math.nan,
        True, False, [], [1, "a"], {}, {"a": 1}, datetime.date(2024, 1, 1)]
GOOD = {"title": ["t"], "bpm": [120, 90.5], "fps": [30, 24.0], "size": ["64x64"], "model": ["digiface64"],
        "name": ["a", "b", "drop"], "patch": ["a.py", "drift"], "bars": [1, 2, 16], "seconds": [0.5, 2.5]}
UNKNOWN = ["tempo", "bar", "Fps", "patches", "x"]


def toml(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return "nan" if math.isnan(v) else "inf" if v == math.inf else "-inf" if v == -math.inf else repr(v)
    if isinstance(v, (int, datetime.date)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON's escapes are TOML's
    if isinstance(v, list):
        return "[" + ", ".join(map(toml, v)) + "]"
    return "{ " + ", ".join(f"{k} = {toml(x)}" for k, x in v.items()) + " }"


def fuzz_set(rng: random.Random) -> str:
    # mostly good values, so that one bad value among good ones is what gets tested
    def value(key):
        return rng.choice(GOOD[key]) if rng.random() < 0.9 else rng.choice(POOL)

    def table(keys):
        lines = [f"{k} = {toml(value(k))}" for k in keys if rng.random() < (0.97 if k == "patch" else 0.5)]
        if rng.random() < 0.15:
            lines.append(f"{rng.choice(UNKNOWN)} = {toml(rng.choice(POOL))}")
        return lines

    lines = table(["title", "bpm", "fps", "size", "model"])
    if rng.random() < 0.05:
        return "\n".join(lines + [f"scene = {toml(rng.choice(POOL))}"]) + "\n"
    for _ in range(rng.randint(0, 4)):
        lines += ["[[scene]]", *table(["name", "patch", "bars", "seconds"])]
    return "\n".join(lines) + "\n"


def walk_the_show(sl: SetList) -> None:
    """Enter every scene the way a show does (cues, and time running out) and ask each for its
    end: the values were checked at load, so nothing here may raise."""
    bus = SignalBus()
    hosts = [SimpleNamespace(frame=lambda snap: Controls(z=np.zeros(4, np.float32))) for _ in sl.scenes]
    stage = SetStage(sl, hosts, [None] * len(hosts), [Slot(None, None)],
                     lambda *a, **k: bus.emit("cue.next") or True)
    for k in range(2 * len(sl.scenes) + 2):  # each step past the longest scene the schema allows
        snap = bus.snapshot(time=k * 1e5, dt=0.1, beat=k * 1e6, bpm=120.0)
        stage.run(SimpleNamespace(snap=snap, status={}))
        assert sl.due(snap, ahead=0.1) in (True, False)
    assert all(sc.patch.is_file() for sc in sl.scenes)


def test_fuzzed_sets_are_refused_cleanly_or_run(tmp_path):
    rng = random.Random(9)
    (tmp_path / "a.py").write_text(PATCH)
    outcomes = {"refused": [], "loaded": []}
    for i in range(400):
        f = tmp_path / f"fuzz{i}.toml"
        f.write_text(fuzz_set(rng), encoding="utf-8")
        try:
            sl = SetList(f)
        except SetError as e:
            lines = str(e).splitlines()
            assert lines and all(ln.startswith(f"{f}: ") for ln in lines), str(e)
            outcomes["refused"].append(f)
            continue
        for sc in sl.scenes:
            assert isinstance(sc.name, str) and sc.patch.is_file()
            assert sc.bars is None or type(sc.bars) is int and sc.bars >= 1
            assert sc.seconds is None or type(sc.seconds) is float and math.isfinite(sc.seconds) and sc.seconds > 0
        walk_the_show(sl)
        outcomes["loaded"].append(f)
    assert len(outcomes["refused"]) > 50 and len(outcomes["loaded"]) > 20, {k: len(v) for k, v in outcomes.items()}

    # the real vj on a few of each: refused ones exit 2 with the message, the rest run
    for f in outcomes["refused"][:4]:
        proc = run_vj("run", f, *RUN, check=False, timeout=60)
        refused_at_start(proc, str(f))
    for f in outcomes["loaded"][:2]:
        proc = run_vj("run", f, *RUN, check=False, timeout=120)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_the_readme_states_the_ranges_checked():
    from engine.limits import BPM, FPS
    readme = " ".join((ROOT / "README.md").read_text().split())
    for key, spec in (("fps", FPS), ("bpm", BPM)):
        assert f"`{key}` ({spec.lo}..{spec.hi})" in readme and f"`--{key} {spec.lo}..{spec.hi}`" in readme


@pytest.mark.parametrize("body, words", [
    ("x = " + "[" * 50000 + "]" * 50000 + "\n", "nested too deeply"),
    (b"title = \"\xff\"\n", "utf-8"),
    ("fps = 1" + "0" * 5000 + "\n", "4300 digits"),
    ("[[scene]]\npatch = 'a.py'\npatch = 'a.py'\n", "set.toml"),
])
def test_files_that_are_not_toml_are_refused(tmp_path, body, words):
    f = tmp_path / "set.toml"
    f.write_bytes(body if isinstance(body, bytes) else body.encode())
    with pytest.raises(SetError, match=words) as e:
        SetList(f)
    assert str(e.value).startswith(f"{f}: ")
