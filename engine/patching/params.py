"""Patch parameters and the bindings that drive them.

A patch declares named parameters (``p.param("speed", default=0.5, lo=0, hi=2, smooth=0.1)``);
each one has a range, a default and a smoothing time, appears in the engine's OSC namespace
(``/vj/param/speed``, 0..1 normalised, and ``/vj/param/speed/raw`` in its own units) and can be
bound to any signal on the bus (a MIDI CC, an OSC address, an audio feature).

Everything here runs on the render thread, once per frame, in ``ParamSet.frame(snapshot)``:

1. ``param.set`` events (from OSC, OSCQuery, the CLI) set a parameter directly;
2. ``param.learn`` events arm MIDI/OSC learn: the next control that moves is bound;
3. each binding whose source changed since the last frame writes its parameter, through its
   range, curve, invert and soft-takeover mode (absolute controls), or steps it (relative
   encoders: two's complement 1/127 or offset 65/63);
4. every parameter glides towards its target with its smoothing time.

A binding whose ``param`` is an address of the engine's namespace (``/vj/cue/next``,
``/vj/tempo``, ``/vj/latent/position``: the learnable ones) goes through ``command``, the
control plane's dispatcher (``Dispatcher.control``), like any other command: a button fires an
event address when it goes past half way, a fader sets a value address through its range.

The last writer wins: a parameter set over OSC stays where it was put until its bound control
moves again, and a pick-up binding then waits until the control crosses the value.
Other threads read ``ParamSet.published`` (a dict swapped whole each frame), never the params.
"""
from __future__ import annotations

import logging
import math
import re
import threading
from dataclasses import dataclass, field

import numpy as np

from engine.limits import NAME_RE
from engine.patching.ops import CURVES

log = logging.getLogger("vj.params")

MAX_PARAMS = 512
MAX_SOURCE = 300  # "osc." + the longest OSC address taken in + an index
INDEXED = re.compile(r"(.+)\[(\d{1,6})\]", re.S)
TAKEOVER = ("jump", "pickup", "scale")
MODES = ("absolute", "relative", "relative-offset")
PICKUP_WINDOW = 0.03  # a pick-up control this close (normalised) to the value takes over


@dataclass
class Param:
    name: str
    lo: float = 0.0
    hi: float = 1.0
    default: float = 0.5
    smooth: float = 0.0
    description: str = ""
    value: float = 0.0      # current, smoothed, in the parameter's units
    target: float = 0.0     # where it is going
    generation: int = 0     # bumped on every write; bindings use it for soft takeover
    writer: object = None   # the binding (or "osc") that wrote last
    tau: float | None = None  # smoothing of the last writer, None = the param's own

    def norm(self, raw: float) -> float:
        span = self.hi - self.lo
        return (raw - self.lo) / span if span else 0.0

    def raw(self, u: float) -> float:
        return self.lo + (self.hi - self.lo) * u

    def clamp(self, raw: float) -> float:
        lo, hi = min(self.lo, self.hi), max(self.lo, self.hi)
        return min(hi, max(lo, raw))

    def write(self, raw: float, writer=None, tau: float | None = None) -> None:
        self.target = self.clamp(float(raw))
        self.generation += 1
        self.writer, self.tau = writer, tau


