"""Long audio files: played, analysed and recorded a block at a time, never held whole.

The long file is 40 minutes of FLAC (a tone and a click every half second, written in
blocks): whole in memory as float32 it would take 212 MB, so a process that loads it
shows up in its peak RSS next to one that plays a 20 s file. The peak RSS of each `vj`
command is measured in a small wrapper process whose only child is the command."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import av
import numpy as np
import pytest
import soundfile as sf

from audio_synth import SR, click_track, tone
from conftest import ROOT, read_video, vj_cmd
from engine.outputs.recorder import Recorder
from engine.signals.audio import AudioReader, load_audio
from engine.signals.offline import file_features, offline_features

LONG_MINUTES = 40
PEAK_RSS = """
import json, resource, subprocess, sys, time
t0 = time.monotonic()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"rc": p.returncode, "stderr": p.stderr[-4000:], "wall": time.monotonic() - t0,
                  "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def write_flac(path, seconds: float, sr: int = 22050):
    """A 220 Hz tone with a click every half second, written 10 s at a time."""
    block = 10 * sr
    k = np.arange(block)
    y = 0.2 * np.sin(2 * np.pi * 220 * k / sr)
    y[(k % (sr // 2)) < 64] += 0.5
    y = y.astype(np.float32)
    n = int(seconds * sr)
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, format="FLAC", subtype="PCM_16") as f:
        for s in range(0, n, block):
            f.write(y[:min(block, n - s)])
    return path


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("long")
    return {"short": write_flac(d / "short.flac", 20), "long": write_flac(d / "long.flac", LONG_MINUTES * 60),
            "short8k": write_flac(d / "short8k.flac", 90, 8000), "long8k": write_flac(d / "long8k.flac", 360, 8000)}


def peak_rss(*args, timeout=120) -> dict:
    """Run `vj args` and return its exit status, stderr, wall time and peak RSS (MB)."""
    out = subprocess.run([sys.executable, "-c", PEAK_RSS, *vj_cmd(*args)], cwd=ROOT, capture_output=True,
                         text=True, timeout=timeout)
    res = json.loads(out.stdout)
    assert res["rc"] == 0, res["stderr"]
    return res


# --------------------------------------------------------------------------- vj run

def test_run_plays_a_long_file_in_the_memory_of_a_short_one(files):
    common = ("run", "--headless", "--mute", "--frames", "30", "--size", "160x90", "--no-osc", "--no-midi")
    short = peak_rss(*common, "--audio", files["short"])
    long = peak_rss(*common, "--audio", files["long"])
    print(f"\nvj run --audio: peak RSS {short['peak_mb']:.0f} MB with 20 s, {long['peak_mb']:.0f} MB with "
          f"{LONG_MINUTES} min")
    assert "not played" not in long["stderr"]
    assert long["peak_mb"] < short["peak_mb"] + 50        # loaded whole: +212 MB


def test_record_with_a_long_file_closes_at_once_with_the_sound_that_was_played(files, tmp_path):
    out = tmp_path / "take.mp4"
    t0 = time.monotonic()
    proc = subprocess.Popen(vj_cmd("-v", "run", "--headless", "--audio", files["long"], "--mute", "--frames", "90",
                                   "--size", "160x90", "--no-osc", "--no-midi", "--record", out),
                            cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    last_frame = None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "frame 90," in line:
            last_frame = time.monotonic()
    assert proc.wait(timeout=120) == 0, "".join(lines[-30:])
    exited = time.monotonic()
    assert last_frame is not None, "".join(lines[-30:])
    print(f"\nvj run --record with {LONG_MINUTES} min of audio: exit {exited - last_frame:.2f} s after the "
          f"last frame ({exited - t0:.1f} s in all)")
    assert exited - last_frame < 3.0        # encoding the whole file at close took ~25 s

    frames, info = read_video(out)
    video_end = info["times"][-1] + 1 / 30
    assert len(frames) >= 85 and info["audio"] == ["aac"]
    # the stream's duration counts the encoder's priming frame (1024 samples) and the last
    # packet may reach one frame past the video
    assert video_end - 0.05 <= info["audio_duration"] <= video_end + 2 * 1024 / 22050 + 0.01


# --------------------------------------------------------------------------- vj render / analyze

def test_offline_analysis_memory_does_not_grow_with_the_file(files, tmp_path):
    # `vj analyze --offline` runs vj render's analysis (file_features); 8 kHz keeps it quick
    short = peak_rss("analyze", files["short8k"], "--offline", "--out", tmp_path / "s.csv")
    long = peak_rss("analyze", files["long8k"], "--offline", "--out", tmp_path / "l.csv")
    print(f"\noffline analysis: peak RSS {short['peak_mb']:.0f} MB for 90 s ({short['wall']:.1f} s), "
          f"{long['peak_mb']:.0f} MB for 6 min ({long['wall']:.1f} s)")
    # the whole-signal analysis grew by ~300 MB here (its tempogram alone: 270 MB)
    assert long["peak_mb"] < short["peak_mb"] + 40
    rows = (tmp_path / "l.csv").read_text().splitlines()
    assert len(rows) == 1 + 360 * 30


def test_blocks_give_the_features_of_the_whole_signal():
    y, _ = click_track(120, seconds=8.0, first=0.33)
    y = y + tone(57, 8.0, amp=0.1)
    whole = offline_features(y, SR, 30, 240, tempo=False)                     # one block
    blocks = offline_features(y, SR, 30, 240, tempo=False, block_hops=256)     # 3 s blocks
    for name, v in whole.items():
        diff = np.abs(np.asarray(v, np.float64) - np.asarray(blocks[name], np.float64))
        assert diff.max() <= (0.01 if name == "audio.centroid_hz" else 1e-4), name


def test_file_features_match_the_array_path(files):
    feats, sr, duration, n_frames = file_features(files["short"], 30, tempo=False)
    y, _ = load_audio(files["short"])
    ref = offline_features(y, sr, 30, n_frames, tempo=False)
    assert (sr, duration, n_frames) == (22050, 20.0, 600)
    for name, v in ref.items():
        assert np.array_equal(v, feats[name]), name


# --------------------------------------------------------------------------- reading and recording

def test_reader_blocks_resampling_and_pyav(tmp_path):
    rng = np.random.default_rng(3)
    stereo = (0.3 * rng.standard_normal((44100 * 2 + 123, 2))).astype(np.float32)
    wav = tmp_path / "s.wav"
    sf.write(wav, stereo, 44100, subtype="FLOAT")
    with AudioReader(wav, mono=False) as r:
        assert (r.sr, r.channels, r.frames) == (44100, 2, len(stereo))
        assert np.array_equal(np.concatenate(list(r.blocks(1000))), stereo)
        assert np.array_equal(np.concatenate(list(r.blocks(777))), stereo)     # blocks() starts over
    whole, _ = load_audio(wav, sr=22050)
    with AudioReader(wav, sr=22050) as r:
        streamed = np.concatenate(list(r.blocks(999)))
    assert len(streamed) == len(whole) and np.abs(streamed - whole).max() < 1e-5

    m4a = tmp_path / "t.m4a"                     # not for soundfile: PyAV decodes it as it goes
    y = tone(69, 3.0, amp=0.3).astype(np.float32)
    with av.open(str(m4a), "w") as c:
        s = c.add_stream("aac", rate=SR, layout="mono")
        for i in range(0, len(y), 1024):
            f = av.AudioFrame.from_ndarray(y[None, i:i + 1024], format="flt", layout="mono")
            f.sample_rate, f.pts = SR, i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    full, _ = load_audio(m4a)
    with AudioReader(m4a) as r:
        assert r.sr == SR and abs(r.frames - len(y)) < 4096
        assert np.array_equal(np.concatenate(list(r.blocks(5000))), full)
        assert np.array_equal(np.concatenate(list(r.blocks(5000))), full)     # reopened to rewind


def test_recorder_soundtrack_ends_with_the_video(files, tmp_path):
    path = tmp_path / "r.mp4"
    with Recorder(path, 160, 90, 30, audio=str(files["long"])) as rec:
        for i in range(45):
            rec.write(np.zeros((90, 160, 3), np.uint8))
        t0 = time.monotonic()
    took = time.monotonic() - t0
    with av.open(str(path)) as c:
        decoded = sum(f.samples for f in c.decode(audio=0)) / 22050
    assert took < 1.0
    # 1.5 s of video: the sound up to there, rounded up to whole AAC frames of 1024 samples
    assert 1.5 <= decoded <= 1.5 + 2 * 1024 / 22050
