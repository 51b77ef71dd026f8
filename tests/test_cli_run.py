"""`vj run` as a user runs it: headless, recording, on the built-in model."""
import os
import signal
import subprocess
import time

import numpy as np

from conftest import ROOT, frame_motion, read_video, run_vj, vj_cmd


def test_drift_headless_240_frames_keep_changing(tmp_path, env_no_display):
    out = tmp_path / "out.mp4"
    proc = run_vj("run", "patches/drift.py", "--headless", "--frames", "240", "--record", out,
                  "--size", "320x180", "--fps", "60", env=env_no_display)
    assert "recording closed" in proc.stderr
    frames, info = read_video(out)
    assert len(frames) == 240
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == (320, 180)
    motion = frame_motion(frames)
    # every stretch of the video moves: no frozen pair of consecutive frames
    assert motion.min() > 0.02, motion.min()
    assert motion.mean() > 0.3
    # and it is a face-ish picture, not a black or flat screen
    assert 20 < frames[0].mean() < 235 and frames[0].std() > 10


def test_timestamps_follow_real_frame_rate(tmp_path, env_no_display):
    out = tmp_path / "t.mp4"
    run_vj("run", "--headless", "--frames", "45", "--record", out, "--size", "160x90", "--fps", "30",
           env=env_no_display)
    frames, info = read_video(out)
    assert len(frames) == 45
    times = np.array(info["times"])
    assert abs(info["fps"] - 30) < 0.01
    # live timestamps: increasing, on the 1/30 s grid, ~1.5 s in total (gaps only for dropped frames)
    assert np.all(np.diff(times) > 0)
    assert np.allclose(times * 30, np.round(times * 30), atol=1e-3)
    assert 44 / 30 - 1e-6 <= times[-1] < 3.0


def test_ctrl_c_and_kill_leave_playable_recordings(tmp_path, env_no_display):
    shows = {}
    for sig, name in ((signal.SIGINT, "int"), (signal.SIGKILL, "kill")):      # side by side
        out = tmp_path / f"{name}.mp4"
        shows[name] = sig, out, subprocess.Popen(
            vj_cmd("run", "--headless", "--record", out, "--size", "160x90", "--fps", "30"),
            cwd=ROOT, env=env_no_display, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for name, (sig, out, p) in shows.items():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (out.exists() and out.stat().st_size > 20000):
            time.sleep(0.2)
    time.sleep(3.0)
    for name, (sig, out, p) in shows.items():
        p.send_signal(sig)
    for name, (sig, out, p) in shows.items():
        _, err = p.communicate(timeout=30)
        frames, _ = read_video(out)
        # at least the completed seconds before the signal are in the file
        assert len(frames) >= 60, (name, len(frames), err[-2000:])
        if sig == signal.SIGINT:
            assert "recording closed" in err


def test_missing_patch_is_a_clear_error(env_no_display):
    proc = run_vj("run", "no/such/patch.py", "--headless", "--frames", "1", check=False, env=env_no_display)
    assert proc.returncode != 0
    assert "patch not found" in proc.stderr


def test_corrupt_model_falls_back_to_default(tmp_path, env_no_display):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(os.urandom(4096))
    out = tmp_path / "fallback.mp4"
    proc = run_vj("run", "--model", bad, "--headless", "--frames", "10", "--record", out, "--size", "160x90",
                  env=env_no_display)
    assert "broken.safetensors" in proc.stderr and "falling back to the default model" in proc.stderr
    frames, _ = read_video(out)
    assert len(frames) == 10


def test_live_audio_file_drives_pulse(tmp_path, env_no_display):
    from test_render import SR, quiet_then_loud
    from conftest import write_wav
    # live analysis has automatic gain (a -50 dB passage heard alone is lifted to full
    # scale), so the quiet part here is near-silence, under the gain's -60 dB floor
    wav = write_wav(tmp_path / "song.wav", quiet_then_loud(4.0, quiet_level=1e-4), SR)
    out = tmp_path / "live.mp4"
    proc = run_vj("run", "patches/pulse.py", "--headless", "--audio", wav, "--mute", "--frames", "240",
                  "--record", out, "--size", "160x120", "--fps", "30", env=env_no_display)
    frames, info = read_video(out)
    times = np.array(info["times"])
    motion = frame_motion(frames)
    # the audio starts with the engine: quiet for 4 s, then loud
    quiet = motion[(times[1:] > 0.5) & (times[1:] < 3.5)].mean()
    loud = motion[(times[1:] > 4.5) & (times[1:] < 7.5)].mean()
    assert loud > 3 * quiet, (quiet, loud, proc.stderr[-1500:])


def test_unwritable_recording_path_is_a_clear_error(tmp_path, env_no_display):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run_vj("run", "--headless", "--frames", "3", "--record", blocker / "x.mp4", check=False,
                  env=env_no_display)
    assert proc.returncode == 2 and "cannot record" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_audio_file_runs_on_silence(tmp_path, env_no_display):
    out = tmp_path / "s.mp4"
    proc = run_vj("run", "patches/pulse.py", "--headless", "--audio", tmp_path / "gone.wav", "--frames", "20",
                  "--record", out, "--size", "96x64", env=env_no_display)
    assert "running on silence" in proc.stderr
    assert len(read_video(out)[0]) == 20
