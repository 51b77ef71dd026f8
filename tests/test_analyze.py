"""`vj analyze`: the features as CSV (real-time path per block, offline path per frame)
and a plot, through the real command; and `vj run` reporting audio-to-frame latency."""
from __future__ import annotations

import re

import numpy as np
import pytest

from audio_synth import SR, click_track, f_measure, tone
from conftest import run_vj, write_wav
from engine.signals.analyze import COLUMNS, read_csv


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """Clicks at 120 bpm over a steady A (440 Hz), 10 s."""
    y, clicks = click_track(120, seconds=10.0, first=0.25)
    y = y + tone(69, 10.0, amp=0.1)
    path = write_wav(tmp_path_factory.mktemp("an") / "song.wav", y, SR)
    return path, y, clicks


def test_realtime_csv_and_plot(song, tmp_path):
    path, y, clicks = song
    csv, png = tmp_path / "f.csv", tmp_path / "f.png"
    proc = run_vj("analyze", path, "--out", csv, "--plot", png, timeout=120)
    header = csv.read_text().splitlines()[0].split(",")
    assert header == list(COLUMNS)
    assert header[:14] == ["time", "rms", "low", "mid", "high", "flux", "onset", "kick", "snare", "hat",
                           "centroid", "bpm", "beat", "beat_phase"]
    t = read_csv(csv)
    assert len(t["time"]) == len(y) // 512
    assert np.allclose(np.diff(t["time"]), 512 / SR, atol=2e-6)      # written to the microsecond
    for e in ("onset", "kick", "snare", "hat", "beat"):
        assert set(np.unique(t[e])) <= {0.0, 1.0}
    assert f_measure(t["time"][t["onset"] == 1], clicks, 0.030)[0] >= 0.95
    assert t["bpm"][-1] == pytest.approx(120, rel=0.02)
    chroma = np.stack([t[f"chroma_{i}"] for i in range(12)], axis=1)
    assert np.all(np.argmax(chroma[50:], axis=1) == 9)             # A
    m = re.search(r"analysis median ([\d.]+) ms, p99 ([\d.]+) ms", proc.stderr)
    assert m, proc.stderr
    print(f"\nvj analyze, 10 s in blocks of 512: median {m.group(1)} ms, p99 {m.group(2)} ms per block")
    from PIL import Image
    with Image.open(png) as im:
        assert im.size[0] > 800 and im.size[1] > 600


def test_offline_csv_one_row_per_frame(song, tmp_path):
    path, y, clicks = song
    csv = tmp_path / "o.csv"
    run_vj("analyze", path, "--offline", "--fps", "25", "--out", csv, timeout=180)
    t = read_csv(csv)
    assert list(t) == list(COLUMNS)
    assert len(t["time"]) == round(len(y) / SR * 25)
    assert np.allclose(t["time"], np.arange(len(t["time"])) / 25, atol=2e-6)
    onset_frames = np.flatnonzero(t["onset"])
    assert len(onset_frames) >= len(clicks) - 1
    assert set(onset_frames) <= set(np.ceil(np.round(clicks * 25, 6)).astype(int))
    beats = np.flatnonzero(t["beat"])
    assert len(beats) >= len(clicks) - 3
    assert np.median(t["bpm"][t["bpm"] > 0]) == pytest.approx(120, rel=0.02)


def test_analyze_errors(tmp_path):
    proc = run_vj("analyze", tmp_path / "missing.wav", "--out", tmp_path / "x.csv", check=False)
    assert proc.returncode == 2 and "not found" in proc.stderr
    wav = write_wav(tmp_path / "a.wav", np.zeros(SR, np.float32), SR)
    proc = run_vj("analyze", wav, check=False)
    assert proc.returncode == 2 and "--out" in proc.stderr


def test_run_reports_audio_to_frame_latency(tmp_path, env_no_display):
    """Audio blocks carry their capture time into the bus, so a live run measures how old
    the newest audio a frame used is when the frame is ready."""
    y, _ = click_track(120, seconds=6.0)
    wav = write_wav(tmp_path / "clicks.wav", y, SR)
    proc = run_vj("run", "patches/klingemann.py", "--headless", "--audio", wav, "--mute", "--block", "256",
                  "--follow-audio-tempo", "--frames", "90", "--size", "96x64", "--fps", "30",
                  env=env_no_display)
    lat = [float(x) for x in re.findall(r"input latency (\d+) ms", proc.stderr)]
    assert lat, proc.stderr
    print(f"\naudio-to-frame latency (headless, 96x64, block 256): {lat[-1]:.0f} ms")
    assert 0 <= lat[-1] < 500


def test_a_float_file_with_nan_inf_and_huge_samples_is_analysed_after_them(tmp_path):
    """A damaged or hostile float WAV (NaN, inf, 1e30 early on): said once, and the analysis,
    live and offline, hears the clicks after it (nothing stays NaN)."""
    import soundfile as sf
    y, clicks = click_track(120, seconds=16.0)
    y = y.astype(np.float32)
    y[SR:SR + 2000] = np.nan
    y[2 * SR:2 * SR + 50] = np.inf
    y[3 * SR:3 * SR + 300] = 1e30
    path = tmp_path / "bad.wav"
    sf.write(str(path), y, SR, subtype="FLOAT")
    for extra in ((), ("--offline",)):
        csv = tmp_path / f"bad{len(extra)}.csv"
        proc = run_vj("analyze", path, *extra, "--out", csv, timeout=180)
        assert proc.stderr.count("samples that are not numbers") == 1, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        t = read_csv(csv)
        assert all(np.isfinite(t[c]).all() for c in t), [c for c in t if not np.isfinite(t[c]).all()]
        late = clicks[clicks > 8.0]
        assert f_measure(t["time"][(t["onset"] == 1) & (t["time"] > 7.9)], late, 0.045)[0] >= 0.9
        assert np.median(t["bpm"][t["time"] > 10]) == pytest.approx(120, rel=0.02)
