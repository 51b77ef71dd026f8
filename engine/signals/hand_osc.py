"""OSC hand input: hand data over OSC/UDP on its own port becomes hand frames for a sink.

``HandOscIn(sink, port=9002, bind="127.0.0.1", preset="vj").start()`` runs a daemon thread
(``hands-osc:<port>``) that receives OSC datagrams, converts them into the hand-frame schema of
:mod:`engine.signals.hands` (validated with :func:`~engine.signals.hands.check_frame`) and hands
each frame to ``sink.push(frame, source)`` (a :class:`~engine.signals.hands.HandTracker`) or
``sink(frame)`` (any callable).

Frames. A frame is one OSC bundle (the timetag is ignored; nested bundles count as the outer
one), or, for messages sent without a bundle, the messages up to ``/hands/end`` (no arguments;
it also ends a frame inside a bundle, and ``/hands/end`` alone is a frame with no hands). An
address that repeats before the frame has ended starts a new frame. The ``touchdesigner`` and
``mediapipe`` presets also end an unbundled frame 4 ms (``window``) after its first message.
A frame's ``t`` is ``time.monotonic()`` when its first datagram arrived. A hand side that is
absent from a frame is not visible in it.

Preset ``vj`` (ours). ``<side>`` is ``left`` or ``right``; positions are mm in Leap axes
(+x right, +y up, +z toward the user, origin at the device):

- ``/hands/<side>/palm x y z``          palm position, mm (required for the side to be present)
- ``/hands/<side>/velocity vx vy vz``   mm/s
- ``/hands/<side>/normal x y z``        palm normal, unit (down from the palm)
- ``/hands/<side>/direction x y z``     palm -> fingers, unit
- ``/hands/<side>/grab g``, ``/hands/<side>/pinch p``   0..1
- ``/hands/<side>/tips`` 15 floats      fingertips x y z, thumb..pinky, mm
- ``/hands/<side>/extended`` 5 ints     1 = finger extended, thumb..pinky
- ``/hands/<side>/time_visible s``      seconds
- ``/hands/<side>/id i``                optional hand id (default 0 left, 1 right)
- ``/hands/box cx cy cz w h d``         optional interaction box, mm
- ``/hands/end``                        ends a frame sent as loose messages

Preset ``touchdesigner``: the Leap Motion CHOP's channels sent by an OSC Out CHOP, one value
per message, address = ``/`` + channel name. Channel names vary by TouchDesigner version; the
ones accepted (hand prefix ``<h>`` = ``hand0``..``hand3``, or ``r`` / ``l`` with "Named Hands"):

- ``/<h>:tx|ty|tz``  palm position, taken as mm (the CHOP's default units; scale first with a
  Math CHOP if yours are not mm). All three are required for the hand to be present.
- ``/<h>:vx|vy|vz``  palm velocity, mm/s
- ``/<h>:rx|ry|rz``  degrees, assumed ``rx`` = pitch, ``ry`` = yaw, ``rz`` = roll with Leap's
  definitions (pitch = atan2(dir.y, -dir.z), yaw = atan2(dir.x, -dir.z), roll = atan2(n.x, -n.y)).
  They become direction = normalise(sin(yaw)cos(pitch), sin(pitch)cos(yaw), -cos(pitch)cos(yaw))
  (exact for |pitch|, |yaw| < 90 degrees) and normal = (sin(roll), -cos(roll), 0), so the
  tracker's pitch/yaw/roll reproduce the sent angles; direction needs rx and ry, normal rz.
- ``/<h>:grabstrength|grab_strength|grab``, ``/<h>:pinchstrength|pinch_strength|pinch``  0..1
- ``/<h>:timevisible|time_visible``  seconds
- ``/<h>:tracking``  0 = the hand is not present this frame
- ``/<h>/finger<F>:tx|ty|tz`` or ``/<h>/finger<F>/tip:tx|ty|tz`` (F = 0 thumb .. 4 pinky):
  fingertips, used when all 15 values came in the frame
- ``/hands n``  hands tracked: numbered hands ``hand<n>`` and above are not present
Other channels of the CHOP (``fingers``, ``tools``, ``connected``, ``sequence_id``, joints, ...)
are counted as ``unknown`` and ignored. ``hand<N>`` has no side (``type`` None; the tracker picks
it by x), ``r`` / ``l`` are right / left.

Preset ``mediapipe``: ``/hands/<side>/landmarks`` with 63 floats (21 landmarks x, y, z in
MediaPipe's image-normalised coordinates, x right and y down in 0..1, z depth relative to the
wrist on about the scale of x; order WRIST = 0 .. PINKY_TIP = 20). ``/landmarks`` with 63 floats
(wekitunenator) is the right hand. Mapping into a nominal interaction box (the tracker's
default: centre (0, 200, 0) mm, 235 mm wide and high), for a camera facing the user:
X = (0.5 - x) * 235, Y = 200 + (0.5 - y) * 235, Z = z * 235 mm (a proper rotation of the image
axes, so cross products keep their sense). Then:

- palm = mean of landmarks 0, 5, 9, 13, 17 (wrist and the four MCPs); tips = 4, 8, 12, 16, 20
- ``s`` = |wrist - middle MCP (9)|, the hand's scale
- pinch = clamp((0.9 - |tip4 - tip8| / s) / 0.7, 0, 1)   (1 at 0.2 s apart, 0 at 0.9 s)
- grab = clamp((1.3 - mean(|tip - palm|, index..pinky) / s) / 0.8, 0, 1)
- extended[f]: the tip is farther from the wrist than the PIP (thumb: IP 3; fingers 6, 10, 14, 18)
- direction = normalise(landmark 9 - landmark 0)
- normal = normalise(a x b) for the right hand and b x a for the left, a = wrist -> index MCP (5),
  b = wrist -> pinky MCP (17): down out of the palm when the palm faces down
- velocity and time_visible are not given (the tracker derives velocity)

Bad input: a datagram over 64 KiB is ``oversize``; one that is not OSC ``malformed``; an
address the preset does not know ``unknown``; a sender outside ``allow`` ``refused``. A frame
with a bad value (NaN or inf, a string or blob where a number belongs, the wrong number of
arguments) is dropped whole and counted as ``bad`` and ``bad.<reason>`` (``nonfinite``,
``type``, ``args``, ``missing``, or check_frame's ``range``, ...). Nothing is raised; an
exception from the sink is ``sink_errors``. Load: like :mod:`engine.signals.osc` the thread
spends at most ``duty`` of each 2 ms of its CPU time receiving and converting and sleeps the
rest, so a flood fills the kernel's buffer (drops counted as ``kernel_drops`` on Linux) instead
of starving the render thread.
"""
from __future__ import annotations

