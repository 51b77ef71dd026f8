"""``vj doctor``: what works on this machine."""
from __future__ import annotations

from engine.session import ControlOptions, SessionError, load_model

DEFAULT_OSC_PORT = ControlOptions.osc_port
DEFAULT_OSCQUERY_PORT = ControlOptions.oscquery_port


def main(args) -> int:
    import platform

    import torch
    ok = True
    print(f"python     {platform.python_version()} on {platform.machine()}")
    print(f"torch      {torch.__version__}, CUDA {'available: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'not available (CPU fp32)'}")
    try:
        from engine.render.gl import describe, headless_context
        ctx = headless_context()
        print(f"opengl     {describe(ctx)} (headless EGL)")
        ctx.release()
    except Exception as e:  # noqa: BLE001
        ok = False
        print(f"opengl     FAILED: {e}")
    try:
        import av
        print(f"video      PyAV {av.__version__}, libx264 {'yes' if 'libx264' in av.codecs_available else 'NO'}")
    except Exception as e:  # noqa: BLE001
        ok = False
        print(f"video      FAILED: {e}")
    from engine.signals import audio
    print(f"audio      {len(audio.list_devices())} devices")
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
            lines.append(f"{name:10s} port {port} busy ({e.strerror}); use --{name}-port")
        finally:
            s.close()
    try:
        import websockets
        lines.append(f"{'websockets':10s} {websockets.__version__} (OSCQuery LISTEN)")
    except ImportError:
        ok = False
        lines.append(f"{'websockets':10s} MISSING: pip install websockets")
    from engine.signals.midi import MidoBackend
    try:
        names = MidoBackend().get_input_names()
        lines.append(f"{'midi':10s} {len(names)} input{'' if len(names) == 1 else 's'}"
                     + (f": {', '.join(names)}" if names else ""))
    except Exception as e:  # noqa: BLE001
        lines.append(f"{'midi':10s} unavailable ({type(e).__name__}: {str(e)[:80]})")
    return ok, lines
