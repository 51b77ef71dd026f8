"""Hand tracking in: hand frames (from a Leap client, a replay, ...) become ``hands.*`` signals.

Every hand source hands over plain dicts in one schema (the *hand frame*)::

    {"t": capture time (time.monotonic() seconds),
     "hands": [{"id": int, "type": "left" | "right" | None,
                "palm": [x, y, z] (mm, Leap axes: +y up, +z toward the user),
                "velocity": [vx, vy, vz] (mm/s) or None,
                "normal": [x, y, z] unit or None, "direction": [x, y, z] unit or None,
                "grab": 0..1 or None, "pinch": 0..1 or None,
                "tips": [[x, y, z] x 5, thumb..pinky] or None, "extended": [bool x 5] or None,
                "time_visible": seconds or None}, ...],          # at most MAX_HANDS
     "box": {"center": [x, y, z], "size": [w, h, d]} or None}  # the interaction box, mm

:func:`check_frame` validates one at the edge, once, and returns a cleaned copy (floats,
missing optional fields as None, strengths within -0.01..1.01 clamped to 0..1, unit vectors
renormalised) or raises :class:`HandFrameError` with a short ``reason``.

:class:`HandTracker` turns cleaned frames into one :meth:`SignalBus.publish` per frame. Per
side (``left``/``right``), with ``S`` = ``hands.left`` or ``hands.right``:

- ``S.palm.x|y|z``   palm position normalised 0..1 within the interaction box (clamped; a box given
  to the tracker (``--hands-box``) wins over the frame's, which wins over the default)
- ``S.palm_mm``      palm position, mm (3-vector)
- ``S.velocity``     palm velocity, mm/s (3-vector; the filter's derivative if the source gave none)
- ``S.pitch|roll|yaw`` radians, Leap's definitions, in (-pi, pi]
- ``S.grab|pinch|openness`` 0..1 (openness = 1 - grab)
- ``S.visible``      1 while the hand is in the frame, 0 at once when it is not
- ``S.time_visible`` seconds (0 while not visible)
- ``S.tips``         15 floats, fingertips thumb..pinky, mm
- ``S.extended``     5 floats, 1 = finger extended
- ``hands.count``    hands in the latest frame (0..MAX_HANDS)

Events ``S.enter`` (a side appears; value: the hand's id) and ``S.leave`` (a side has been
gone for ``hold`` seconds; value 1.0).

Filtering: a One Euro filter (Casiez, Roussel, Vogel 2012) on the palm, the three angles and
the fingertips, timestamped with the frame's ``t``; ``min_cutoff`` and ``beta`` can be changed
at run time (:attr:`HandTracker.min_cutoff`, :attr:`HandTracker.beta`).

Dropout: when a side's hand is missing, ``visible`` goes 0 at once and the last filtered values
are held for ``hold`` seconds, then eased (smoothstep) over ``ease`` seconds to the rest pose
(palm at the box centre, strengths, angles, velocity and extension 0, fingertips carried with
the palm), so the image never snaps. :meth:`HandTracker.tick` drives this when no frames come:
a side not seen for ``STALE`` seconds of ``tick`` time is taken as missing since it was last
seen. A hand back within the hold continues (same filters, no events); back later, it enters
afresh (filters restarted).

Identity rule (so crossing hands do not swap signals): a side still being tracked (visible or
within its hold) keeps the hand whose palm is nearest its last raw palm (the assignment of
hands to tracked sides with the least total distance, each match within ``MAX_JUMP`` mm); the
source's ``id`` and ``type`` are ignored for such hands. Only a hand that is not matched gets a
side afresh: its ``type`` if that side is free, else by x (x < 0 = left), else the free side.
Hands beyond two are counted (``extra_hands``) and ignored.

Bad frames are counted in :attr:`HandTracker.stats` by reason and dropped; ``push`` never raises
for bad input.
"""
from __future__ import annotations

import math
import threading
from collections import Counter
from itertools import permutations
from numbers import Integral, Real

import numpy as np

