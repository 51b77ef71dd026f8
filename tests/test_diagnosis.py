"""Diagnosis a newcomer can act on: `vj doctor` and `vj devices` with a system library really
missing, no raw library warning on the console, and OSCQuery when the OSC port is taken.

PortAudio is hidden the way a machine without ``libportaudio2`` looks, not by patching
sounddevice: in a private mount namespace (``unshare --mount``, root) the library file is
covered by an empty one and the dynamic loader's cache is rebuilt without it, so
``ctypes.util.find_library`` (what sounddevice asks) finds nothing. The host's files are not
touched; the mounts end with the process.
"""
import asyncio
import json
import os
import shlex
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, run_vj, vj_cmd, wait_for

RAW = ("GLFWError", "Traceback", "warnings.warn")


def portaudio_file() -> Path | None:
    """The PortAudio library the loader would find, resolved through its symlinks."""
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return None
    for line in out.splitlines():
        if "libportaudio.so" in line and "=>" in line:
            return Path(line.split("=>", 1)[1].strip()).resolve()
    return None


def without_portaudio(tmp_path, *commands: list[str], env: dict) -> subprocess.CompletedProcess:
    """Run ``commands`` (vj argument lists) in one shell where PortAudio is not installed."""
    lib = portaudio_file()
    if lib is None:
        pytest.skip("PortAudio is not installed here, so there is nothing to hide")
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("hiding a library needs root and unshare (a private mount namespace)")
    empty, cache = tmp_path / "empty", tmp_path / "ld.so.cache"
    empty.write_bytes(b"")
    # ldconfig -X: no links are made or changed in the real library folders; -C: the cache goes
    # to our file, which then covers the system's in this namespace only
    script = [f"mount --bind {empty} {lib}", f"ldconfig -X -C {cache} 2>/dev/null",
              f"mount --bind {cache} /etc/ld.so.cache", "set +e"]
    for args in commands:
        script.append(shlex.join(vj_cmd(*args)) + "; echo \"rc=$?\"")
    proc = subprocess.run(["unshare", "--mount", "sh", "-ec", "\n".join(script)], capture_output=True,
                          text=True, timeout=240, env=env, cwd=Path(__file__).resolve().parent.parent)
    if proc.returncode != 0 and "mount" in proc.stderr and "rc=" not in proc.stdout:
        pytest.skip(f"no private mounts here: {proc.stderr.strip()[-200:]}")
    return proc


def test_doctor_and_devices_name_the_missing_portaudio(tmp_path, env_no_display):
    env = {**env_no_display, "VJ_STATE": str(tmp_path / "state")}
    proc = without_portaudio(tmp_path, ["doctor"], ["devices"], env=env)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    audio = [line for line in out.splitlines() if line.startswith("audio")]
    assert len(audio) == 2, out  # doctor's line and devices'
    for line in audio:
        assert "MISSING PortAudio (PortAudio library not found)" in line, line
        assert "the show runs silent" in line and "fix: sudo apt install libportaudio2" in line
    # the rest of the doctor still reports, and the show could still run: exit 0
    assert "rc=0\n" in out and out.count("rc=0") == 2, out
    assert "opengl" in out and "digiface64 loads" in out
    assert not any(r in out + proc.stderr for r in RAW)


def test_doctor_tells_no_sound_hardware_from_no_portaudio(env_no_display):
    """With PortAudio there, the audio line never says it is missing (0 devices or some)."""
    if portaudio_file() is None:
        pytest.skip("PortAudio is not installed here")
    proc = run_vj("devices", env=env_no_display)
    line = proc.stdout.splitlines()[0]
    assert "MISSING" not in line and ("PortAudio V" in line or line == "audio devices:"), line


def test_devices_without_a_display_says_so_plainly(env_no_display):
    proc = run_vj("devices", env=env_no_display)
    both = proc.stdout + proc.stderr
    assert not any(r in both for r in RAW), both
    line = next(x for x in proc.stdout.splitlines() if x.startswith("monitors"))
    assert "no display (DISPLAY is not set)" in line and "--headless" in line and "xvfb-run" in line


