"""``vj doctor``: what works on this machine; for what does not, why and the fix (one line
each, engine/diagnosis.py). Exits 1 only when vj cannot run (no OpenGL, PyAV or model)."""
from __future__ import annotations

from engine import diagnosis
from engine.session import ControlOptions, SessionError, load_model

DEFAULT_OSC_PORT = ControlOptions.osc_port
DEFAULT_OSCQUERY_PORT = ControlOptions.oscquery_port


def main(args) -> int:
    import platform

    import torch
    print(f"python     {platform.python_version()} on {platform.machine()}")
    print(f"torch      {torch.__version__}, CUDA {'available: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'not available (CPU fp32)'}")
    checks = [diagnosis.opengl(), diagnosis.display(), diagnosis.video(), diagnosis.audio()]
    for c in checks:
        print(c.line)
    ok = all(c.status != diagnosis.FAIL for c in checks)
    try:
        g = load_model(None)
        print(f"model      default {g.info.name} loads ({g.parameter_count():,} parameters)")
    except SessionError as e:
        ok = False
        print(f"model      FAILED: {e}")
    rig_ok, lines = control_lines()
    for line in lines:
        print(line)
    return 0 if ok and rig_ok else 1


def control_lines() -> tuple[bool, list[str]]:
    """Can the control plane's ports open, is MIDI there."""
    import socket
    lines = []
    ok = True
    for name, port, kind in (("osc", DEFAULT_OSC_PORT, socket.SOCK_DGRAM),
                             ("oscquery", DEFAULT_OSCQUERY_PORT, socket.SOCK_STREAM)):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
            lines.append(f"{name:10s} port {port} free on 127.0.0.1")
        except OSError as e:
            lines.append(f"{name:10s} port {port} busy ({e.strerror}: another program, maybe a vj, holds it): "
                         f"vj run goes on without it; fix: --{name}-port N")
        finally:
            s.close()
    try:
        import websockets
        lines.append(f"{'websockets':10s} {websockets.__version__} (OSCQuery LISTEN)")
    except ImportError:
        ok = False
        lines.append(f"{'websockets':10s} MISSING (not installed): no OSCQuery; fix: pip install websockets")
    lines.append(diagnosis.midi().line)
    lines.append(diagnosis.link().line)
    return ok, lines
