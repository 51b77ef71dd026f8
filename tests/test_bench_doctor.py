"""`vj bench` and `vj doctor` through the CLI. Benchmarks report; they never assert speed."""
import json

from conftest import run_vj


def test_bench_prints_table_and_writes_json(tmp_path, env_no_display):
    out = tmp_path / "bench.json"
    proc = run_vj("bench", "--frames", "20", "--size", "320x180", "--json", out, env=env_no_display)
    result = json.loads(out.read_text())
    for key in ("device", "precision", "model", "size", "loop_fps", "generator_fps"):
        assert key in result
    assert result["size"] == "320x180" and result["model"] == "digiface64"
    assert result["precision"] == "fp32" and result["device"].startswith("cpu")
    assert result["loop_fps"] > 0 and result["generator_fps"] > 0
    assert "whole loop" in proc.stdout and "vs generator" in proc.stdout and result["device"] in proc.stdout
    # serial and pipelined side by side, with latency followed from real OSC datagrams
    for key in ("loop_fps_serial", "frame_ms_p50", "frame_ms_p99", "input_to_frame_ms_p50", "input_to_frame_ms_p99",
                "display_path", "machine", "gen_ms", "latency_bound_ms"):
        assert key in result, key
    assert result["display_path"] == "pbo" and result["loop_fps_serial"] > 0
    assert result["latency_samples"] > 0 and 0 < result["input_to_frame_ms_p50"] <= result["input_to_frame_ms_p99"]
    assert "pipelined / serial" in proc.stdout and "display   pbo" in proc.stdout


def test_doctor(env_no_display):
    proc = run_vj("doctor", env=env_no_display)
    assert "opengl" in proc.stdout and "libx264 yes" in proc.stdout and "digiface64 loads" in proc.stdout


def test_bench_audio_reports_the_cost_per_block(tmp_path, env_no_display):
    """`vj bench --audio FILE`: every feature against the analysis without the beat
    tracker, measured in the same run, with the machine; a bad file is one clear line."""
    import numpy as np
    import soundfile as sf
    wav = tmp_path / "clicks.wav"
    y = np.zeros(44100 * 4, np.float32)
    y[::22050] = 0.8
    sf.write(str(wav), y, 44100)
    out = tmp_path / "audio.json"
    proc = run_vj("bench", "--audio", wav, "--json", out, env=env_no_display)
    r = json.loads(out.read_text())
    assert r["blocks"] == len(y) // 512 and r["median_us"] > 0 and r["baseline_median_us"] > 0
    assert "x the baseline" in proc.stdout and r["machine"] in proc.stdout
    bad = run_vj("bench", "--audio", tmp_path / "missing.wav", check=False, env=env_no_display)
    assert bad.returncode == 2 and "missing.wav" in bad.stderr and "Traceback" not in bad.stderr