import logging
import math
import re
import time
from collections import Counter

from engine.signals.hands import HandFrameError, check_frame
from engine.signals.osc import MAX_BUNDLE_DEPTH, bundle_parts, decode_message
from engine.signals.udp import MAX_DATAGRAM, UdpReceiver

log = logging.getLogger("vj.hands.osc")

PRESETS = ("vj", "touchdesigner", "mediapipe")
_now = time.monotonic
SIDES = ("left", "right")


class Stats(Counter):
    """Counts: datagrams, messages, bundles, frames (passed to the sink), bad (+ bad.<reason>),
    unknown, malformed, oversize, refused, sink_errors, kernel_drops, throttled."""

    PROBLEMS = ("bad", "unknown", "malformed", "oversize", "refused", "sink_errors", "kernel_drops")

    def problems(self) -> int:
        return sum(self[k] for k in self.PROBLEMS)

    def summary(self) -> str:
        bad = ", ".join(f"{self[k]} {k.replace('_', ' ')}" for k in self.PROBLEMS if self[k])
        reasons = ", ".join(f"{v} {k[4:]}" for k, v in sorted(self.items())
                            if k.startswith("bad.") and v)
        text = f"{self['frames']} hand frames from {self['datagrams']} datagrams"
        if bad:
            text += f" ({bad})"
        if reasons:
            text += f"; bad: {reasons}"
        return text