class BindingError(ValueError):
    """A binding field that cannot be used; ``key`` names it."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


def _number(key: str, v, lo: float | None = None, lo_open: bool = False, hi: float | None = None) -> float:
    # bool is an int to Python, but `smooth = true` in a file is a mistake, not 1.0
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BindingError(key, f"{_show(v)} is not a number")
    f = float(v)
    if not math.isfinite(f):
        raise BindingError(key, f"{_show(v)}: must be finite")
    if lo is not None and (f <= lo if lo_open else f < lo):
        raise BindingError(key, f"{_show(v)}: must be {'over' if lo_open else 'at least'} {lo:g}")
    if hi is not None and f > hi:
        raise BindingError(key, f"{_show(v)}: must be at most {hi:g}")
    return f


def _show(v, n: int = 60) -> str:
    """A value for a message: repr (so a newline shows as \\n), cut short."""
    r = repr(v)
    return r if len(r) <= n else r[:n] + "...'"


def learnable(address: str) -> bool:
    """Is this a namespace address a control may be bound to (``/vj/cue/next``, ``/vj/param/x``)?"""
    from engine.control.namespace import lookup  # the namespace imports this module
    if not isinstance(address, str) or not address.isprintable():
        return False
    entry, key = lookup(address)
    return entry is not None and entry.learn and (not entry.pattern or bool(NAME_RE.match(key)))


def _check_source(v) -> str:
    if not isinstance(v, str) or not v:
        raise BindingError("source", f"{_show(v)}: a signal's name (midi.ch1.cc.7, osc./fader/1, audio.low)")
    if len(v) > MAX_SOURCE:
        raise BindingError("source", f"{_show(v)}: longer than {MAX_SOURCE} characters")
    if not v.isprintable():
        raise BindingError("source", f"{_show(v)}: has control characters")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise BindingError("source", f"{_show(v)}: is not text") from None
    return v


def _check_param(v) -> str:
    if isinstance(v, str) and (NAME_RE.match(v) or learnable(v)):
        return v
    raise BindingError("param", f"{_show(v)}: a parameter's name (a-z 0-9 _ . -, up to 64) "
                                "or a learnable /vj/ address")


@dataclass
class Binding:
    """source signal -> parameter.

    ``range`` is the part of the source used (in the source's units; MIDI and normalised OSC
    are 0..1), ``curve`` a named curve or an exponent, ``invert`` flips it, ``smooth`` (seconds)
    replaces the parameter's own smoothing while this binding drives it, ``takeover`` is
    jump | pickup | scale, ``mode`` absolute | relative (two's complement encoders: 1 = +1,
    127 = -1) | relative-offset (64 = no change, 65 = +1, 63 = -1), ``step`` the normalised
    change per encoder tick. A source ``name[i]`` takes element i of a vector (an OSC list)."""

    source: str
    param: str
    range: tuple[float, float] = (0.0, 1.0)
    curve: str | float = "linear"
    invert: bool = False
    smooth: float | None = None
    takeover: str = "jump"
    mode: str = "absolute"
    step: float = 1.0 / 128.0
    # state, not saved
    engaged: bool = field(default=False, compare=False)
    seen_gen: int = field(default=-1, compare=False)
    prev_u: float | None = field(default=None, compare=False)
    last_t: float | None = field(default=None, compare=False)

    def __post_init__(self):
        # every field is checked here, once, so the per-frame code can trust it: a NaN that got
        # this far would freeze the parameter (and OSCQuery would serve it as non-JSON)
        self.source = _check_source(self.source)
        self.param = _check_param(self.param)
        r = self.range
        if isinstance(r, (str, bytes, dict)) or not hasattr(r, "__len__") or len(r) != 2:
            raise BindingError("range", f"{_show(r)}: is [low, high]")
        lo, hi = _number("range", r[0]), _number("range", r[1])
        if lo == hi:
            raise BindingError("range", f"{_show(r)}: low and high are the same")
        self.range = (lo, hi)
        if isinstance(self.curve, str):
            if self.curve not in CURVES:
                raise BindingError("curve", f"{_show(self.curve)}: one of {', '.join(CURVES)}, or an exponent")
        else:
            self.curve = _number("curve", self.curve, lo=0.0, lo_open=True, hi=1000.0)
        if not isinstance(self.invert, bool):
            raise BindingError("invert", f"{_show(self.invert)}: true or false")
        if self.smooth is not None:
            self.smooth = _number("smooth", self.smooth, lo=0.0)
        if not isinstance(self.takeover, str) or self.takeover not in TAKEOVER:
            raise BindingError("takeover", f"{_show(self.takeover)}: one of {', '.join(TAKEOVER)}")
        if not isinstance(self.mode, str) or self.mode not in MODES:
            raise BindingError("mode", f"{_show(self.mode)}: one of {', '.join(MODES)}")
        self.step = _number("step", self.step, lo=0.0, lo_open=True, hi=1.0)
        m = INDEXED.fullmatch(self.source)
        self._name, self._index = (m.group(1), int(m.group(2))) if m else (self.source, None)

    @property
    def signal(self) -> str:
        return self._name

    def saved(self) -> dict:
        d = {"source": self.source, "param": self.param}
        defaults = Binding("x", "x")
        for k in ("range", "curve", "invert", "smooth", "takeover", "mode", "step"):
            v = getattr(self, k)
            if v != getattr(defaults, k):
                d[k] = list(v) if k == "range" else v
        return d

    # source value -> normalised 0..1
    def map(self, v: float) -> float:
        lo, hi = self.range
        u = (v - lo) / (hi - lo) if hi != lo else 0.0
        u = min(1.0, max(0.0, u))
        if isinstance(self.curve, (int, float)):
            u = u ** float(self.curve)
        else:
            u = float(CURVES[self.curve](u))
        return 1.0 - u if self.invert else u

    def read(self, value) -> float | None:
        """The source's number, or None if it is not one (a string, a short vector)."""
        if self._index is not None:
            try:
                value = np.asarray(value, dtype=np.float64).reshape(-1)[self._index]
            except (IndexError, ValueError, TypeError):
                return None
        elif isinstance(value, np.ndarray):
            if value.size == 0:
                return None
            value = value.reshape(-1)[0]
        if isinstance(value, str):
            return None
        try:
            v = float(value)
        except (TypeError, ValueError):
            return None
        return v if math.isfinite(v) else None


