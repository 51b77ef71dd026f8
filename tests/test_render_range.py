"""`vj render --start S --duration D`: part of a song, its frames the whole render's frames at the
same time (features from the whole song, the feedback trails warmed up), its sound exactly the part."""
from argparse import Namespace

import numpy as np
import pytest

from conftest import read_video, run_vj, write_wav
from engine.commands.render import Part, part_of

SR, FPS = 22050, 20
FEEDBACK = """def setup(p):
    p.keys = p.seeds([1, 2, 3])

def frame(p, s):
    return p.controls(z=p.walk(p.keys, p.time * 0.7 + 3 * s["audio.onset"]), feedback=0.6, hue=s["audio.rms"])
"""


def song(seconds=3.0) -> np.ndarray:
    """A sweep in bursts twice a second over a little noise, the right channel half the left."""
    t = np.arange(int(seconds * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * (110 + 40 * t) * t) * np.exp(-((t % 0.5) / 0.08))
    y += 0.05 * np.random.default_rng(1).standard_normal(len(t))
    return np.stack([y, 0.5 * y], axis=1).astype(np.float32)


def sound_of(path) -> tuple[np.ndarray, int, int]:
    """The decoded soundtrack, mono, its rate and its channels."""
    import av
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        y = np.concatenate([f.to_ndarray() for f in c.decode(s)], axis=1)
        return y.mean(axis=0), s.rate, s.channels


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    import soundfile as sf
    d = tmp_path_factory.mktemp("range")
    sf.write(d / "song.wav", song(), SR)
    (d / "fb.py").write_text(FEEDBACK)
    common = ("--audio", d / "song.wav", "--patch", d / "fb.py", "--size", "48x32", "--fps", FPS, "--lossless",
              "--quiet")
    run_vj("render", *common, "--out", d / "whole.mp4", "--duration", "2.5")   # from frame 0: one session
    # 1.02 s is put on the frame grid: frame 20, 1.00 s
    part = run_vj("render", *common, "--out", d / "part.mp4", "--start", "1.02", "--duration", "1.5")
    return d, part.stderr


def test_the_part_is_as_long_as_asked_and_its_sound_is_exactly_that_part(renders):
    d, said = renders
    frames, info = read_video(d / "part.mp4")
    assert len(frames) == 30 and info["times"][0] == 0.0
    assert "rendering 1.00-2.50 s" in said and "frames 20-49" in said, said[-2000:]
    y, rate, channels = sound_of(d / "part.mp4")
    src = song().mean(axis=1)
    assert rate == SR and channels == 2
    # AAC ends on a whole encoder frame (1024 samples) at or after the video's end
    assert 1.5 <= len(y) / rate <= 1.5 + 1024 / rate + 0.01, len(y) / rate
    # the sound starts at 1.00 s of the song, to the sample
    probe = y[2048:2048 + 8000]
    lag = int(np.argmax(np.correlate(src, probe, "valid"))) - 2048
    assert lag == SR * 1, lag
    seg = src[lag + 2048:lag + 2048 + 8000]
    assert np.corrcoef(seg, probe)[0, 1] > 0.95
    whole, rate, _ = sound_of(d / "whole.mp4")
    assert 2.5 <= len(whole) / rate <= 2.5 + 1024 / rate + 0.01


def test_the_part_draws_the_whole_renders_frames_at_the_same_time(renders):
    d, _ = renders
    whole, _ = read_video(d / "whole.mp4")
    part, _ = read_video(d / "part.mp4")
    assert len(whole) == 50
    diff = [np.abs(whole[20 + i].astype(np.int16) - part[i]).max() for i in range(len(part))]
    # the warm-up leaves under half a level of the history before it; the 8-bit history carries
    # rounding the warm-up never saw for a few frames (engine/render/chunks.py), then none
    assert max(diff) <= 8 and max(diff[10:]) == 0, diff
    assert np.abs(whole[20].astype(np.int16) - whole[0]).mean() > 5   # and the frames do differ over time


@pytest.mark.parametrize("args, words", [
    (("--start", "3.0"), "--start 3 s is at or past the end of"),
    (("--start", "-1"), "--start must be a number of seconds >= 0, got -1"),
    (("--duration", "0"), "--duration must be a number of seconds > 0, got 0"),
    (("--duration", "inf"), "--duration must be a number of seconds > 0, got inf"),
    (("--start", "1", "--workers", "2"), "leave out --workers and --ray"),
])
def test_a_range_that_cannot_be_rendered_is_refused_clearly(tmp_path, args, words):
    wav = write_wav(tmp_path / "song.wav", song()[:, 0], SR)
    out = tmp_path / "refused.mp4"
    p = run_vj("render", "--audio", wav, "--patch", "drift", "--out", out, "--quiet", *args, check=False)
    assert p.returncode == 2 and words in p.stderr and not out.exists(), p.stderr[-2000:]


def test_start_and_duration_go_with_a_song_not_a_recorded_show(tmp_path):
    p = run_vj("render", "--signals", tmp_path / "show.vjsig.gz", "--out", tmp_path / "o.mp4", "--start", "1",
               check=False)
    assert p.returncode == 2 and "--start and --duration cut a song" in p.stderr


@pytest.mark.parametrize("start, duration, part", [
    (None, None, Part(0, 60, 60, FPS)),
    (None, 0.5, Part(0, 10, 60, FPS)),
    (1.02, 1.5, Part(20, 30, 60, FPS)),       # the start on the frame grid
    (2.5, 5.0, Part(50, 10, 60, FPS)),        # past the end: to the end
    (2.99, None, Part(59, 1, 60, FPS)),       # before the end: the last frame, not past it
    (0.0, 0.001, Part(0, 1, 60, FPS)),        # at least one frame
])
def test_the_part_on_the_frame_grid(start, duration, part):
    args = Namespace(start=start, duration=duration, fps=FPS, audio="song.wav")
    assert part_of(args, 3 * SR, SR) == part