def test_devices_with_a_display_that_is_not_there(env_no_display):
    """A DISPLAY naming no X server: GLFW's own error, in words, once; no warning lines."""
    n = next(n for n in range(97, 200) if not os.path.exists(f"/tmp/.X11-unix/X{n}"))
    proc = run_vj("devices", env={**env_no_display, "DISPLAY": f":{n}"})
    both = proc.stdout + proc.stderr
    assert not any(r in both for r in RAW), both
    line = next(x for x in proc.stdout.splitlines() if x.startswith("monitors"))
    assert f"cannot open display :{n}" in line and f"Failed to open display :{n}" in line, line
    assert "--headless" in line


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed")
def test_devices_lists_the_monitor_of_a_virtual_display(env_no_display):
    proc = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 800x600x24", *vj_cmd("devices")],
                          capture_output=True, text=True, timeout=120, env=env_no_display)
    lines = proc.stdout.splitlines()
    i = lines.index("monitors:")
    assert "800x600" in lines[i + 1], proc.stdout
    assert not any(r in proc.stdout + proc.stderr for r in RAW)


def test_oscquery_starts_when_the_osc_port_is_taken(tmp_path, caplog):
    """Another program holds the OSC UDP port: OSC in says why and the fix, OSCQuery still
    serves on its own port, and OSC sent over its WebSocket reaches the bus."""
    from pythonosc.osc_message_builder import OscMessageBuilder
    from websockets.asyncio.client import connect

    from engine.render.gl import headless_context
    from engine.session import ControlOptions, Options, Session
    patch = tmp_path / "p.py"
    patch.write_text("def frame(p, s):\n    return p.controls(z=p.seed(1))\n")
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", 0))
    taken, q = holder.getsockname()[1], free_port()
    ctx = headless_context()
    caplog.set_level("INFO", logger="vj")
    try:
        with Session(Options(patch=patch, size=(32, 32), live=False, ctx=ctx,
                             control=ControlOptions(osc_port=taken, oscquery_port=q, midi=None,
                                                    mappings=tmp_path / "m.toml"))) as s:
            assert s.osc_in is None and s.oscquery is not None and s.oscquery.port == q
            said = "\n".join(r.getMessage() for r in caplog.records)
            assert f"OSC in not started (127.0.0.1:{taken}" in said and "fix: --osc-port N" in said
            assert f"OSCQuery on http://127.0.0.1:{q}/ (OSC over its WebSocket only" in said
            with urllib.request.urlopen(f"http://127.0.0.1:{q}/?HOST_INFO", timeout=5) as r:
                info = json.loads(r.read())
            assert info["WS_PORT"] == q and info.get("OSC_PORT") in (None, 0)

            async def send():
                b = OscMessageBuilder("/fader/1")
                b.add_arg(0.25)
                async with connect(f"ws://127.0.0.1:{q}/") as ws:
                    await ws.send(b.build().dgram)
            asyncio.run(send())
            assert wait_for(lambda: s.bus.peek("osc./fader/1") == pytest.approx(0.25))
    finally:
        holder.close()
        ctx.release()


def test_oscquery_port_taken_says_why_and_the_fix(tmp_path, caplog):
    from engine.render.gl import headless_context
    from engine.session import ControlOptions, Options, Session
    patch = tmp_path / "p.py"
    patch.write_text("def frame(p, s):\n    return p.controls(z=p.seed(1))\n")
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    q = holder.getsockname()[1]
    ctx = headless_context()
    caplog.set_level("INFO", logger="vj")
    try:
        with Session(Options(patch=patch, size=(32, 32), live=False, ctx=ctx,
                             control=ControlOptions(osc_port=0, oscquery_port=q, midi=None,
                                                    mappings=tmp_path / "m.toml"))) as s:
            assert s.osc_in is not None and s.oscquery is None
            said = "\n".join(r.getMessage() for r in caplog.records)
            assert f"OSCQuery not started (port {q}" in said and "fix: --oscquery-port N" in said
            s.engine.render_frame()  # and the show goes on
    finally:
        holder.close()
        ctx.release()
