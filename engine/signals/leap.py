"""Leap Motion in: a client of the Leap WebSocket protocol v6 (leapd, LeapJS, and Ultraleap's
UltraleapTrackingWebSocket shim for Gemini), on its own daemon thread.

``LeapSource(sink, url).start()`` connects to ``ws://127.0.0.1:6437/v6.json``, reads the
server's ``{"version": N}`` greeting (6 expected; another version is logged and frames are
still parsed, since everything after v3 looks the same to us), asks for ``{"background": true}``
(frames keep coming while another application has the Leap's focus; the shim does this by
default, leapd does not) and ``{"enableGestures": false}``. With ``background=False`` it sends
``{"focused": true}`` instead. Every frame message becomes one dict in the frame schema
(``parse_frame``) and is passed to ``sink(frame)``; the hand tracker validates ranges again.
Device events (``{"event": ...}``) are counted and logged, not passed on.

Schema decisions:

- ``t`` is ``time.monotonic()`` when the message arrived. Leap's ``timestamp`` is microseconds
  since the tracking service started (not Unix time), so it is kept only as ``leap_us``.
- ``palm`` is ``palmPosition``, never ``stabilizedPalmPosition``: the stabilised position lags
  the hand by design, the tracker filters itself, and the shim does not send it anyway.
- ``tips`` come from the pointables whose ``handId`` is the hand's id, ordered thumb..pinky by
  ``type`` (0..4); when ``type`` is missing or odd, by ``id - handId*10`` (the shim's pointable
  id is ``handId*10 + finger``). A hand without all five fingers gets ``tips`` None (likewise
  ``extended``). Pointables' ``length`` and ``width`` are never read: the shim fills them wrongly.
- ``box`` is the ``interactionBox`` (center, size in mm), None where it is missing (the shim).
- ``gestures``, ``sphere*``, ``r/s/t``, ``grabAngle``, ``pinchDistance`` and arm data are ignored.

Ordering: within one connection a frame whose ``timestamp`` is earlier than the last one by
at most 1 s is a stale or repeated frame and is dropped (``stale``); one earlier by more than
1 s means the service's clock restarted, so it is accepted and becomes the new reference
(``clock_resets``). A new connection starts afresh.

Robustness: a message over 1 MiB makes websockets close the connection (1009), counted as
``oversize``; a message that is not a JSON object is ``bad_json``; a frame with the wrong
structure is ``bad_frames``; an exception from the sink is ``sink_errors``. A refused or failed
connection, a disconnect, or a server that sends nothing for ``silence`` seconds (a leapd
with no device still sends nothing, so this also re-knocks a stuck service) leads to a
reconnect after an exponentially growing delay (``reconnect=(start, max)``, times a random
0.5..1 jitter), reset to ``start`` once a connection has delivered a message. Nothing is
raised out of the thread; ``stop()`` cancels whatever it is doing and joins within 1 s.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import threading
import time
from collections import Counter

log = logging.getLogger("vj.leap")
logging.getLogger("websockets").setLevel(logging.WARNING)

DEFAULT_URL = "ws://127.0.0.1:6437/v6.json"
MAX_MESSAGE = 1 << 20  # 1 MiB; a Leap frame with two hands is a few kB
PROTOCOL_VERSION = 6
STALE_US = 1_000_000  # a timestamp this much earlier than the last one is a clock restart
_now = time.monotonic


# --------------------------------------------------------------------------- the conversion
def _num(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{what} is not a number: {type(v).__name__}")
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"{what} is not finite")
    return f


def _opt_num(d: dict, key: str, what: str):
    v = d.get(key)
    return None if v is None else _num(v, what)


def _vec3(v, what: str) -> list:
    if not isinstance(v, (list, tuple)) or len(v) != 3:
        raise ValueError(f"{what} is not a list of 3 numbers")
    return [_num(x, what) for x in v]


def _opt_vec3(d: dict, key: str, what: str):
    v = d.get(key)
    return None if v is None else _vec3(v, what)


def _int(v, what: str) -> int:
    if isinstance(v, bool):
        raise ValueError(f"{what} is not an integer")
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        return int(v)
    if not isinstance(v, int):
        raise ValueError(f"{what} is not an integer")
    return v


def _finger(p: dict, hand_id: int) -> int | None:
    """0 (thumb) .. 4 (pinky), or None for a pointable that is no finger of ours."""
    ftype = p.get("type")
    if isinstance(ftype, int) and not isinstance(ftype, bool) and 0 <= ftype <= 4:
        return ftype
    pid = p.get("id")
    if isinstance(pid, int) and not isinstance(pid, bool):
        f = pid - hand_id * 10  # the shim: id = handId*10 + finger
        if 0 <= f <= 4:
            return f
        if 0 <= pid % 10 <= 4:
            return pid % 10
    return None


def parse_frame(message: dict, t: float) -> dict:
    """One Leap v6 frame message (already decoded JSON) -> the frame schema. Checks structure
    and numbers only (no ranges); raises ValueError with the reason."""
    if not isinstance(message, dict):
        raise ValueError("frame is not an object")
    hands_in = message.get("hands")
    if not isinstance(hands_in, list):
        raise ValueError("hands is not a list")
    ts = message.get("timestamp")
    leap_us = None if ts is None else _num(ts, "timestamp")
    if leap_us is not None and leap_us == int(leap_us):
        leap_us = int(leap_us)

    pointables = message.get("pointables")
    if pointables is None:
        pointables = []
    if not isinstance(pointables, list):
        raise ValueError("pointables is not a list")

    hands = []
    for i, h in enumerate(hands_in):
        if not isinstance(h, dict):
            raise ValueError(f"hand {i} is not an object")
        if "id" not in h:
            raise ValueError(f"hand {i} has no id")
        hid = _int(h["id"], f"hand {i} id")
        if h.get("palmPosition") is None:
            raise ValueError(f"hand {hid} has no palmPosition")
        htype = h.get("type")
        hands.append({
            "id": hid,
            "type": htype if htype in ("left", "right") else None,
            "palm": _vec3(h["palmPosition"], f"hand {hid} palmPosition"),
            "velocity": _opt_vec3(h, "palmVelocity", f"hand {hid} palmVelocity"),
            "normal": _opt_vec3(h, "palmNormal", f"hand {hid} palmNormal"),
            "direction": _opt_vec3(h, "direction", f"hand {hid} direction"),
            "grab": _opt_num(h, "grabStrength", f"hand {hid} grabStrength"),
            "pinch": _opt_num(h, "pinchStrength", f"hand {hid} pinchStrength"),
            "tips": None,
            "extended": None,
            "time_visible": _opt_num(h, "timeVisible", f"hand {hid} timeVisible"),
        })

    by_id = {h["id"]: h for h in hands}
    fingers: dict[int, dict[int, tuple]] = {hid: {} for hid in by_id}
    for j, p in enumerate(pointables):
        if not isinstance(p, dict):
            raise ValueError(f"pointable {j} is not an object")
        if p.get("handId") is None:
            continue  # a tool or a pointable of no hand
        hid = _int(p["handId"], f"pointable {j} handId")
        if hid not in by_id:
            continue
        f = _finger(p, hid)
        if f is None or f in fingers[hid]:
            continue  # not a finger, or a duplicate: the first one wins
        if p.get("tipPosition") is None:
            raise ValueError(f"pointable {j} has no tipPosition")
        tip = _vec3(p["tipPosition"], f"pointable {j} tipPosition")
        ext = p.get("extended")
        fingers[hid][f] = (tip, ext if isinstance(ext, bool) else None)
    for hid, got in fingers.items():
        if len(got) == 5:
            h = by_id[hid]
            h["tips"] = [got[f][0] for f in range(5)]
            ext = [got[f][1] for f in range(5)]
            h["extended"] = ext if all(e is not None for e in ext) else None

    box = message.get("interactionBox")
    if box is not None:
        if not isinstance(box, dict):
            raise ValueError("interactionBox is not an object")
        box = {"center": _vec3(box.get("center"), "interactionBox center"),
               "size": _vec3(box.get("size"), "interactionBox size")}
    return {"t": t, "leap_us": leap_us, "hands": hands, "box": box}


# --------------------------------------------------------------------------- the client
class Stats(Counter):
    """Counts by kind: connects, disconnects, frames (passed to the sink), events, failures
    (connection attempts refused or failed), silent, and the problems below."""

    PROBLEMS = ("bad_json", "bad_frames", "oversize", "stale", "clock_resets", "sink_errors")

    def problems(self) -> int:
        return sum(self[k] for k in self.PROBLEMS)

    def summary(self) -> str:
        bad = ", ".join(f"{self[k]} {k.replace('_', ' ')}" for k in self.PROBLEMS if self[k])
        return (f"{self['frames']} frames, {self['connects']} connects"
                + (f", {self['disconnects']} drops" if self["disconnects"] else "")
                + (f", {self['silent']} silent" if self["silent"] else "")
                + (f" ({bad})" if bad else ""))


class LeapSource:
    """The Leap WebSocket v6 client thread. ``sink(frame)`` gets each frame (parse_frame's dict)
    on this thread. ``silence``: seconds without any message before reconnecting."""

    def __init__(self, sink, url: str = DEFAULT_URL, background: bool = True,
                 reconnect: tuple[float, float] = (0.5, 8.0), silence: float = 2.0,
                 open_timeout: float = 2.0):
        from websockets.uri import parse_uri
        parse_uri(url)  # a bad URL is an error now, not a retry loop forever
        if not callable(sink):
            raise TypeError("sink must be callable")
        start, most = float(reconnect[0]), float(reconnect[1])
        if not (0 < start <= most):
            raise ValueError("reconnect must be (start, max) with 0 < start <= max")
        self.sink, self.url, self.background = sink, url, bool(background)
        self.reconnect = (start, most)
        self.silence, self.open_timeout = float(silence), float(open_timeout)
        self.stats = Stats()
        self.connected = False
        self.version: int | None = None  # the last greeting's version
        self.last_error: str | None = None
        self.crashed: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._last_us = None
        self._delivered = False
        self._warned: set = set()

    def summary(self) -> str:
        return ("connected, " if self.connected else "not connected, ") + self.stats.summary()

    # --- lifecycle
    def start(self) -> "LeapSource":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="leap-ws", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop already closed
                pass
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("Leap client thread did not stop within %.1f s", timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as e:  # noqa: BLE001 - reported, never raised into the engine
            self.crashed = f"{type(e).__name__}: {e}"
            log.error("Leap client stopped: %s", self.crashed)
        finally:
            self.connected = False

    async def _main(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._stop.is_set():
            return
        waker = asyncio.create_task(self._wake.wait())
        runner = asyncio.create_task(self._reconnect_loop())
        await asyncio.wait({waker, runner}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waker, runner):
            task.cancel()
        await asyncio.wait({waker, runner}, timeout=0.5)

    # --- connections
    async def _reconnect_loop(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        start, most = self.reconnect
        delay = start
        while not self._stop.is_set():
            self._delivered = False
            try:
                async with connect(self.url, max_size=MAX_MESSAGE, open_timeout=self.open_timeout,
                                   close_timeout=0.3, ping_interval=None, compression=None,
                                   proxy=None, max_queue=64) as ws:
                    self.connected = True
                    self.stats["connects"] += 1
                    self._last_us = None
                    self._warned -= {"failure", "silent"}  # the next outage is reported again
                    log.info("Leap: connected to %s", self.url)
                    try:
                        await self._session(ws)
                    finally:
                        self.connected = False
                        self.stats["disconnects"] += 1
            except asyncio.CancelledError:
                raise
            except ConnectionClosed as e:
                sent = e.sent
                if sent is not None and sent.code == 1009:
                    self.stats["oversize"] += 1
                    self._warn("oversize", "Leap: message over %d bytes, reconnecting", MAX_MESSAGE)
                self.last_error = f"closed: {e}"
                log.info("Leap: connection closed (%s)", e)
            except Exception as e:  # noqa: BLE001 - refused, timed out, bad handshake...
                self.stats["failures"] += 1
                self.last_error = f"{type(e).__name__}: {e}"
                self._warn("failure", "Leap: cannot connect to %s (%s); retrying", self.url,
                           self.last_error)
            if self._stop.is_set():
                break
            if self._delivered:
                delay = start
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, most)

    async def _session(self, ws) -> None:
        first = True
        while not self._stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), self.silence)
            except asyncio.TimeoutError:
                self.stats["silent"] += 1
                self.last_error = f"silent for {self.silence:g} s"
                self._warn("silent", "Leap: no message for %.1f s, reconnecting", self.silence)
                return
            t = _now()
            self._delivered = True
            msg = self._decode(raw)
            if first:
                first = False
                await self._configure(ws, msg)
                if isinstance(msg, dict) and "version" in msg and "hands" not in msg:
                    continue
            if msg is None:
                continue
            if "event" in msg:
                self.stats["events"] += 1
                log.info("Leap: device event %s", str(msg["event"])[:200])
                continue
            if "version" in msg and "hands" not in msg:
                self._greeting(msg)
                continue
            self._frame(msg, t)

    def _decode(self, raw):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                self.stats["bad_json"] += 1
                return None
        try:
            msg = json.loads(raw)
        except ValueError:  # JSONDecodeError, and recursion limits come as RecursionError below
            msg = None
        except RecursionError:
            msg = None
        if not isinstance(msg, dict):
            self.stats["bad_json"] += 1
            self._warn("bad_json", "Leap: a message that is not a JSON object")
            return None
        return msg

    def _greeting(self, msg: dict) -> None:
        v = msg.get("version")
        self.version = v if isinstance(v, int) else None
        if v != PROTOCOL_VERSION:
            log.warning("Leap: server speaks protocol version %r, not %d; parsing frames anyway",
                        v, PROTOCOL_VERSION)

    async def _configure(self, ws, first_msg) -> None:
        if isinstance(first_msg, dict) and "version" in first_msg and "hands" not in first_msg:
            self._greeting(first_msg)
        else:
            log.warning("Leap: no version greeting from the server; assuming v6")
        want = [{"background": True}] if self.background else [{"focused": True}]
        want.append({"enableGestures": False})
        for m in want:
            await ws.send(json.dumps(m))

    def _frame(self, msg: dict, t: float) -> None:
        try:
            frame = parse_frame(msg, t)
        except (ValueError, TypeError) as e:
            self.stats["bad_frames"] += 1
            self._warn("bad_frames", "Leap: bad frame (%s)", e)
            return
        us = frame["leap_us"]
        if us is not None:
            last = self._last_us
            if last is not None and us < last:
                if last - us <= STALE_US:
                    self.stats["stale"] += 1
                    return
                self.stats["clock_resets"] += 1
                log.info("Leap: frame clock went back %.1f s; taking it as a restart",
                         (last - us) / 1e6)
            self._last_us = us
        try:
            self.sink(frame)
        except Exception as e:  # noqa: BLE001 - the sink's problem, never this thread's end
            self.stats["sink_errors"] += 1
            self._warn("sink", "Leap: sink raised %s: %s", type(e).__name__, e)
            return
        self.stats["frames"] += 1

    def _warn(self, kind: str, fmt: str, *args) -> None:
        """The first of each kind is a warning, the rest debug: a stream of 100 bad frames a
        second must not flood the log."""
        if kind in self._warned:
            log.debug(fmt, *args)
        else:
            self._warned.add(kind)
            log.warning(fmt, *args)
