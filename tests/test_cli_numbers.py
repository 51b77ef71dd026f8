"""Numbers at the command line's edge: a bad one is argparse's error naming the option,
exit 2, no traceback, before anything opens. The whole matrix goes through the real entry
point in-process (``engine.cli.main``); the show-stoppers the hostile tester found are
also run as the real ``vj`` process."""
import pytest

from conftest import run_vj
from engine.cli import main

BAD = ["inf", "-inf", "nan", "1e-300", "-1", "1e999", "99999999999999999999", "9" * 400, "abc", ""]

# (command and the arguments it needs, option, a value the option accepts)
OPTIONS = [
    (["run"], "--fps", "30"),
    (["run"], "--bpm", "120"),
    (["run"], "--frames", "3"),
    (["run"], "--osc-port", "9000"),
    (["run"], "--oscquery-port", "0"),
    (["run"], "--osc-out-rate", "30"),
    (["run"], "--monitor", "0"),
    (["run"], "--block", "512"),
    (["run"], "--size", "64x64"),
    (["render", "--audio", "a.wav", "--patch", "p.py", "--out", "o.mp4"], "--fps", "30"),
    (["render", "--audio", "a.wav", "--patch", "p.py", "--out", "o.mp4"], "--bpm", "120"),
    (["bench"], "--frames", "10"),
    (["models", "sample", "m"], "--psi", "0.7"),
    (["models", "sample", "m"], "--cutoff", "4"),
    (["models", "sample", "m"], "--seed", "7"),
    (["analyze", "a.wav"], "--fps", "30"),
    (["analyze", "a.wav"], "--block", "512"),
]


def refused(code, stderr, option):
    assert code == 2, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("vj ") and f": error: argument {option}: must be" in last, last
    return last


def parse(capsys, *argv):
    """``vj ARGV``'s exit code and stderr, through the real entry point, stopped by --help
    before any command runs (a bad value is refused before --help is reached)."""
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize("command, option, good", OPTIONS, ids=[f"{c[0]} {o}" for c, o, _ in OPTIONS])
def test_bad_numbers_are_refused_by_name(capsys, command, option, good):
    for value in BAD:
        if option == "--psi" and value in ("-1", "1e-300"):
            continue  # negative and tiny truncations are real ones
        refused(*parse(capsys, *command, f"{option}={value}"), option)
    assert parse(capsys, *command, f"{option}={good}")[0] == 0


@pytest.mark.parametrize("args, option", [
    (["run", "--fps", "inf"], "--fps"),
    (["run", "--fps", "1e-300"], "--fps"),
    (["run", "--frames", "-1"], "--frames"),
    (["run", "--bpm", "nan"], "--bpm"),
    (["run", "--osc-port", "70000"], "--osc-port"),
    (["run", "--size", "99999999999999999999x64"], "--size"),
    (["bench", "--frames", "0"], "--frames"),
    (["models", "sample", "m", "--psi", "inf"], "--psi"),
])
def test_the_real_vj_refuses(args, option):
    proc = run_vj(*args, "--headless" if args[0] == "run" else "--help", check=False, timeout=60)
    refused(proc.returncode, proc.stderr, option)


@pytest.mark.parametrize("option, value, words", [
    ("--fps", "241", "1..240"),
    ("--fps", "0.5", "1..240"),
    ("--bpm", "19", "20..400"),
    ("--bpm", "401", "20..400"),
    ("--frames", "0", "1..1000000000"),
    ("--frames", "2.5", "an integer"),
    ("--osc-port", "65536", "0..65535"),
    ("--oscquery-port", "-1", "0..65535"),
    ("--osc-out-rate", "0", "0.01..1000"),
    ("--monitor", "-1", "0..255"),
    ("--size", "15x64", "16..8192"),
    ("--size", "64x8193", "16..8192"),
    ("--size", "infxnan", "16..8192"),
    ("--size", "64x64x3", "16..8192"),
])
def test_out_of_range_says_the_range(capsys, option, value, words):
    assert words in refused(*parse(capsys, "run", f"{option}={value}"), option)


def test_psi_may_be_negative(capsys):
    assert parse(capsys, "models", "sample", "m", "--psi=-0.5")[0] == 0


def test_names_too_long_for_the_file_system(tmp_path):
    """A 300-character patch is 'not found' (exit 2); a 300-character model falls back to the default."""
    from conftest import run_vj
    p = run_vj("run", "x" * 300, "--headless", "--frames", 2, "--size", "64x64", "--no-osc", "--no-midi", check=False)
    assert p.returncode == 2 and "patch not found" in p.stderr and "Traceback" not in p.stderr
    p = run_vj("run", "--model", "m" * 300, "--headless", "--frames", 2, "--size", "64x64", "--no-osc", "--no-midi",
               check=False)
    assert p.returncode == 0 and "falling back to the default model" in p.stderr, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
