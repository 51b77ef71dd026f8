"""``vj run --hands SOURCE``: which hand source a spec names, and opening it.

Specs (several ``--hands`` may run at once; every source feeds the one ``HandTracker``):

- ``leap`` or ``leap:ws://HOST:PORT/v6.json``: the Leap Motion WebSocket protocol v6, as a
  client (``leap.py``; the original service or Ultraleap's tracking-WebSocket shim);
- ``osc`` or ``osc:PORT`` or ``osc:PORT:PRESET``: OSC hands on their own UDP port (default
  9002), presets ``vj``, ``touchdesigner``, ``mediapipe`` (``hand_osc.py``);
- ``replay:FILE``: a hand recording (``--record-hands``), replayed at its own pace from the
  show's first frame, looping (``hand_record.py``), so a piece can be rehearsed without a sensor.

``parse`` checks a spec at the edge (the command line) and says what is wrong with it.
"""
from __future__ import annotations

from pathlib import Path

KINDS = ("leap", "osc", "replay")
OSC_PORT = 9002


def parse(spec: str) -> tuple[str, str | None]:
    """``(kind, argument)`` or ValueError naming what is wrong."""
    kind, _, arg = str(spec).partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise ValueError(f"{spec!r}: a hand source is leap[:URL], osc[:PORT[:PRESET]] or replay:FILE")
    if kind == "replay":
        if not arg:
            raise ValueError("replay: needs a file: replay:FILE")
        if not Path(arg).is_file():
            raise ValueError(f"replay: {arg}: no such file")
    if kind == "leap" and arg and not arg.startswith(("ws://", "wss://")):
        raise ValueError(f"leap: {arg!r} is not a ws:// or wss:// address")
    if kind == "osc" and arg:
        port, _, preset = arg.partition(":")
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"osc: {port!r} is not a port number")
        if preset and preset not in ("vj", "touchdesigner", "mediapipe"):
            raise ValueError(f"osc: no preset {preset!r} (vj, touchdesigner, mediapipe)")
    return kind, arg or None


def parse_box(text: str) -> dict:
    """``--hands-box CX,CY,CZ,W,H,D`` (mm): the interaction box hand positions are normalised
    in, or ValueError."""
    import math
    try:
        v = [float(x) for x in str(text).split(",")]
    except ValueError:
        raise ValueError(f"{text!r}: six numbers in mm, CX,CY,CZ,W,H,D") from None
    if len(v) != 6 or not all(math.isfinite(x) for x in v):
        raise ValueError(f"{text!r}: six finite numbers in mm, CX,CY,CZ,W,H,D")
    if any(abs(x) > 2000 for x in v[:3]) or not all(1 <= x <= 4000 for x in v[3:]):
        raise ValueError(f"{text!r}: the centre within 2 m of the sensor, each size 1..4000 mm")
    return {"center": v[:3], "size": v[3:]}


def open_source(spec: str, sink):
    """The source for ``spec``, feeding ``sink`` (``HandTracker.push`` or a tee); it has
    ``start()``, ``stop()`` and ``stats``. Live sources are started (a busy port fails here); a
    replay is not: the show starts it with its first frame, so the recording's time 0 is the
    show's."""
    kind, arg = parse(spec)
    if kind == "leap":
        from engine.signals.leap import DEFAULT_URL, LeapSource
        return LeapSource(sink, url=arg or DEFAULT_URL).start()
    if kind == "osc":
        from engine.signals.hand_osc import HandOscIn
        port, _, preset = (arg or "").partition(":")
        return HandOscIn(sink, port=int(port) if port else OSC_PORT, preset=preset or "vj").start()
    from engine.signals.hand_record import HandReplay
    return HandReplay(sink, arg, loop=True)