class _Bad(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _f(v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Bad("type")
    f = float(v)
    if not math.isfinite(f):
        raise _Bad("nonfinite")
    return f


def _floats(args, n: int) -> list:
    if len(args) != n:
        raise _Bad("args")
    return [_f(a) for a in args]


def _unit(v):
    n = math.sqrt(sum(c * c for c in v))
    return None if n < 1e-9 else [c / n for c in v]


# --------------------------------------------------------------------------- presets
class _Preset:
    """Collects one frame's messages; ``take`` parses one recognised message."""

    window = None  # seconds after its first message that an unbundled frame ends (None: never)

    def __init__(self):
        self.clear()

    def clear(self):
        self.seen: set = set()
        self.bad = None
        self.start = None
        self.reset()

    def reset(self):
        raise NotImplementedError

    def key(self, address: str):
        """A parsed address, or None when unknown."""
        raise NotImplementedError

    def take(self, key, args) -> None:
        raise NotImplementedError

    def build(self, t: float) -> dict:
        raise NotImplementedError


class _Vj(_Preset):
    _FIELDS = {"palm": 3, "velocity": 3, "normal": 3, "direction": 3, "grab": 1, "pinch": 1,
               "tips": 15, "extended": 5, "time_visible": 1, "id": 1}

    def reset(self):
        self.sides = {}
        self.box = None

    def key(self, address):
        parts = address.split("/")
        if len(parts) == 3 and parts[1] == "hands" and parts[2] == "box":
            return ("box",)
        if len(parts) == 4 and parts[1] == "hands" and parts[2] in SIDES and parts[3] in self._FIELDS:
            return (parts[2], parts[3])
        return None

    def take(self, key, args):
        if key[0] == "box":
            v = _floats(args, 6)
            self.box = {"center": v[:3], "size": v[3:]}
            return
        side, field = key
        n = self._FIELDS[field]
        hand = self.sides.setdefault(side, {})
        if field == "extended":
            if len(args) != 5:
                raise _Bad("args")
            ext = []
            for a in args:
                f = _f(a)
                if f not in (0.0, 1.0):
                    raise _Bad("range")
                ext.append(f == 1.0)
            hand["extended"] = ext
        elif field == "id":
            f = _floats(args, 1)[0]
            if f != int(f) or abs(f) > 2 ** 31:
                raise _Bad("type")
            hand["id"] = int(f)
        elif field == "tips":
            v = _floats(args, 15)
            hand["tips"] = [v[i:i + 3] for i in range(0, 15, 3)]
        else:
            v = _floats(args, n)
            hand[field] = v[0] if n == 1 else v

    def build(self, t):
        hands = []
        for side in SIDES:
            h = self.sides.get(side)
            if h is None:
                continue
            if "palm" not in h:
                raise _Bad("missing")
            out = {"id": SIDES.index(side), "type": side}
            out.update(h)
            hands.append(out)
        return {"t": t, "hands": hands, "box": self.box}


_TD = re.compile(r"^/(hand[0-3]|r|l)(?:/finger([0-4])(?:/tip)?)?:([a-z_]+)$")
_TD_FIELDS = {"tx": "tx", "ty": "ty", "tz": "tz", "vx": "vx", "vy": "vy", "vz": "vz",
              "rx": "rx", "ry": "ry", "rz": "rz", "grabstrength": "grab", "grab_strength": "grab",
              "grab": "grab", "pinchstrength": "pinch", "pinch_strength": "pinch", "pinch": "pinch",
              "timevisible": "time_visible", "time_visible": "time_visible", "tracking": "tracking"}


class _TouchDesigner(_Preset):
    window = 0.004

    def reset(self):
        self.hands = {}   # prefix -> {field: value, ("tip", f, axis): value}
        self.count = None

    def key(self, address):
        if address == "/hands":
            return ("count",)
        m = _TD.match(address)
        if m is None:
            return None
        hand, finger, chan = m.groups()
        if finger is not None:
            return (hand, ("tip", int(finger), chan)) if chan in ("tx", "ty", "tz") else None
        field = _TD_FIELDS.get(chan)
        return None if field is None else (hand, field)

    def take(self, key, args):
        v = _floats(args, 1)[0]
        if key[0] == "count":
            if v < 0 or v != int(v):
                raise _Bad("range")
            self.count = int(v)
            return
        self.hands.setdefault(key[0], {})[key[1]] = v

    def build(self, t):
        hands = []
        for prefix in sorted(self.hands):
            c = self.hands[prefix]
            if prefix.startswith("hand"):
                n = int(prefix[4:])
                if self.count is not None and n >= self.count:
                    continue
                hid, kind = n, None
            else:
                hid, kind = (1, "right") if prefix == "r" else (0, "left")
            if c.get("tracking", 1.0) == 0.0:
                continue
            if not all(k in c for k in ("tx", "ty", "tz")):
                if any(k in c for k in ("tx", "ty", "tz")):
                    raise _Bad("missing")
                continue
            h = {"id": hid, "type": kind, "palm": [c["tx"], c["ty"], c["tz"]]}
            if all(k in c for k in ("vx", "vy", "vz")):
                h["velocity"] = [c["vx"], c["vy"], c["vz"]]
            if "rx" in c and "ry" in c:
                p, y = math.radians(c["rx"]), math.radians(c["ry"])
                h["direction"] = _unit([math.sin(y) * math.cos(p), math.sin(p) * math.cos(y),
                                        -math.cos(p) * math.cos(y)])
            if "rz" in c:
                r = math.radians(c["rz"])
                h["normal"] = [math.sin(r), -math.cos(r), 0.0]
            for k in ("grab", "pinch", "time_visible"):
                if k in c:
                    h[k] = c[k]
            tips = [[c.get(("tip", f, a)) for a in ("tx", "ty", "tz")] for f in range(5)]
            if all(x is not None for p in tips for x in p):
                h["tips"] = tips
            hands.append(h)
        return {"t": t, "hands": hands, "box": None}


MP_SCALE = 235.0   # mm per image unit
MP_CENTER_Y = 200.0
_PALM = (0, 5, 9, 13, 17)
_TIPS = (4, 8, 12, 16, 20)
_PIPS = (3, 6, 10, 14, 18)


def _sub(a, b):
    return [a[0] - b[0], a[1] - b[1], a[2] - b[2]]


def _cross(a, b):
    return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]


def landmarks_to_hand(values, side: str) -> dict:
    """63 MediaPipe image-normalised floats -> one hand of the frame schema (see the module
    docstring for the mapping)."""
    pts = [[(0.5 - values[i]) * MP_SCALE, MP_CENTER_Y + (0.5 - values[i + 1]) * MP_SCALE,
            values[i + 2] * MP_SCALE] for i in range(0, 63, 3)]
    palm = [sum(pts[i][k] for i in _PALM) / len(_PALM) for k in range(3)]
    wrist = pts[0]
    s = max(math.dist(wrist, pts[9]), 1e-6)
    pinch = min(1.0, max(0.0, (0.9 - math.dist(pts[4], pts[8]) / s) / 0.7))
    spread = sum(math.dist(pts[i], palm) for i in _TIPS[1:]) / 4 / s
    grab = min(1.0, max(0.0, (1.3 - spread) / 0.8))
    extended = [math.dist(pts[tip], wrist) > math.dist(pts[pip], wrist)
                for tip, pip in zip(_TIPS, _PIPS)]
    a, b = _sub(pts[5], wrist), _sub(pts[17], wrist)
    normal = _unit(_cross(a, b) if side == "right" else _cross(b, a))
    return {"id": SIDES.index(side), "type": side, "palm": palm, "velocity": None,
            "normal": normal, "direction": _unit(_sub(pts[9], wrist)), "grab": grab,
            "pinch": pinch, "tips": [pts[i] for i in _TIPS], "extended": extended,
            "time_visible": None}


class _MediaPipe(_Preset):
    window = 0.004

    def reset(self):
        self.sides = {}

    def key(self, address):
        if address == "/landmarks":
            return "right"
        parts = address.split("/")
        if len(parts) == 4 and parts[1] == "hands" and parts[2] in SIDES and parts[3] == "landmarks":
            return parts[2]
        return None

    def take(self, key, args):
        self.sides[key] = _floats(args, 63)

    def build(self, t):
        return {"t": t, "hands": [landmarks_to_hand(self.sides[s], s) for s in SIDES if s in self.sides],
                "box": None}


_PRESET_CLASSES = {"vj": _Vj, "touchdesigner": _TouchDesigner, "mediapipe": _MediaPipe}


# --------------------------------------------------------------------------- the receiver
class HandOscIn(UdpReceiver):
    """The UDP receiver thread (``udp.py``); see the module docstring. ``allow``: sender IPs accepted (None =
    any). ``port`` 0 binds an ephemeral port (``self.port`` is the real one after ``start``)."""

    def __init__(self, sink, port: int = 9002, bind: str = "127.0.0.1", preset: str = "vj",
                 allow=None, duty: float = 0.2, source: str = "hands-osc"):
        if preset not in _PRESET_CLASSES:
            raise ValueError(f"unknown preset {preset!r}; one of {', '.join(PRESETS)}")
        push = getattr(sink, "push", None)
        if push is not None:
            self._deliver = lambda frame: push(frame, source=source)
        elif callable(sink):
            self._deliver = sink
        else:
            raise TypeError("sink needs a push(frame, source) method or must be callable")
        super().__init__(port, bind, allow, duty)
        self.sink, self.preset_name, self.source = sink, preset, source
        self._stats = Stats()
        self._preset = _PRESET_CLASSES[preset]()

    thread_name = "hands-osc"

    def summary(self) -> str:
        return f"hands OSC ({self.preset_name}) on {self.bind}:{self.port}: {self.stats.summary()}"

    @property
    def stats(self) -> Stats:
        return self._stats

    # a loose frame (no bundle, no /hands/end) closes when its window has passed
    def _timeout(self) -> float:
        preset = self._preset
        if preset.window and preset.seen:
            return max(0.0005, preset.start + preset.window - _now())
        return 0.1

    def _idle(self) -> None:
        preset = self._preset
        if preset.window and preset.seen and _now() >= preset.start + preset.window:
            self._finish()

    def _datagram(self, data: bytes, t: float) -> None:
        self.datagram(data, t)

    # --- datagrams (also usable without the thread, e.g. from another transport)
    def datagram(self, data: bytes, t: float | None = None) -> None:
        st, preset = self.stats, self._preset
        st["datagrams"] += 1
        if len(data) > MAX_DATAGRAM:
            st["oversize"] += 1
            return
        t = _now() if t is None else t
        if preset.window and preset.seen and t - preset.start > preset.window:
            self._finish()
        if data[:8] == b"#bundle\0":
            if preset.seen:   # a loose frame before this bundle ends here
                self._finish()
            st["bundles"] += 1
            self._bundle(data, t, 0)
            if preset.seen:
                self._finish()
        elif data[:1] == b"/" and len(data) % 4 == 0:
            self._message(data, t, False)
        elif data:
            st["malformed"] += 1

    def _bundle(self, data: bytes, t: float, depth: int) -> None:
        st = self.stats
        if depth >= MAX_BUNDLE_DEPTH or len(data) < 16 or len(data) % 4:
            st["malformed"] += 1
            return
        parts, malformed = bundle_parts(data)
        for part in parts:
            if part[:8] == b"#bundle\0":
                self._bundle(part, t, depth + 1)
            elif part[:1] == b"/":
                self._message(part, t, True)
            else:
                st["malformed"] += 1
        if malformed:
            st["malformed"] += 1

    def _message(self, data: bytes, t: float, in_bundle: bool) -> None:
        st, preset = self.stats, self._preset
        decoded = decode_message(data)
        if decoded is None:
            st["malformed"] += 1
            return
        address, args = decoded
        st["messages"] += 1
        if address == "/hands/end":
            if preset.start is None:
                preset.start = t
            self._finish(force=True)
            return
        key = preset.key(address)
        if key is None:
            st["unknown"] += 1
            return
        if address in preset.seen and not in_bundle:
            self._finish()
        if preset.start is None:
            preset.start = t
        preset.seen.add(address)
        try:
            preset.take(key, args)
        except _Bad as e:
            preset.bad = preset.bad or e.reason

    def _finish(self, force: bool = False) -> None:
        """End the frame being collected: convert, validate, pass on (or count it bad)."""
        preset, st = self._preset, self.stats
        if not preset.seen and not force:
            preset.clear()
            return
        t = preset.start if preset.start is not None else _now()
        try:
            if preset.bad:
                raise _Bad(preset.bad)
            frame = check_frame(preset.build(t))
        except (_Bad, HandFrameError) as e:
            st["bad"] += 1
            st[f"bad.{e.reason}"] += 1
            return
        except Exception:  # noqa: BLE001 - anything odd in the conversion
            st["bad"] += 1
            st["bad.convert"] += 1
            return
        finally:
            preset.clear()
        try:
            self._deliver(frame)
        except Exception as e:  # noqa: BLE001 - the sink's problem, never this thread's end
            st["sink_errors"] += 1
            log.debug("hand OSC sink raised %s: %s", type(e).__name__, e)
            return
        st["frames"] += 1
