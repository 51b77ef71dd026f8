"""`--record` and `vj render --out` never replace a file the user made, unless --overwrite."""
import hashlib

from conftest import read_video, run_vj, write_wav
import numpy as np


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_record_gets_a_numbered_name_when_the_file_exists(tmp_path):
    out = tmp_path / "show.mp4"
    args = ["run", "--headless", "--frames", 8, "--size", "64x64", "--no-osc", "--no-midi", "--record"]
    run_vj(*args, out)
    first = digest(out)
    p = run_vj(*args, out)
    assert digest(out) == first  # the first take is untouched
    second = tmp_path / "show-2.mp4"
    assert len(read_video(second)[0]) == 8
    assert "show-2.mp4" in p.stderr
    run_vj(*args, out)
    assert (tmp_path / "show-3.mp4").exists()
    run_vj(*args, out, "--overwrite")
    assert digest(out) != first and not (tmp_path / "show-4.mp4").exists()


def test_render_out_gets_a_numbered_name_too(tmp_path):
    wav = write_wav(tmp_path / "a.wav", 0.1 * np.sin(np.linspace(0, 400, 22050)), sr=22050)
    patch = tmp_path / "p.py"
    patch.write_text("def frame(p, s):\n    return p.controls(z=p.seed(1))\n")
    out = tmp_path / "r.mp4"
    out.write_bytes(b"my own file")
    run_vj("render", "--audio", wav, "--patch", patch, "--out", out, "--size", "64x64", "--quiet")
    assert out.read_bytes() == b"my own file"
    assert len(read_video(tmp_path / "r-2.mp4")[0]) == 30  # 1 s at 30 fps


def test_overwrite_keeps_the_old_file_until_the_new_one_is_finished(tmp_path):
    """--overwrite replaces a file only with a finished take: a render whose patch cannot draw
    leaves the old file as it was, and no stray file beside it."""
    wav = write_wav(tmp_path / "a.wav", 0.1 * np.sin(np.linspace(0, 400, 22050)), sr=22050)
    out = tmp_path / "r.mp4"
    out.write_bytes(b"my own file")
    broken = tmp_path / "broken.py"
    broken.write_text("def frame(p, s):\n    return 1 / 0\n")
    p = run_vj("render", "--audio", wav, "--patch", broken, "--out", out, "--size", "64x64", "--quiet",
               "--overwrite", check=False)
    assert p.returncode != 0
    assert out.read_bytes() == b"my own file"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a.wav", "broken.py", "r.mp4"]
    good = tmp_path / "good.py"
    good.write_text("def frame(p, s):\n    return p.controls(z=p.seed(1))\n")
    run_vj("render", "--audio", wav, "--patch", good, "--out", out, "--size", "64x64", "--quiet", "--overwrite")
    assert len(read_video(out)[0]) == 30
    assert not list(tmp_path.glob("*.unfinished.mp4"))
