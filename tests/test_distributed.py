"""`vj render --workers N`: chunks on local Ray workers, joined frame-exact with a one-process render;
a worker killed mid-chunk, a render stopped and resumed, and Ray missing."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, free_port, poll, read_video, run_vj, vj_cmd, write_wav

try:
    import ray  # noqa: F401
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="Ray (the [cluster] extra) is not installed: pip install -e '.[cluster]'")

SIZE = "96x64"
SLOW = """import time

def setup(p):
    p.keys = p.seeds([3, 5, 8, 13])
    p.kick = p.envelope(0.01, 0.3)

def frame(p, s):
    time.sleep(0.02)    # a slow patch: chunks take long enough to be interrupted
    k = p.kick(s.fired("audio.onset"))
    return p.controls(z=p.loop(p.keys, beats=8), feedback=0.6, brightness=0.2 * k)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Ray cluster on loopback that renders join with ``--ray ADDRESS``, as a studio's would be:
    one head for the module (a local ``--workers`` render starts and stops Ray itself: ~15 s)."""
    port = free_port()
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    log = tmp_path_factory.mktemp("ray") / "head.log"
    head = subprocess.Popen([sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())",
                             "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                             "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True)
    try:
        address = f"127.0.0.1:{port}"
        check = [sys.executable, "-c", "import ray, sys; ray.init(address=sys.argv[1], logging_level=40); "
                 "print(ray.cluster_resources().get('CPU'))", address]
        up = poll(lambda: subprocess.run(check, env=env, capture_output=True, text=True, timeout=60).stdout.strip(),
                  120, head, step=0.5, errors=(OSError, subprocess.TimeoutExpired))
        assert up == "2.0", log.read_text()[-3000:]
        yield address, env
    finally:
        head.terminate()      # --block: the head drains and stops its raylet and workers (a signal
        # to them all at once left it waiting out its 30 s drain)
        try:
            head.wait(timeout=15)
        finally:
            try:
                os.killpg(head.pid, signal.SIGKILL)   # and whatever of the group lingers
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    d = tmp_path_factory.mktemp("song")
    sr = 22050
    t = np.arange(int(3 * sr)) / sr
    rng = np.random.default_rng(3)
    y = 0.5 * np.exp(-((t % 0.5) / 0.04)) * rng.standard_normal(t.size) + 0.2 * np.sin(2 * np.pi * 220 * t)
    return write_wav(d / "song.wav", y, sr)


def frames_of(path):
    frames, info = read_video(path)
    return np.array(frames, np.float64), info


def psnr(a, b):
    mse = ((a - b) ** 2).mean(axis=tuple(range(1, a.ndim)))
    return 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12))


def render(out, audio, patch, *more, check=True, timeout=300, env=None):
    return run_vj("render", "--audio", audio, "--patch", patch, "--out", out, "--size", SIZE, "--quiet", *more,
                  check=check, timeout=timeout, env=env)


@needs_ray
def test_two_workers_render_what_one_process_renders(tmp_path, song, cluster):
    """klingemann (feedback trails, audio-driven) over two Ray workers against one process: as
    encoded on a local Ray the render starts itself (beside the running cluster, which it must not
    join), and lossless on that cluster (the model goes through its object store)."""
    patch = ROOT / "patches" / "klingemann.py"
    address, env = cluster
    for extra, spread in (((), ("--workers", "2")), (("--lossless",), ("--ray", address, "--workers", "2"))):
        one, two = tmp_path / f"one{len(extra)}.mp4", tmp_path / f"two{len(extra)}.mp4"
        render(one, song, patch, *extra)
        proc = render(two, song, patch, *spread, *extra, env=env)
        assert "over 2 workers" in proc.stderr, proc.stderr[-2000:]
        a, ia = frames_of(one)
        b, ib = frames_of(two)
        assert len(a) == len(b) == 90 and ia["times"] == ib["times"], (len(a), len(b))
        assert ib["audio"] == ia["audio"] == ["aac"]
        assert abs(ib["audio_duration"] - ia["audio_duration"]) < 0.03, (ia["audio_duration"], ib["audio_duration"])
        p = psnr(a, b)
        if extra:  # lossless: what was rendered, compared; the first chunk bit for bit
            assert p.min() > 45, p.min()   # measured 49.5 dB: feedback trails rounded to 8 bits
            assert np.array_equal(a[:30], b[:30])
        else:      # as encoded: chunks start on keyframes, so the encoder sees the same groups of pictures
            assert p.min() >= 40, p.min()
    assert not list(tmp_path.glob("*.chunks")), "the work folder is removed once joined"


def slow_render(tmp_path, song, name, address):
    """The one-process reference of the slow patch, and the command that renders it over two
    workers of the cluster at ``address``."""
    patch = tmp_path / "slow.py"
    patch.write_text(SLOW)
    out, ref = tmp_path / name, tmp_path / "ref.mp4"
    render(ref, song, patch, "--lossless")
    cmd = vj_cmd("render", "--audio", song, "--patch", patch, "--out", out, "--size", SIZE, "--quiet", "--lossless",
                 "--ray", address, "--workers", "2")
    return out, ref, cmd


def chunk_files(out, suffix):
    return sorted(out.parent.glob(f"{out.name}.chunks/*/chunk-*{suffix}"))


@needs_ray
def test_a_worker_killed_mid_chunk_is_retried_and_the_render_completes(tmp_path, song, cluster):
    address, env = cluster
    out, ref, cmd = slow_render(tmp_path, song, "killed.mp4", address)
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True, env=env)
    try:
        def running_chunk():
            for pid_file in chunk_files(out, ".pid"):
                progress = pid_file.with_suffix(".progress")
                if progress.exists() and int(progress.read_text() or 0) > 0 \
                        and not pid_file.with_suffix(".json").exists():
                    return int(pid_file.read_text())
            return None
        pid = poll(running_chunk, 120, proc, step=0.02)
        assert pid, "no chunk seen running"
        os.kill(pid, signal.SIGKILL)
        err = proc.communicate(timeout=300)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    a, _ = frames_of(ref)
    b, _ = frames_of(out)
    assert len(b) == len(a) == 90 and psnr(a, b).min() > 45


@needs_ray
def test_a_stopped_render_resumes_with_the_chunks_it_finished(tmp_path, song, cluster):
    address, env = cluster
    out, ref, cmd = slow_render(tmp_path, song, "resumed.mp4", address)
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert poll(lambda: chunk_files(out, ".json"), 120, proc, step=0.05), "no chunk finished"
        proc.send_signal(signal.SIGTERM)   # a service manager stopping it, or Ctrl-C
        err = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "the same command resumes" in err, err[-2000:]
    assert not out.exists() and chunk_files(out, ".mp4")
    again = run_vj(*cmd[3:], timeout=300, env=env)
    assert "resuming:" in again.stderr, again.stderr[-2000:]
    a, _ = frames_of(ref)
    b, _ = frames_of(out)
    assert len(b) == len(a) == 90 and psnr(a, b).min() > 45


def test_without_ray_the_flags_say_how_to_install_it(tmp_path, song):
    code = ("import sys; sys.modules['ray'] = None; from engine.cli import main; "
            f"sys.exit(main(['render', '--audio', {str(song)!r}, '--patch', 'drift', '--out', "
            f"{str(tmp_path / 'x.mp4')!r}, '--workers', '2']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "[cluster]" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "x.mp4").exists()


@needs_ray
def test_a_recorded_show_replays_over_workers_as_in_one_process(tmp_path, cluster):
    """`vj render --signals` too: the patch's versions, fader moves and cues reach each chunk."""
    from engine.session import Options, Session
    patch = tmp_path / "show.py"
    patch.write_text("def frame(p, s):\n    x = p.param('x', 0.0)\n"
                     "    return p.controls(z=p.walk(p.seeds([1, 2, 3]), x * 2 + p.time * 0.3), feedback=0.5, hue=x)\n")
    signals = tmp_path / "show.vjsig.gz"
    with Session(Options(patch=patch, size=(96, 64), fps=30, live=True, record_signals=signals)) as s:
        s.engine.clock.restart()
        for k in range(91):
            if k in (20, 50):
                s.dispatcher.dispatch("/vj/param/x", (k / 100,), None, source="osc")
            s.engine.render_frame()
            time.sleep(1 / 60)
    one, two = tmp_path / "one.mp4", tmp_path / "two.mp4"
    run_vj("render", "--signals", signals, "--out", one, "--quiet", "--lossless")
    proc = run_vj("render", "--signals", signals, "--out", two, "--quiet", "--lossless", "--ray", cluster[0],
                  "--workers", "2", env=cluster[1])
    assert "over 2 workers" in proc.stderr
    a, _ = frames_of(one)
    b, _ = frames_of(two)
    assert len(a) == len(b) == 90 and psnr(a, b).min() > 45


@needs_ray
def test_a_cluster_address_where_nothing_answers_is_said_at_once(tmp_path, song):
    out = tmp_path / "x.mp4"
    t0 = time.monotonic()
    proc = render(out, song, "drift", "--ray", f"127.0.0.1:{free_port()}", check=False, timeout=120)
    assert proc.returncode == 1 and "nothing answers there" in proc.stderr and "ray start --head" in proc.stderr
    assert "Traceback" not in proc.stderr and time.monotonic() - t0 < 60, proc.stderr[-2000:]
    assert not out.exists() and not (tmp_path / "x.mp4.chunks").exists()