MAX_HANDS = 4
MAX_POSITION = 2000.0      # mm
MAX_VELOCITY = 50000.0     # mm/s
MAX_TIME_VISIBLE = 1e7     # s
STRENGTH_SLACK = 0.01      # strengths within -0.01..1.01 are clamped to 0..1, beyond refused
MAX_JUMP = 250.0           # mm between frames for a hand to stay matched to its side
STALE = 0.25               # s without any frame before tick() takes the hands as gone
DEFAULT_BOX = {"center": (0.0, 200.0, 0.0), "size": (235.0, 235.0, 147.0)}
SIDES = ("left", "right")

# what _emit writes per side, ``hands.<side>.<field>`` (docs/patches.md, "Hands")
FIELDS = ("palm.x", "palm.y", "palm.z", "palm_mm", "velocity", "pitch", "roll", "yaw", "grab", "pinch",
          "openness", "visible", "time_visible", "tips", "extended")

FINGERS = 5
_TYPES = ("left", "right", None)
_HAND_KEYS = ("palm", "velocity", "normal", "direction", "grab", "pinch", "tips", "extended",
              "time_visible")


class HandFrameError(ValueError):
    """A malformed hand frame; ``reason`` is a short key (``type``, ``missing``, ``nonfinite``,
    ``range``, ``too_many``, ``hand_type``) used to count it."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _num(v, what: str, limit: float) -> float:
    kind = type(v)
    if kind is float:   # the common case, fast
        if v != v or v in (math.inf, -math.inf):
            raise HandFrameError("nonfinite", what)
        if not -limit <= v <= limit:
            raise HandFrameError("range", f"{what} out of range")
        return v
    if kind is bool or not isinstance(v, Real):
        raise HandFrameError("type", f"{what} is not a number")
    try:
        f = float(v)
    except (OverflowError, ValueError, TypeError):
        raise HandFrameError("range", f"{what} out of range") from None
    if not math.isfinite(f):
        raise HandFrameError("nonfinite", what)
    if abs(f) > limit:
        raise HandFrameError("range", f"{what} out of range")
    return f


def _vec(v, what: str, limit: float, n: int = 3) -> list:
    if not isinstance(v, (list, tuple, np.ndarray)):
        raise HandFrameError("type", f"{what} is not a list")
    if len(v) != n:
        raise HandFrameError("type", f"{what} needs {n} numbers")
    return [_num(x, what, limit) for x in v]


def _unit(v, what: str) -> list:
    x = _vec(v, what, 2.0)
    norm = math.sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2])
    if not 0.5 <= norm <= 1.5:
        raise HandFrameError("range", f"{what} is not a unit vector")
    return [c / norm for c in x]


def _strength(v, what: str) -> float:
    f = _num(v, what, 2.0)
    if not -STRENGTH_SLACK <= f <= 1.0 + STRENGTH_SLACK:
        raise HandFrameError("range", f"{what} outside 0..1")
    return min(1.0, max(0.0, f))


def _box(b) -> dict | None:
    if b is None:
        return None
    if not isinstance(b, dict):
        raise HandFrameError("type", "box is not a table")
    if "center" not in b or "size" not in b:
        raise HandFrameError("missing", "box needs center and size")
    center = _vec(b["center"], "box center", MAX_POSITION)
    size = _vec(b["size"], "box size", 2 * MAX_POSITION)
    if min(size) < 1.0:
        raise HandFrameError("range", "box size under 1 mm")
    return {"center": center, "size": size}


def _hand(h) -> dict:
    if not isinstance(h, dict):
        raise HandFrameError("type", "hand is not a table")
    if "palm" not in h or h["palm"] is None:
        raise HandFrameError("missing", "hand without palm")
    hid = h.get("id", 0)
    if isinstance(hid, bool) or not isinstance(hid, Integral):
        raise HandFrameError("type", "hand id is not an integer")
    if abs(int(hid)) > 2 ** 53:
        raise HandFrameError("range", "hand id out of range")
    kind = h.get("type")
    if not any(kind is k or (isinstance(kind, str) and kind == k) for k in _TYPES):
        raise HandFrameError("hand_type", "type is not left, right or None")
    out = {"id": int(hid), "type": kind, "palm": _vec(h["palm"], "palm", MAX_POSITION)}
    g = h.get
    out["velocity"] = None if g("velocity") is None else _vec(g("velocity"), "velocity", MAX_VELOCITY)
    out["normal"] = None if g("normal") is None else _unit(g("normal"), "normal")
    out["direction"] = None if g("direction") is None else _unit(g("direction"), "direction")
    out["grab"] = None if g("grab") is None else _strength(g("grab"), "grab")
    out["pinch"] = None if g("pinch") is None else _strength(g("pinch"), "pinch")
    tips = g("tips")
    if tips is not None:
        if not isinstance(tips, (list, tuple, np.ndarray)) or len(tips) != FINGERS:
            raise HandFrameError("type", "tips needs 5 points")
        tips = [_vec(p, "tip", MAX_POSITION) for p in tips]
    out["tips"] = tips
    ext = g("extended")
    if ext is not None:
        if not isinstance(ext, (list, tuple)) or len(ext) != FINGERS:
            raise HandFrameError("type", "extended needs 5 booleans")
        if not all(isinstance(e, (bool, int, np.bool_)) and e in (0, 1) for e in ext):
            raise HandFrameError("type", "extended needs 5 booleans")
        ext = [bool(e) for e in ext]
    out["extended"] = ext
    tv = g("time_visible")
    if tv is not None:
        tv = _num(tv, "time_visible", MAX_TIME_VISIBLE)
        if tv < -STRENGTH_SLACK:
            raise HandFrameError("range", "time_visible negative")
        tv = max(0.0, tv)
    out["time_visible"] = tv
    return out


def check_frame(obj) -> dict:
    """A cleaned copy of the hand frame ``obj``, or :class:`HandFrameError`. Unknown keys are
    dropped; missing optional fields become None."""
    if not isinstance(obj, dict):
        raise HandFrameError("type", "frame is not a table")
    if "t" not in obj:
        raise HandFrameError("missing", "frame without t")
    t = _num(obj["t"], "t", 1e12)
    hands = obj.get("hands", [])
    if hands is None:
        hands = []
    if not isinstance(hands, (list, tuple)):
        raise HandFrameError("type", "hands is not a list")
    if len(hands) > MAX_HANDS:
        raise HandFrameError("too_many", f"{len(hands)} hands")
    return {"t": t, "hands": [_hand(h) for h in hands], "box": _box(obj.get("box"))}


class Stats(Counter):
    """Counts: ``frames`` (accepted), ``rejected`` (all refused frames) and one ``rejected.<reason>``
    per reason, ``out_of_order`` (a frame older than the previous one; also rejected),
    ``extra_hands`` (hands beyond two, ignored), ``enter``/``leave`` events."""

    def rejected_by_reason(self) -> dict:
        return {k.split(".", 1)[1]: v for k, v in self.items() if k.startswith("rejected.") and v}

    def problems(self) -> int:
        return self["rejected"] + self["extra_hands"]

    def summary(self) -> str:
        bad = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sorted(self.rejected_by_reason().items()))
        text = f"{self['frames']} hand frames"
        if self["rejected"]:
            text += f" ({self['rejected']} rejected: {bad})"
        if self["extra_hands"]:
            text += f", {self['extra_hands']} extra hands ignored"
        return text


class OneEuro:
    """The One Euro filter (Casiez, Roussel & Vogel, CHI 2012) on a scalar or a numpy vector
    (per component). ``min_cutoff`` (Hz) sets smoothing at rest, ``beta`` how fast the cutoff
    rises with speed, ``d_cutoff`` (Hz) smooths the derivative. Times are seconds."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.007, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.reset()

    def reset(self, x=None, t: float | None = None) -> None:
        """Forget the past (or start from value ``x`` at time ``t`` at rest)."""
        self.x = None if x is None else np.array(x, dtype=np.float64)
        self.dx = None if x is None else np.zeros_like(self.x)
        self.t = t

    @staticmethod
    def _alpha(cutoff, dt):
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x, t: float):
        x = np.array(x, dtype=np.float64)
        if self.x is None or self.t is None:
            self.x, self.dx, self.t = x, np.zeros_like(x), t
            return x.copy() if x.ndim else float(x)
        dt = t - self.t
        if dt <= 0.0:   # same (or older) timestamp: nothing to integrate over
            return self.x.copy() if self.x.ndim else float(self.x)
        dx = (x - self.x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = self.dx + a_d * (dx - self.dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        a = self._alpha(cutoff, dt)
        self.x = self.x + a * (x - self.x)
        self.t = t
        return self.x.copy() if self.x.ndim else float(self.x)


def _wrap(a):
    return (np.asarray(a) + math.pi) % (2.0 * math.pi) - math.pi


def _smoothstep(u: float) -> float:
    u = min(1.0, max(0.0, u))
    return u * u * (3.0 - 2.0 * u)


class _Side:
    """One side's filters and its last values (all numpy float64)."""

    def __init__(self, name: str, tracker: "HandTracker"):
        self.name = name
        self.palm_f = tracker._filter()
        self.angle_f = tracker._filter()
        self.tips_f = tracker._filter()
        self.raw_palm = None        # last raw palm, mm (for identity matching)
        self.state = "rest"         # "visible", "hold", "ease", "rest"
        self.lost_at = 0.0          # when it went missing
        self.last_seen = -math.inf
        self.values = None          # last published values (dict of arrays)
        self.held = None            # values when it went missing

    def filters(self):
        return (self.palm_f, self.angle_f, self.tips_f)

    def reset_filters(self):
        for f in self.filters():
            f.reset()


class HandTracker:
    """Hand frames in, ``hands.*`` signals out; see the module docstring. Thread-safe: sources
    call :meth:`push` from their threads, a timer calls :meth:`tick`."""

    def __init__(self, bus, box=None, min_cutoff: float = 1.0, beta: float = 0.007,
                 hold: float = 0.3, ease: float = 0.7, rest=None, d_cutoff: float = 1.0):
        self.bus = bus
        self._box_given = box is not None  # a box the performer chose wins over the sensor's
        box = _box(dict(box)) if box is not None else _box({k: list(v) for k, v in DEFAULT_BOX.items()})
        self.box = box
        self._min_cutoff, self._beta, self._d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.hold, self.ease = max(0.0, float(hold)), max(0.0, float(ease))
        self.rest = {"palm": (0.5, 0.5, 0.5), "grab": 0.0, "pinch": 0.0,
                     "pitch": 0.0, "roll": 0.0, "yaw": 0.0}
        if rest:
            unknown = set(rest) - set(self.rest)
            if unknown:
                raise ValueError(f"unknown rest fields: {sorted(unknown)}")
            self.rest.update(rest)
        self.stats = Stats()
        self._lock = threading.Lock()
        self._sides = {s: _Side(s, self) for s in SIDES}
        self._last_t = -math.inf
        self._frame_box = None

    # --- filter parameters (settable at run time) ---
    def _filter(self) -> OneEuro:
        return OneEuro(self._min_cutoff, self._beta, self._d_cutoff)

    def _set_filters(self, **kw) -> None:
        with self._lock:
            for side in self._sides.values():
                for f in side.filters():
                    for k, v in kw.items():
                        setattr(f, k, v)

    @property
    def min_cutoff(self) -> float:
        return self._min_cutoff

    @min_cutoff.setter
    def min_cutoff(self, value: float) -> None:
        value = float(value)
        if not (math.isfinite(value) and value > 0):
            raise ValueError("min_cutoff must be > 0")
        self._min_cutoff = value
        self._set_filters(min_cutoff=value)

    @property
    def beta(self) -> float:
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        value = float(value)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError("beta must be >= 0")
        self._beta = value
        self._set_filters(beta=value)

    # --- input ---
    def push(self, frame, source: str = "hands") -> bool:
        """Validate, filter and publish one hand frame; False (counted) if it was refused."""
        try:
            clean = check_frame(frame)
        except HandFrameError as e:
            self._reject(e.reason)
            return False
        except Exception:   # anything odd in a hostile object (a __float__ that raises, ...)
            self._reject("type")
            return False
        with self._lock:
            if clean["t"] < self._last_t:
                self.stats["out_of_order"] += 1
                self.stats["rejected"] += 1
                self.stats["rejected.out_of_order"] += 1
                return False
            self._last_t = clean["t"]
            self.stats["frames"] += 1
            values, events = self._frame(clean)
            # under the lock: two sources' frames reach the bus in the order they were filtered
            self.bus.publish(values, events, t=clean["t"], source=source)
        return True

    def tick(self, now: float) -> None:
        """Advance dropout (hold, ease, leave) to time ``now`` when frames are not coming; publish
        if anything changed."""
        with self._lock:
            values, events = {}, []
            for side in self._sides.values():
                if side.state == "visible" and now - side.last_seen > STALE:
                    self._lose(side, side.last_seen)
                if side.state in ("hold", "ease"):
                    self._dropout(side, now, values, events)
            if values or events:
                self.bus.publish(values, events, t=now, source="hands")

    def _reject(self, reason: str) -> None:
        with self._lock:
            self.stats["rejected"] += 1
            self.stats[f"rejected.{reason}"] += 1

    # --- one frame ---
    def _frame(self, frame: dict):
        t = frame["t"]
        if frame["box"] is not None:
            self._frame_box = frame["box"]
        hands = frame["hands"]
        assigned = self._assign(hands)
        values, events = {}, []
        for name, side in self._sides.items():
            hand = assigned.get(name)
            if hand is not None:
                if side.state != "visible":
                    if side.state != "hold":
                        side.reset_filters()
                    if side.state in ("rest", "ease") or side.values is None:
                        events.append((f"hands.{name}.enter", float(hand["id"])))
                        self.stats["enter"] += 1
                side.state = "visible"
                side.last_seen = t
                side.raw_palm = np.array(hand["palm"], dtype=np.float64)
                side.values = self._measure(side, hand, t)
                self._emit(name, side.values, values, visible=True)
            else:
                if side.state == "visible":
                    self._lose(side, t)
                if side.state in ("hold", "ease"):
                    self._dropout(side, t, values, events)
                elif side.values is None:   # never seen: publish the rest pose once
                    side.values = self._rest_values(None)
                    self._emit(name, side.values, values, visible=False)
        values["hands.count"] = float(len(hands))
        return values, events

    def _assign(self, hands: list) -> dict:
        """Hands to sides by the identity rule in the module docstring."""
        tracked = [s for s in SIDES if self._sides[s].state in ("visible", "hold")
                   and self._sides[s].raw_palm is not None]
        out: dict = {}
        free = list(range(len(hands)))
        if tracked and hands:
            palms = [h["palm"] for h in hands]
            prev = {s: tuple(self._sides[s].raw_palm) for s in tracked}
            best, best_key = (), None
            idx = list(range(len(hands))) + [None] * len(tracked)
            for perm in set(permutations(idx, len(tracked))):
                pairs = [(s, i) for s, i in zip(tracked, perm) if i is not None]
                dists = [math.dist(palms[i], prev[s]) for s, i in pairs]
                if any(d > MAX_JUMP for d in dists):
                    continue
                key = (-len(pairs), sum(dists))
                if best_key is None or key < best_key:
                    best, best_key = pairs, key
            for s, i in best:
                out[s] = hands[i]
                free.remove(i)
        for i in free:
            open_sides = [s for s in SIDES if s not in out]
            if not open_sides:
                self.stats["extra_hands"] += 1
                continue
            h = hands[i]
            want = h["type"] or ("left" if h["palm"][0] < 0 else "right")
            out[want if want in open_sides else open_sides[0]] = h
        return out

    def _measure(self, side: _Side, hand: dict, t: float) -> dict:
        prev = side.values
        palm = side.palm_f(hand["palm"], t)
        # angles, unwrapped against the filter's last value so +-pi never jumps
        angles = np.array(prev["angles"] if prev is not None else (0.0, 0.0, 0.0), dtype=np.float64)
        d, n = hand["direction"], hand["normal"]
        if d is not None:
            angles[0] = math.atan2(d[1], -d[2])
            angles[2] = math.atan2(d[0], -d[2])
        if n is not None:
            angles[1] = math.atan2(n[0], -n[1])
        ref = side.angle_f.x
        if ref is not None:
            angles = ref + _wrap(angles - ref)
        angles = side.angle_f(angles, t)
        if hand["tips"] is not None:
            tips = side.tips_f(np.asarray(hand["tips"], dtype=np.float64).reshape(-1), t)
        elif prev is not None:   # carried with the palm
            tips = prev["tips"] + np.tile(palm - prev["palm_mm"], FINGERS)
        else:
            tips = np.tile(palm, FINGERS)
        if hand["velocity"] is not None:
            vel = np.asarray(hand["velocity"], dtype=np.float64)
        else:
            vel = np.array(side.palm_f.dx, dtype=np.float64)
        grab = hand["grab"] if hand["grab"] is not None else (prev["grab"] if prev else 0.0)
        pinch = hand["pinch"] if hand["pinch"] is not None else (prev["pinch"] if prev else 0.0)
        ext = (np.asarray(hand["extended"], dtype=np.float64) if hand["extended"] is not None
               else (prev["extended"] if prev else np.zeros(FINGERS)))
        return {"palm_mm": palm, "velocity": vel, "angles": np.asarray(angles, dtype=np.float64),
                "grab": float(grab), "pinch": float(pinch), "tips": tips, "extended": ext,
                "time_visible": float(hand["time_visible"] or 0.0)}

    def _box_now(self) -> dict:
        return self.box if self._box_given else (self._frame_box or self.box)

    def _rest_values(self, held) -> dict:
        box = self._box_now()
        c, s = np.array(box["center"]), np.array(box["size"])
        palm = c + (np.array(self.rest["palm"], dtype=np.float64) - 0.5) * s
        if held is not None:
            tips = held["tips"] + np.tile(palm - held["palm_mm"], FINGERS)
        else:
            tips = np.tile(palm, FINGERS)
        r = self.rest
        return {"palm_mm": palm, "velocity": np.zeros(3),
                "angles": np.array([r["pitch"], r["roll"], r["yaw"]], dtype=np.float64),
                "grab": float(r["grab"]), "pinch": float(r["pinch"]), "tips": tips,
                "extended": np.zeros(FINGERS), "time_visible": 0.0}

    def _lose(self, side: _Side, t: float) -> None:
        side.state = "hold"
        side.lost_at = t
        side.held = dict(side.values, velocity=np.zeros(3))   # a missing hand does not move

    def _dropout(self, side: _Side, t: float, values: dict, events: list) -> None:
        gone = t - side.lost_at
        if gone >= self.hold and side.state == "hold":
            side.state = "ease"
            side.reset_filters()
            events.append((f"hands.{side.name}.leave", 1.0))
            self.stats["leave"] += 1
        if side.state == "hold":
            v = dict(side.held)
        else:
            w = _smoothstep((gone - self.hold) / self.ease) if self.ease > 0 else 1.0
            rest, held = self._rest_values(side.held), side.held
            v = {}
            for k in rest:
                if k == "angles":   # the short way round
                    v[k] = held[k] + w * _wrap(rest[k] - held[k])
                else:
                    v[k] = held[k] + w * (np.asarray(rest[k]) - held[k]) if k != "time_visible" else 0.0
            if w >= 1.0:
                side.state = "rest"
        v["time_visible"] = 0.0
        side.values = v
        self._emit(side.name, v, values, visible=False)

    def _emit(self, name: str, v: dict, out: dict, visible: bool) -> None:
        box = self._box_now()
        c, s = np.array(box["center"]), np.array(box["size"])
        norm = np.clip((v["palm_mm"] - c) / s + 0.5, 0.0, 1.0)
        p = f"hands.{name}."
        ang = _wrap(v["angles"])
        grab = float(min(1.0, max(0.0, v["grab"])))
        out.update({
            p + "palm.x": float(norm[0]), p + "palm.y": float(norm[1]), p + "palm.z": float(norm[2]),
            p + "palm_mm": np.asarray(v["palm_mm"], dtype=np.float32),
            p + "velocity": np.asarray(v["velocity"], dtype=np.float32),
            p + "pitch": float(ang[0]), p + "roll": float(ang[1]), p + "yaw": float(ang[2]),
            p + "grab": grab, p + "pinch": float(min(1.0, max(0.0, v["pinch"]))),
            p + "openness": 1.0 - grab,
            p + "visible": 1.0 if visible else 0.0,
            p + "time_visible": float(v["time_visible"]) if visible else 0.0,
            p + "tips": np.asarray(v["tips"], dtype=np.float32),
            p + "extended": np.asarray(v["extended"], dtype=np.float32),
        })

    def side_state(self, side: str) -> str:
        """``visible``, ``hold``, ``ease`` or ``rest``."""
        return self._sides[side].state
