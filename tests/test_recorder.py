"""Recorder tests on real files: write with engine.outputs.recorder, read back with PyAV."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import soundfile as sf

from engine.outputs.recorder import Recorder, RecorderError

REPO = Path(__file__).resolve().parents[1]


def gradient(w, h, t):
    """Smooth RGB gradient that scrolls with t (so consecutive frames differ)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = (x / w * 200 + t * 2) % 256
    g = y / h * 200 + 20
    b = np.full_like(x, 100) + 50 * np.sin(t / 10)
    return np.stack([r, g, b], -1).astype(np.uint8)


def decode_video(path):
    with av.open(str(path)) as c:
        return list(c.decode(video=0))


def test_roundtrip_90_frames(tmp_path):
    path = tmp_path / "sub" / "out.mp4"  # parent folder is created
    sent = [gradient(160, 120, i) for i in range(90)]
    with Recorder(path, 160, 120, 30) as rec:
        for img in sent:
            upside_down = np.ascontiguousarray(img[::-1])
            rec.write(upside_down[::-1])  # a negative-stride view, as a GL readback flip gives
    assert rec.frames_written == 90

    with av.open(str(path)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 0
        v = c.streams.video[0]
        assert v.codec_context.name == "h264"
        assert v.codec_context.pix_fmt == "yuv420p"
        assert v.average_rate == 30
        assert c.duration / 1e6 == pytest.approx(3.0, abs=1 / 30)
        frames = list(c.decode(v))
    assert len(frames) == 90
    assert frames[0].time == 0
    assert frames[-1].time == pytest.approx(89 / 30)
    for i in (0, 45, 89):
        got = frames[i].to_ndarray(format="rgb24").astype(np.int16)
        assert np.abs(got - sent[i]).mean() < 8


def test_flipped_view_is_top_row_first(tmp_path):
    img = np.zeros((120, 160, 3), np.uint8)
    img[:60] = 255  # white top half here, so white *bottom* half in the view written
    with Recorder(tmp_path / "f.mp4", 160, 120, 30) as rec:
        rec.write(img[::-1])
    got = decode_video(tmp_path / "f.mp4")[0].to_ndarray(format="rgb24")
    assert got[:50].mean() < 20 and got[70:].mean() > 235


def test_index_gaps_keep_real_time(tmp_path, caplog):
    path = tmp_path / "gaps.mp4"
    with Recorder(path, 160, 120, 30) as rec:
        for i in (0, 1, 2, 5, 6):
            rec.write(gradient(160, 120, i), index=i)
        rec.write(gradient(160, 120, 9), index=6)  # repeated: ignored with a warning
        rec.write(gradient(160, 120, 9), index=3)  # older: ignored too
    assert "ignored" in caplog.text
    frames = decode_video(path)
    assert len(frames) == 5
    assert [round(f.time * 30) for f in frames] == [0, 1, 2, 5, 6]
    assert frames[-1].time == pytest.approx(6 / 30)


def test_ntsc_rate(tmp_path):
    path = tmp_path / "ntsc.mp4"
    with Recorder(path, 160, 120, 30000 / 1001) as rec:
        for i in range(30):
            rec.write(gradient(160, 120, i))
    with av.open(str(path)) as c:
        assert c.streams.video[0].average_rate == pytest.approx(29.97, abs=1e-3)
        frames = list(c.decode(video=0))
    assert len(frames) == 30
    assert frames[-1].time == pytest.approx(29 * 1001 / 30000, abs=1e-4)


def test_odd_size_is_padded(tmp_path):
    path = tmp_path / "odd.mp4"
    with Recorder(path, 161, 121, 30) as rec:
        for i in range(10):
            rec.write(gradient(161, 121, i))
    frames = decode_video(path)
    assert len(frames) == 10
    assert (frames[0].width, frames[0].height) == (162, 122)
    got = frames[3].to_ndarray(format="rgb24").astype(np.int16)
    assert np.abs(got[:121, :161] - gradient(161, 121, 3)).mean() < 8


def test_audio_is_muxed(tmp_path):
    sr = 44100
    t = np.arange(2 * sr) / sr
    wav = tmp_path / "tone.wav"
    sf.write(wav, 0.5 * np.sin(2 * np.pi * 440 * t), sr)

    path = tmp_path / "av.mp4"
    with Recorder(path, 160, 120, 30, audio=str(wav)) as rec:
        for i in range(60):
            rec.write(gradient(160, 120, i))

    with av.open(str(path)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
        a = c.streams.audio[0]
        assert a.codec_context.name == "aac"
        assert a.rate == sr and a.channels == 1
        audio = list(c.decode(a))
    assert audio[0].time == pytest.approx(0, abs=1e-3)
    assert sum(f.samples for f in audio) / sr == pytest.approx(2.0, abs=0.05)
    # The tone survives encoding: its spectrum peaks at 440 Hz.
    pcm = np.concatenate([f.to_ndarray()[0] for f in audio])[: 2 * sr]
    assert np.argmax(np.abs(np.fft.rfft(pcm))) * sr / len(pcm) == pytest.approx(440, abs=2)

    frames = decode_video(path)
    assert len(frames) == 60
    assert frames[-1].time == pytest.approx(59 / 30)


# A still gradient with a small moving square: x264 then keeps to the 1 s GOP
# (busier synthetic content makes every frame a scene-cut keyframe, which would
# make the crash test easier than real life).
CHILD = textwrap.dedent("""
    import signal, sys, time
    import numpy as np
    from engine.outputs.recorder import Recorder

    # A child started from a background job inherits SIGINT as ignored; restore
    # the normal Ctrl-C behaviour so the test doesn't depend on how it was run.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    y, x = np.mgrid[0:120, 0:160]
    base = np.stack([x * 200 / 160, y * 200 / 120 + 20, 100 + 0 * x], -1).astype(np.uint8)
    rec = Recorder(sys.argv[1], 160, 120, 30)
    print("ready", flush=True)
    start, i = time.monotonic(), 0
    try:
        while True:
            img = base.copy()
            img[52:68, 2 * i % 144:][:, :16] = 255
            rec.write(img)
            i += 1
            time.sleep(max(0.0, start + i / 30 - time.monotonic()))
    finally:
        rec.close()
        print("frames_written", rec.frames_written, flush=True)
""")


@pytest.fixture
def child():
    """Start the recording child; yields a function path -> Popen (killed at teardown)."""
    procs = []

    def start(path):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_survives_sigkill(tmp_path, child):
    path = tmp_path / "killed.mp4"
    proc = child(path)
    time.sleep(3.5)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    frames = decode_video(path)
    assert len(frames) >= 60  # all but roughly the last second
    assert [round(f.time * 30) for f in frames] == list(range(len(frames)))


def test_ctrl_c_finishes_file(tmp_path, child):
    path = tmp_path / "interrupted.mp4"
    proc = child(path)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert "KeyboardInterrupt" in err
    written = int(out.split("frames_written")[1])
    assert written >= 45
    assert len(decode_video(path)) == written


def test_bad_path_raises(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    with pytest.raises(RecorderError, match="not_a_dir"):
        Recorder(blocker / "out.mp4", 160, 120, 30)


def test_missing_audio_raises(tmp_path):
    with pytest.raises(RecorderError):
        Recorder(tmp_path / "out.mp4", 160, 120, 30, audio=str(tmp_path / "nope.wav"))


def test_encoder_error_surfaces_on_next_write(tmp_path, monkeypatch):
    rec = Recorder(tmp_path / "err.mp4", 160, 120, 30)

    def broken_encode(frame=None):
        raise av.FFmpegError(-22, "boom")
    monkeypatch.setattr(rec, "_video", SimpleNamespace(encode=broken_encode))
    with pytest.raises(RecorderError, match="boom"):
        for i in range(50):
            rec.write(gradient(160, 120, i))
            time.sleep(0.01)
    rec.close()  # the error was reported once, by write()


def test_encoder_error_surfaces_on_close(tmp_path, monkeypatch):
    rec = Recorder(tmp_path / "err.mp4", 160, 120, 30)
    monkeypatch.setattr(rec, "_video", SimpleNamespace(encode=lambda frame=None: 1 / 0))
    rec.write(gradient(160, 120, 0))
    with pytest.raises(RecorderError, match="ZeroDivisionError"):
        rec.close()
    rec.close()  # idempotent


def test_write_after_close_and_bad_shape(tmp_path):
    rec = Recorder(tmp_path / "c.mp4", 160, 120, 30)
    with pytest.raises(ValueError):
        rec.write(np.zeros((120, 161, 3), np.uint8))
    rec.close()
    rec.close()
    with pytest.raises(RecorderError):
        rec.write(gradient(160, 120, 0))


def test_a_killed_take_over_an_existing_file_leaves_both(tmp_path, child):
    """Replacing a file: a kill before close leaves the old file whole, and what was
    recorded playable beside it (NAME.unfinished.mp4)."""
    path = tmp_path / "take.mp4"
    path.write_bytes(b"the take before")
    proc = child(path)
    time.sleep(2.5)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert path.read_bytes() == b"the take before"
    assert len(decode_video(tmp_path / "take.unfinished.mp4")) >= 30
