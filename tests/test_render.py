"""`vj render`: offline, frame-exact with the soundtrack, motion follows the music."""
import numpy as np

from conftest import frame_motion, read_video, run_vj, write_wav

SR = 44100


def quiet_then_loud(seconds_each=4.0, sr=SR, quiet_level=0.003) -> np.ndarray:
    """A quiet passage, then a loud beat: noise bursts + a bass thump four times a second."""
    rng = np.random.default_rng(0)
    n = int(seconds_each * sr)
    quiet = quiet_level * rng.standard_normal(n)
    t = np.arange(n) / sr
    env = np.exp(-((t % 0.25) / 0.05))
    loud = 0.6 * env * (np.sin(2 * np.pi * 55 * t) + 0.5 * rng.standard_normal(n))
    return np.concatenate([quiet, loud]).astype(np.float32)


def test_render_duration_audio_and_motion_follow_the_music(tmp_path):
    wav = write_wav(tmp_path / "song.wav", quiet_then_loud(), SR)
    out = tmp_path / "out.mp4"
    proc = run_vj("render", "--audio", wav, "--patch", "patches/pulse.py", "--out", out,
                  "--size", "160x120", "--fps", "30", "--quiet")
    assert "wrote" in proc.stderr
    frames, info = read_video(out)
    duration = len(quiet_then_loud()) / SR
    # video as long as the audio, within one frame
    assert abs(len(frames) / 30 - duration) <= 1 / 30
    assert abs((info["times"][-1] + 1 / 30) - duration) <= 1 / 30
    # the soundtrack is inside
    assert info["audio"] == ["aac"]
    assert abs(info["audio_duration"] - duration) < 0.1
    # loud passages move more than quiet ones
    motion = frame_motion(frames)
    half = len(motion) // 2
    quiet, loud = motion[5:half - 5].mean(), motion[half + 5:].mean()
    assert loud > 3 * quiet, (quiet, loud)


def test_render_is_reproducible(tmp_path):
    wav = write_wav(tmp_path / "a.wav", quiet_then_loud(1.0), SR)
    outs = []
    for name in ("a.mp4", "b.mp4"):
        run_vj("render", "--audio", wav, "--patch", "pulse", "--out", tmp_path / name,
               "--size", "96x64", "--fps", "24", "--quiet")
        outs.append(read_video(tmp_path / name)[0])
    assert len(outs[0]) == len(outs[1]) == 48
    assert all(np.array_equal(a, b) for a, b in zip(*outs))


def test_render_with_broken_patch_fails_clearly(tmp_path):
    wav = write_wav(tmp_path / "a.wav", np.zeros(SR, np.float32), SR)
    bad = tmp_path / "bad.py"
    bad.write_text("def frame(p, s)\n")
    proc = run_vj("render", "--audio", wav, "--patch", bad, "--out", tmp_path / "o.mp4", "--quiet", check=False)
    assert proc.returncode == 1
    assert "SyntaxError" in proc.stderr


def test_render_with_unreadable_audio_fails_clearly(tmp_path):
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"RIFF....not really a wav")
    proc = run_vj("render", "--audio", bad, "--patch", "pulse", "--out", tmp_path / "o.mp4", "--quiet",
                  check=False)
    assert proc.returncode == 2
    assert "cannot read audio" in proc.stderr


def test_a_patch_with_a_syntax_error_is_refused_before_the_audio_is_analysed(tmp_path):
    wav = write_wav(tmp_path / "a.wav", np.zeros(22050, np.float32), sr=22050)
    patch = tmp_path / "typo.py"
    patch.write_text("def frame(p, s)\n    return p.controls(z=p.seed(1))\n")
    p = run_vj("render", "--audio", wav, "--patch", patch, "--out", tmp_path / "o.mp4", "--quiet", check=False)
    assert p.returncode == 1 and "typo.py:1: SyntaxError" in p.stderr, p.stderr[-2000:]
    assert "analysing" not in p.stderr and not (tmp_path / "o.mp4").exists()