def relative_delta(raw: int, mode: str) -> int:
    """Encoder ticks in one CC value: two's complement (1..63 up, 65..127 down) or offset (64 = 0)."""
    raw = int(raw) & 0x7F
    if mode == "relative-offset":
        return raw - 64
    return raw if raw < 64 else raw - 128


def _learn_rank(name: str) -> tuple | None:
    """Which changed signals learn may bind, best first; None for those it ignores."""
    # an address that already ends in [n] would be read back as element n of another signal
    if len(name) > MAX_SOURCE - 8 or not name.isprintable() or INDEXED.fullmatch(name):
        return None
    if name.startswith("midi.ch"):
        kind = name.split(".")[2] if name.count(".") >= 2 else ""
        order = {"cc14": 0, "cc": 1, "pitchbend": 2, "note": 3, "pressure": 4}
        return (0, order.get(kind, 9)) if kind in order else None
    if name.startswith("osc.") and not name.startswith("osc./vj/"):
        return (1, 0)
    return None


class ParamSet:
    """Every parameter any patch has declared this run, and the bindings that drive them."""

    def __init__(self, bindings=None, on_learned=None, command=None):
        self._lock = threading.Lock()
        # (address, u, previous u, t, source) -> None: bindings to namespace addresses
        self.command = command
        self.params: dict[str, Param] = {}
        self.bindings: list[Binding] = list(bindings or [])
        self._pending_bindings: list[Binding] | None = None
        self.on_learned = on_learned  # callback(binding) after learn adds one: save it (never blocks)
        self.learning: tuple[str, float, str] | None = None  # (param, armed at, mode)
        self._learn_seen: dict[str, float] | None = None
        self._learn_first: float | None = None
        self._cycle = -1
        self.published: dict[str, dict] = {}
        self.version = 0  # bumped when a parameter is added or its range changes
        self.messages: list[str] = []  # for the HUD/log: learned bindings, bad events
        self._early: dict[str, tuple[float, str]] = {}  # sets that came before the declaration

    # --- declaring (patch setup or frame; setup runs on the watcher thread)
    def declare(self, name: str, default: float = 0.5, lo: float = 0.0, hi: float = 1.0,
                smooth: float = 0.0, description: str = "") -> Param:
        p = self.params.get(name)
        if p is not None and p.lo == lo and p.hi == hi and p.default == default \
                and p.smooth == smooth and p.description == description:
            return p
        if not NAME_RE.match(name):
            raise ValueError(f"parameter name {name!r}: lower-case letters, digits, _ . - (up to 64)")
        for k, v in (("default", default), ("lo", lo), ("hi", hi), ("smooth", smooth)):
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"parameter {name}: {k} must be a finite number, got {v!r}")
        if lo == hi:
            raise ValueError(f"parameter {name}: lo and hi are both {lo}")
        if p is None and len(self.params) >= MAX_PARAMS:
            # a name made from a counter or the time would otherwise grow the table (and the
            # OSCQuery tree) every frame
            raise ValueError(f"parameter {name}: a patch may declare at most {MAX_PARAMS} parameters")
        with self._lock:
            if p is None:
                p = Param(name, float(lo), float(hi), float(default), float(smooth), description)
                p.value = p.target = p.clamp(float(default))
                self.params[name] = p
                if name in self._early:  # set over OSC before the patch declared it (loading, a scene change)
                    v, how = self._early.pop(name)
                    p.value = p.target = p.clamp(p.raw(min(1.0, max(0.0, v))) if how == "norm" else v)
            else:  # a reloaded patch changed the declaration: keep the value, in the new range
                p.lo, p.hi, p.default, p.smooth, p.description = float(lo), float(hi), float(default), \
                    float(smooth), description
                p.value, p.target = p.clamp(p.value), p.clamp(p.target)
            self.version += 1
        self._publish()
        return p

    def apply(self, values: dict) -> None:
        """Set parameters to these values, in their own units, now (render thread): a scene's
        on entering it, or saved ones. A name not declared yet waits for its declaration."""
        with self._lock:
            for name, v in values.items():
                self._set_event((name, v, "raw"))
        self._publish()

    def targets(self) -> dict[str, float]:
        """Every parameter's value in its own units, where it is heading (not mid-smoothing)."""
        return {n: p.target for n, p in list(self.params.items())}

    def set_bindings(self, bindings: list[Binding]) -> None:
        """Replace the bindings (mappings file edited); taken over at the next frame."""
        with self._lock:
            self._pending_bindings = list(bindings)

    def arm_learn(self, name: str | None, mode: str = "absolute", t: float = 0.0) -> None:
        self._arm(name, mode, t)

    # --- per frame, render thread
    def frame(self, snap) -> None:
        try:
            self._frame(snap)
        except Exception as e:  # noqa: BLE001 - a strange binding or event never stops the frames
            self._note(f"parameters: {type(e).__name__}: {e}")

    def _frame(self, snap) -> None:
        with self._lock:
            if self._pending_bindings is not None:
                # an edited file: bindings that did not change keep their takeover state
                old = {repr(b.saved()): b for b in self.bindings}
                self.bindings = [old.get(repr(b.saved()), b) for b in self._pending_bindings]
                self._pending_bindings = None
            for ev in snap.events.get("param.learn", ()):
                self._learn_event(ev)
            sets = snap.events.get("param.set", ())
            if len(sets) > 1:  # a burst (or a flood): the last value for each name is the one that counts
                last = {}
                for ev in sets:
                    key = ev.value[0] if isinstance(ev.value, tuple) and ev.value else id(ev)
                    last[key] = ev
                sets = last.values()
            for ev in sets:
                self._set_event(ev.value)
            if self.learning is not None:
                self._learn(snap)
            for b in self.bindings:
                if b.param.startswith("/"):
                    self._command(b, snap)
                    continue
                p = self.params.get(b.param)
                if p is not None:
                    self._apply(b, p, snap)
            dt = snap.dt
            for p in self.params.values():
                tau = p.smooth if p.tau is None else p.tau
                if tau <= 0 or dt <= 0:
                    p.value = p.target if tau <= 0 else p.value
                else:
                    p.value += (p.target - p.value) * (1.0 - math.exp(-dt / tau))
                    if abs(p.target - p.value) < 1e-9 * max(1.0, abs(p.hi - p.lo)):
                        p.value = p.target
        self._publish()

    def _publish(self) -> None:
        self.published = {n: {"value": p.value, "norm": p.norm(p.value), "lo": p.lo, "hi": p.hi,
                              "default": p.default, "description": p.description}
                          for n, p in list(self.params.items())}

    def _note(self, msg: str) -> None:
        if self.messages and self.messages[-1] == msg:
            return  # said just now
        log.info("%s", msg)
        self.messages.append(msg)
        del self.messages[:-8]

    def _set_event(self, value) -> None:
        try:
            name, v, how = value
            p = self.params.get(name)
            v = float(v)
            if not math.isfinite(v):
                raise ValueError
            if p is None:
                if isinstance(name, str) and NAME_RE.match(name) and (name in self._early or len(self._early) < 256):
                    if name not in self._early:  # said once per name, at most 256 names
                        self._note(f"/vj/param/{name}: no such parameter yet; kept for when the patch declares it")
                    self._early[name] = (v, how)
                return
        except (TypeError, ValueError):
            self._note(f"param.set {value!r}: needs (name, number, 'norm'|'raw')")
            return
        p.write(p.raw(min(1.0, max(0.0, v))) if how == "norm" else v, writer="direct")

    def _learn_event(self, ev) -> None:
        v = ev.value
        mode = "absolute"
        if isinstance(v, (tuple, list)):
            v, mode = (v[0], v[1]) if len(v) > 1 else (v[0] if v else None, mode)
        if v is None or v == "" or v == "cancel":
            if self.learning:
                self._note(f"learn {self.learning[0]}: cancelled")
            self.learning = None
            return
        if not isinstance(v, str):  # a key press: arm the next parameter in turn
            names = sorted(self.params)
            if not names:
                self._note("learn: this patch has no parameters")
                return
            self._cycle = (self._cycle + 1) % (len(names) + 1)
            if self._cycle == len(names):
                self._arm(None, mode, ev.t)
                return
            v = names[self._cycle]
        self._arm(v, mode, ev.t)

    def _arm(self, name, mode, t) -> None:
        if name is None:
            self.learning = None
            self._note("learn: off")
            return
        # --learn and scripts reach here without the OSC edge's checks; what is armed is what
        # gets written to the mappings file, so only a name a binding can hold is taken
        if not isinstance(name, str) or not (NAME_RE.match(name) or learnable(name)):
            self._note(f"learn {_show(name)}: not a parameter's name or a learnable address; learn is off")
            self.learning = None
            return
        if mode not in MODES:
            self._note(f"learn {name}: mode {mode!r} is not one of {', '.join(MODES)}")
            return
        if name.startswith("/") and mode != "absolute":
            self._note(f"learn {name}: an engine command takes an absolute control, not {mode}")
            return
        self.learning = (name, t, mode)
        self._learn_seen, self._learn_first = {}, None
        self._note(f"learn {name}: move a control (MIDI or OSC)")

    def _learn(self, snap) -> None:
        name, armed, mode = self.learning
        seen = self._learn_seen
        if mode == "absolute":
            for src, t in snap.times.items():
                if t > armed and _learn_rank(src) is not None:
                    seen[src] = t
        else:  # encoders are told by their events (the raw CC values)
            for src, evs in snap.events.items():
                if src.startswith("midi.ch") and ".cc." in src and evs[-1].t > armed:
                    seen[src] = evs[-1].t
        if not seen:
            return
        if self._learn_first is None:
            # wait one more frame, so a 14-bit pair (MSB then LSB) is seen as one control
            self._learn_first = max(seen.values())
            return
        if not name.startswith("/") and name not in self.params:
            # armed at start (--learn) for a name the patch never declared
            self._note(f"learn {name}: the patch has no such parameter; learn is off")
            self.learning = None
            return
        src = min(seen, key=lambda s: (_learn_rank(s) or (9, 9), -seen[s]))
        value = snap.values.get(src)
        if isinstance(value, np.ndarray) and value.size > 1:
            src = f"{src}[0]"
        try:
            b = Binding(src, name, mode=mode, takeover="jump" if name.startswith("/") else "pickup")
        except ValueError as e:  # left armed, it would fail again every frame
            self._note(f"learn {name}: {e}; learn is off")
            self.learning = None
            return
        b.engaged = True  # the control just moved: it takes the parameter from its next move
        b.last_t = snap.times.get(b.signal)
        p = self.params.get(name)
        b.seen_gen = p.generation if p else -1
        self.bindings = [x for x in self.bindings if not (x.source == src and x.param == name)] + [b]
        self.learning = None
        self._note(f"learned: {src} -> {name}")
        if self.on_learned:
            try:
                self.on_learned(b)
            except Exception as e:  # noqa: BLE001 - saving must never stop a frame
                self._note(f"learned binding not saved: {e}")

    def _command(self, b: Binding, snap) -> None:
        t = snap.times.get(b.signal)
        if self.command is None or b.mode != "absolute" or t is None or t == b.last_t:
            return
        b.last_t = t
        v = b.read(snap.values.get(b.signal))
        if v is None:
            return
        # a pad's note fires however softly it is hit; any other control past half way
        u = (1.0 if v > 0 else 0.0) if ".note." in b.signal else b.map(v)
        prev = b.prev_u
        b.prev_u = u
        self.command(b.param, u, prev, t, "midi" if b.signal.startswith("midi.") else "osc")

    def _apply(self, b: Binding, p: Param, snap) -> None:
        if b.mode != "absolute":
            ticks = 0
            for v in snap.events_of(b.signal):
                try:
                    ticks += relative_delta(int(v), b.mode)
                except (TypeError, ValueError):
                    continue
            if ticks:
                u = p.norm(p.target) + (-ticks if b.invert else ticks) * b.step
                p.write(p.raw(min(1.0, max(0.0, u))), b, b.smooth)
            return
        t = snap.times.get(b.signal)
        if t is None or t == b.last_t:
            return
        b.last_t = t
        v = b.read(snap.values.get(b.signal))
        if v is None:
            return
        u = b.map(v)
        if b.takeover != "jump":
            if p.generation != b.seen_gen:  # someone else moved the parameter: take over softly
                b.engaged = False
            cur = p.norm(p.target)
            if not b.engaged:
                prev, b.prev_u = b.prev_u, u
                crossed = prev is not None and (prev - cur) * (u - cur) <= 0
                if abs(u - cur) <= PICKUP_WINDOW or crossed:
                    b.engaged = True
                elif b.takeover == "scale" and prev is not None and u != prev:
                    # move the parameter the same way, scaled so both meet at the end of travel
                    if u > prev:
                        new = cur + (u - prev) * (1.0 - cur) / max(1e-9, 1.0 - prev)
                    else:
                        new = cur - (prev - u) * cur / max(1e-9, prev)
                    p.write(p.raw(min(1.0, max(0.0, new))), b, b.smooth)
                    b.seen_gen = p.generation
                    return
                else:
                    return
        b.prev_u = u
        p.write(p.raw(u), b, b.smooth)
        b.seen_gen = p.generation
