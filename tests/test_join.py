"""join_segments on real files: segments written by the Recorder, joined, read back with PyAV."""

from fractions import Fraction

import av
import numpy as np
import pytest

from engine.outputs import join as join_mod
from engine.outputs.join import join_segments
from engine.outputs.recorder import Recorder
from audio_synth import click
from conftest import write_wav

W, H, FPS = 96, 64, 30
COUNTS = (17, 20, 13)
TOTAL = sum(COUNTS)
SR = 44100


def picture(n, w=W, h=H):
    """Frame n of the whole video: its grey level and a bar n pixels wide say which it is."""
    img = np.full((h, w, 3), 4 * n, np.uint8)
    img[: h // 4, :n] = 255
    return img


def write_segment(path, first, count, w=W, h=H, fps=FPS, indices=None):
    with Recorder(path, w, h, fps) as rec:
        for k, i in enumerate(indices or range(count)):
            rec.write(picture(first + k, w, h), i)
    return path


@pytest.fixture(scope="module")
def segments(tmp_path_factory):
    folder = tmp_path_factory.mktemp("segments")
    paths, first = [], 0
    for j, n in enumerate(COUNTS):
        paths.append(write_segment(folder / f"chunk{j}.mp4", first, n))
        first += n
    return paths


def decoded(path):
    with av.open(str(path)) as c:
        return [(f.pts * f.time_base, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def check_video(path, segments):
    frames = decoded(path)
    assert len(frames) == TOTAL
    # Exactly n/30: no gaps, no duplicates, in order.
    assert [t for t, _ in frames] == [Fraction(n, FPS) for n in range(TOTAL)]
    # Remuxed, not re-encoded: each frame is the one its segment decodes to, bit for bit.
    originals = [img for s in segments for _, img in decoded(s)]
    for n, ((_, got), want) in enumerate(zip(frames, originals)):
        assert np.array_equal(got, want), f"frame {n} differs from its segment's"
        assert abs(int(got[H // 2:, :].mean()) - 4 * n) <= 3  # and it is frame n


def no_leftovers(folder, keep=()):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_join_without_audio(segments, tmp_path):
    out = tmp_path / "joined.mp4"
    result = join_segments(segments, out, FPS)
    assert result == {"path": out, "frames": TOTAL, "duration": pytest.approx(TOTAL / FPS),
                      "segments": 3}
    with av.open(str(out)) as c:
        assert len(c.streams.video) == 1 and not c.streams.audio
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.duration / 1e6 == pytest.approx(TOTAL / FPS, abs=1e-3)
    check_video(out, segments)
    assert no_leftovers(tmp_path) == ["joined.mp4"]  # the temporary file was renamed


def test_join_with_audio_in_sync(segments, tmp_path):
    y = np.zeros(3 * SR, np.float32)  # longer than the video: cut at its end
    onset = SR  # a click at 1.0 s
    y[onset:onset + len(click())] += 0.8 * click()
    wav = write_wav(tmp_path / "click.wav", y, SR)

    out = join_segments(segments, tmp_path / "av.mp4", FPS, audio=str(wav))["path"]
    check_video(out, segments)
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1
        a = c.streams.audio[0]
        assert a.codec_context.name == "aac" and a.rate == SR
        audio = list(c.decode(a))
    # The edit list hides the encoder priming: the soundtrack starts at 0, not 23 ms late.
    assert audio[0].time == pytest.approx(0, abs=1e-3)
    duration = sum(f.samples for f in audio) / SR
    assert duration == pytest.approx(TOTAL / FPS, abs=1024 / SR)
    pcm = np.concatenate([f.to_ndarray()[0] for f in audio])
    heard = np.flatnonzero(np.abs(pcm) > 0.2)[0] / SR
    assert heard == pytest.approx(1.0, abs=0.025)


def test_other_size_is_refused(segments, tmp_path):
    odd = write_segment(tmp_path / "big.mp4", COUNTS[0], COUNTS[1], w=128, h=64)
    out = tmp_path / "joined.mp4"
    with pytest.raises(ValueError, match=r"big\.mp4.*size \(128, 64\) differs"):
        join_segments([segments[0], odd, segments[2]], out, FPS)
    assert no_leftovers(tmp_path) == ["big.mp4"]


def test_gap_or_wrong_rate_is_refused(segments, tmp_path):
    gappy = write_segment(tmp_path / "gappy.mp4", COUNTS[0], 3, indices=[0, 1, 3])
    with pytest.raises(ValueError, match=r"gappy\.mp4: frame 2"):
        join_segments([segments[0], gappy], tmp_path / "joined.mp4", FPS)
    with pytest.raises(ValueError, match=r"chunk0\.mp4: frame 1 .*not 25 fps"):
        join_segments(segments, tmp_path / "joined.mp4", 25)
    assert no_leftovers(tmp_path) == ["gappy.mp4"]


def test_existing_output_is_kept(segments, tmp_path):
    out = tmp_path / "joined.mp4"
    out.write_bytes(b"someone's take")
    result = join_segments(segments, out, FPS)
    assert result["path"] == tmp_path / "joined-2.mp4"
    assert out.read_bytes() == b"someone's take"
    check_video(result["path"], segments)

    result = join_segments(segments, out, FPS, overwrite=True)
    assert result["path"] == out
    check_video(out, segments)
    assert no_leftovers(tmp_path) == ["joined-2.mp4", "joined.mp4"]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_bad_segment_leaves_no_file(segments, tmp_path, damage):
    bad = tmp_path / "chunk1.mp4"
    data = segments[1].read_bytes()
    bad.write_bytes(b"\x00garbage" * 100 if damage == "garbage" else data[: len(data) * 2 // 3])
    out = tmp_path / "joined.mp4"
    with pytest.raises(ValueError, match=r"chunk1\.mp4") as err:
        join_segments([segments[0], bad, segments[2]], out, FPS)
    assert ("cannot open" if damage == "garbage" else "unfinished") in str(err.value)
    assert no_leftovers(tmp_path) == ["chunk1.mp4"]


def test_interrupted_join_leaves_no_file(segments, tmp_path, monkeypatch):
    real, calls = join_mod._copy_segment, []

    def interrupted(*args):
        calls.append(args)
        if len(calls) == 2:  # Ctrl-C half-way: the first segment is already in the file
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(join_mod, "_copy_segment", interrupted)
    with pytest.raises(KeyboardInterrupt):
        join_segments(segments, tmp_path / "joined.mp4", FPS)
    assert no_leftovers(tmp_path) == []
