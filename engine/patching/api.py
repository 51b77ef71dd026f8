"""What a patch sees: the context ``p`` (helpers and the patch's own state) and the
``Controls`` it returns each frame. docs/patches.md is the user's guide to this."""
from __future__ import annotations

import copy
import difflib
import functools
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.latent import arithmetic, grid, paths, seeds, styles
from engine.patching import ops
from engine.patching.params import ParamSet
from engine.signals.bus import Snapshot


def nearest(name: str, known, n: int = 1) -> list[str]:
    """The ``n`` known names closest to ``name`` (difflib), best first; [] when none is close."""
    return difflib.get_close_matches(str(name), [str(k) for k in known], n=n, cutoff=0.6)


def choice_error(where: str, arg: str, value, choices) -> ValueError:
    """A string argument that is none of its choices, said so a patch writer can fix it:
    ``p.walk: ease='smoth' is not a choice; did you mean 'smooth'? (choices: 'linear', ...)``."""
    close = nearest(value, choices) if isinstance(value, str) else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ValueError(f"{where}: {arg}={value!r} is not a choice{hint} "
                      f"(choices: {', '.join(repr(c) for c in choices)})")


def check_choice(where: str, arg: str, value, choices) -> None:
    try:
        ok = value in choices  # a dict or tuple lookup: cheap enough to run every frame
    except TypeError:          # a list or an array, which no dict holds
        ok = False
    if not ok:
        raise choice_error(where, arg, value, tuple(choices))


# ---------------------------------------------------------------------------------------
# reading signals: a name no input has published and none documents is most likely a typo

_CHANNEL = r"(?:[1-9]|1[0-6])"
# families whose members no list can hold: every OSC address, every MIDI controller and note
FAMILIES = re.compile(rf"""\A(?:
    osc\..+
  | midi\.(?:ch{_CHANNEL}\.)?(?:cc|cc14|note)\.\d{{1,3}}
  | midi\.ch{_CHANNEL}\.(?:pitchbend|pressure|program)
)\Z""", re.VERBOSE | re.DOTALL)
# spellings offered for a near miss of a family member, with the number from the name filled in
_FAMILY_SPELLINGS = ("midi.cc.{n}", "midi.cc14.{n}", "midi.note.{n}")


@functools.lru_cache(maxsize=1)
def documented_signals() -> frozenset:
    """The channel names the engine's inputs document (besides :data:`FAMILIES`): the audio
    features, MIDI's fixed channels, the hands' and the channels of the control namespace."""
    from engine.control.namespace import TABLE
    from engine.signals.features import GAIN_DB, feature_names, vector_names
    from engine.signals.hands import FIELDS, SIDES
    names = {*feature_names(), *vector_names(), GAIN_DB, "hands.count",
             "midi.pitchbend", "midi.pressure", "midi.program",
             "midi.clock.bpm", "midi.clock.beat", "midi.clock.running"}
    names.update(f"hands.{side}.{f}" for side in SIDES for f in FIELDS)
    dummy = {"f": 0.0, "i": 0, "s": "x"}
    for entry in TABLE:  # what each /vj/ address writes (the latent.* channels), from the table itself
        if entry.does is None or entry.pattern:
            continue
        for sig in entry.signatures:
            try:
                values, _ = entry.does("", tuple(dummy[a.type] for a in sig))
            except Exception:  # noqa: BLE001 - an action that needs a real argument writes no channel anyway
                continue
            names.update(values)
    return frozenset(names)


def known_signal(name: str) -> bool:
    return name in documented_signals() or bool(FAMILIES.match(name))


class SignalWatch:
    """Warns, once per name, when a patch version reads a signal that nothing has published
    and no input documents, with the nearest names; the read itself still gives 0.0. Only a
    missed lookup gets here, and each name is judged once, so a patch reading an absent
    channel every frame pays one set lookup."""

    MAX_NAMES = 1024  # names judged per version; a patch that makes up names each frame stops here

    def __init__(self, path, warn: Callable[[str], None]):
        self.path = Path(path)
        self._file = str(self.path)
        self.warn = warn
        self._judged: set = set()

    def view(self, snapshot: Snapshot) -> PatchSignals:
        return PatchSignals.of(snapshot, self)

    def missed(self, name, values) -> None:
        if name in self._judged or len(self._judged) >= self.MAX_NAMES:
            return
        self._judged.add(name)
        if isinstance(name, str) and known_signal(name):
            return
        close = nearest(name, self._candidates(name, values)) if isinstance(name, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        self.warn(f"patch {self.path.name}{self._line()}: no signal {name!r}{hint}")

    @staticmethod
    def _candidates(name: str, values) -> list[str]:
        out = [k for k in values if isinstance(k, str)] + sorted(documented_signals())
        for n in dict.fromkeys(re.findall(r"\d+", name)):
            out += [s.format(n=n) for s in _FAMILY_SPELLINGS]
        return out

    def _line(self) -> str:
        """`` line N``: the innermost line of the patch file on this thread's stack."""
        f = sys._getframe(2)
        while f is not None:
            if f.f_code.co_filename == self._file:
                return f" line {f.f_lineno}"
            f = f.f_back
        return ""


_MISSING = object()


class PatchSignals(Snapshot):
    """The snapshot as ``frame(p, s)`` sees it: the same values, clock and events, and a
    read of a name that is not there goes by the version's :class:`SignalWatch` first."""

    _watch: SignalWatch | None = None   # a copy made by dataclasses.replace has none: it just reads 0.0

    @classmethod
    def of(cls, snapshot: Snapshot, watch: SignalWatch) -> PatchSignals:
        view = object.__new__(cls)
        view.__dict__.update(snapshot.__dict__)  # frozen: filled in directly, as the dataclass does
        view.__dict__["_watch"] = watch
        return view

    def __getitem__(self, name: str):
        v = self.values.get(name, _MISSING)
        if v is _MISSING:
            if self._watch is not None:
                self._watch.missed(name, self.values)
            return 0.0
        return v

    def get(self, name: str, default=0.0):
        v = self.values.get(name, _MISSING)
        if v is _MISSING:
            if self._watch is not None:
                self._watch.missed(name, self.values)
            return default
        return v


@dataclass
class Controls:
    """Everything the generator and the shader chain need for one frame.

    Give one latent: ``z`` (input latent), ``w`` (one style for every layer) or
    ``ws`` (per-layer styles, [num_ws, w_dim]). ``post`` holds shader uniforms by name
    (``feedback``, ``hue``, ``kaleido``, ...; see engine/render/post.py)."""

    z: Any = None
    w: Any = None
    ws: Any = None
    psi: float = 1.0
    noise: Any = "const"
    c: Any = None
    transform: Any = None  # StyleGAN3 input transform, 3x3 (see p.transform)
    post: dict = field(default_factory=dict)

    def check(self) -> None:
        """Raise ValueError on anything the generator cannot take (missing or non-finite)."""
        if self.z is None and self.w is None and self.ws is None:
            raise ValueError("frame() returned no latent (give z=, w= or ws=)")
        for name in ("z", "w", "ws", "c", "transform"):
            v = getattr(self, name)
            if v is not None and not np.all(np.isfinite(np.asarray(v, dtype=np.float64))):
                raise ValueError(f"frame() returned a non-finite {name} (NaN or inf)")
        if not math.isfinite(float(self.psi)):
            raise ValueError("frame() returned a non-finite psi")
        if isinstance(self.noise, str):
            from engine.generators.base import NOISE_MODES  # here: a patch alone (tests, tools) needs no torch
            check_choice("p.controls", "noise", self.noise, NOISE_MODES)
        for k, v in self.post.items():
            try:
                x = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"frame() returned {k}={v!r}; shader settings are single numbers") from None
            if not math.isfinite(x):
                raise ValueError(f"frame() returned a non-finite {k}")


def as_controls(out) -> Controls:
    if isinstance(out, Controls):
        return out
    if isinstance(out, dict):
        out = dict(out)
        known = {k: out.pop(k) for k in ("z", "w", "ws", "psi", "noise", "c", "transform") if k in out}
        return Controls(**known, post=out)
    if out is None:
        raise ValueError("frame() returned nothing; return p.controls(...) or a latent")
    return Controls(z=np.asarray(out, dtype=np.float32))


class PatchContext:
    """The ``p`` handed to ``setup(p)`` and ``frame(p, s)``.

    Attributes a patch sets (``p.keys = ...``) are its state. They persist from frame to
    frame, and a live edit of the same file carries them over (:func:`carry_state`).
    ``frame_time`` shares the frame clock of an earlier version of the patch, so helpers
    of both versions read the same time."""

    def __init__(self, model_info, name: str = "patch", report=None, params=None,
                 frame_time: ops.FrameTime | None = None, space=None):
        self._ft = frame_time if frame_time is not None else ops.FrameTime()
        # the model's latent space (engine/latent/space.py), shared by every version of the patch
        self.space = space
        self._params = params if params is not None else ParamSet()
        self.model = model_info
        self.z_dim = model_info.z_dim
        self.name = name
        self.s = None
        self._report = report or (lambda msg: None)
        # everything set so far is the engine's; whatever the patch sets later is its state
        self._internal = frozenset(vars(self)) | {"_internal"}

    # time of the current frame
    @property
    def time(self) -> float:
        return self._ft.time

    @property
    def dt(self) -> float:
        return self._ft.dt

    @property
    def beat(self) -> float:
        return self._ft.beat

    def _begin(self, snapshot) -> None:
        self.s = snapshot
        ft = self._ft
        ft.dt, ft.time, ft.beat, ft.bpm = snapshot.dt, snapshot.time, snapshot.beat, snapshot.bpm
        ft.beats_per_bar = getattr(snapshot, "beats_per_bar", 4) or 4

    # latents
    def seed(self, n: int) -> np.ndarray:
        return seeds.seed_z(n, self.z_dim)

    def seeds(self, ns) -> list[np.ndarray]:
        return seeds.seeds_z(ns, self.z_dim)

    def random(self) -> np.ndarray:
        return np.random.default_rng().standard_normal(self.z_dim).astype(np.float32)

    slerp = staticmethod(paths.slerp)

    def walk(self, keys, position: float, ease: str = "linear", closed: bool = True) -> np.ndarray:
        check_choice("p.walk", "ease", ease, paths.EASES)
        return paths.walk(keys, position, ease=ease, closed=closed)

    def mix(self, keys, weights, sharpness: float = 1.0) -> np.ndarray:
        """Keys blended by weights (``p.mix(p.keys, s["audio.chroma"])``), kept on the shell."""
        return paths.mix(keys, weights, sharpness)

    def _laps(self, beats, seconds, bars, default_beats: float) -> float:
        """Laps of a loop so far on the frame clock: one lap per ``beats`` beats, ``bars``
        bars or ``seconds`` seconds (at most one of them; none: ``default_beats``)."""
        if sum(x is not None for x in (beats, seconds, bars)) > 1:
            raise ValueError("give one of beats=, bars= or seconds=, not several")
        if seconds is not None:
            return self._ft.time / seconds
        if bars is not None:
            return self._ft.beat / (bars * self._ft.beats_per_bar)
        return self._ft.beat / (beats if beats is not None else default_beats)

    def loop(self, keys, beats: float | None = None, seconds: float | None = None,
             phase: float = 0.0, ease: str = "linear", bars: float | None = None) -> np.ndarray:
        """A closed slerp loop through ``keys``, once around every ``beats`` beats or ``bars``
        bars (tempo-locked) or every ``seconds`` seconds. Default: 4 beats per key."""
        check_choice("p.loop", "ease", ease, paths.EASES)
        pos = self._laps(beats, seconds, bars, 4.0 * len(keys))
        return paths.loop(keys, pos + phase, ease=ease)

    def spline(self, keys, position: float, closed: bool = True, shell: bool = True) -> np.ndarray:
        """A smooth curve exactly through ``keys`` (``p.spline(p.keys, s.beat / 4)``);
        ``shell=False`` for w / ws keys, whose length means nothing."""
        return paths.spline(keys, position, closed=closed, shell=shell)

    def noise_loop(self, seed: int, phase: float | None = None, beats: float | None = None,
                   seconds: float | None = None, bars: float | None = None, harmonics: int = 1,
                   falloff: float = 0.5) -> np.ndarray:
        """An exactly periodic random z path (engine/latent/paths.py ``noise_loop``). With
        ``beats``/``bars``/``seconds`` it turns on the frame clock (``phase`` is then an offset
        in laps); with only ``phase`` it is at that phase; with neither, one lap per 16 beats."""
        if phase is None or any(x is not None for x in (beats, seconds, bars)):
            phase = self._laps(beats, seconds, bars, 16.0) + (phase or 0.0)
        return paths.noise_loop(seed, phase, self.z_dim, harmonics=harmonics, falloff=falloff)

    def grid(self, seeds, cols: int, wrap: bool = False) -> grid.SeedGrid:
        """A rows x cols grid of seeds to move over with ``p.grid_at`` (make it in setup)."""
        return grid.SeedGrid(seeds, cols, self.z_dim, wrap=wrap)

    @staticmethod
    def grid_at(seed_grid, x: float, y: float) -> np.ndarray:
        """The z at column ``x``, row ``y`` of a grid: whole numbers are its seeds, fractions blend."""
        return seed_grid.at(x, y)

    # the model's latent space: w, styles, directions (docs/patches.md, "Latent toolkit")
    def _space(self, what: str):
        if self.space is None:
            raise ValueError(f"p.{what} needs the model's latent space, and this engine gave the patch none")
        return self.space

    def w(self, z, psi: float = 1.0) -> np.ndarray:
        """The style w [w_dim] the model maps ``z`` to (for arithmetic and directions)."""
        return self._space("w").w(z, psi)

    def ws(self, z, psi: float = 1.0) -> np.ndarray:
        """The per-layer styles [num_ws, w_dim] of ``z`` (for style mixing)."""
        return self._space("ws").ws(z, psi)

    def w_avg(self) -> np.ndarray:
        """The model's average style (a method, not a property: a patch may reuse the name for its own state)."""
        return self._space("w_avg").w_avg

    def bookmark(self, name: str) -> np.ndarray:
        """The styles [num_ws, w_dim] of the model's bookmark ``name`` (saved live with ``B`` or
        /vj/bookmark/save): for arithmetic (``p.combine(p.bookmark("other"), plus=[p.bookmark("smile")],
        minus=[p.bookmark("neutral")])``) or truncation toward it."""
        return self._space("bookmark").bookmark(name)

    def direction(self, i: int) -> np.ndarray:
        """Unit principal direction ``i`` in w (0 = the strongest). The first use computes
        them (a second or so; call it in setup) and caches them on disk per model."""
        return self._space("direction").direction(i)

    def directions(self, k: int | None = None) -> np.ndarray:
        return self._space("directions").directions(k)

    def random_directions(self, k: int, seed: int = 0) -> np.ndarray:
        return self._space("random_directions").random_directions(k, seed)

    def save_direction(self, name: str, vector) -> None:
        self._space("save_direction").save_direction(name, vector)

    def direction_named(self, name: str) -> np.ndarray:
        space = self._space("direction_named")
        try:
            return space.direction_named(name)
        except KeyError as e:
            saved = space.named_directions()
            close = nearest(name, saved)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise KeyError(f"{e.args[0] if e.args else e}{hint} (saved: {', '.join(map(repr, saved)) or 'none'})"
                           ) from None

    combine = staticmethod(arithmetic.combine)

    def mix_styles(self, a, b, layers=None, crossover: int | None = None, amount: float = 1.0) -> np.ndarray:
        """``a`` with the chosen layers from ``b`` (``layers=range(4, 8)``, or ``crossover=4``)."""
        return styles.mix(a, b, layers, crossover=crossover, amount=amount, num_ws=self.model.num_ws)

    def truncate(self, ws, psi: float, toward=None, layers=None) -> np.ndarray:
        """Pull ``ws`` towards ``toward`` (default: the model's average style); psi 0 is ``toward``."""
        if toward is None:
            toward = self._space("truncate").w_avg
        return styles.truncate(ws, psi, toward, layers=layers)

    # signal shaping (each helper remembers how it was made: live edits compare that)
    def smooth(self, tau: float, initial=None) -> ops.Smooth:
        return _made(ops.Smooth(self._ft, tau, initial), "smooth", tau, initial)

    def follow(self, attack: float, release: float, initial=0.0) -> ops.AttackRelease:
        return _made(ops.AttackRelease(self._ft, attack, release, initial), "follow", attack, release, initial)

    def envelope(self, attack: float = 0.005, decay: float = 0.3) -> ops.Envelope:
        return _made(ops.Envelope(self._ft, attack, decay), "envelope", attack, decay)

    def lfo(self, shape: str = "sine", beats: float | None = None, seconds: float | None = None,
            phase: float = 0.0, seed: int = 0) -> ops.LFO:
        check_choice("p.lfo", "shape", shape, ops.LFO_SHAPES)
        return _made(ops.LFO(self._ft, shape, beats=beats, seconds=seconds, phase=phase, seed=seed),
                     "lfo", shape, beats, seconds, phase, seed)

    @staticmethod
    def remap(x, in_lo: float = 0.0, in_hi: float = 1.0, out_lo: float = 0.0, out_hi: float = 1.0,
              shape: str | float = "linear", clamp: bool = True):
        """:func:`ops.remap`; a ``shape`` that names no curve is a clear error, not a KeyError."""
        if isinstance(shape, str):
            check_choice("p.remap", "shape", shape, ops.CURVES)
        return ops.remap(x, in_lo, in_hi, out_lo, out_hi, shape, clamp)

    @staticmethod
    def curve(x, shape: str | float = "linear"):
        """:func:`ops.curve`; a ``shape`` that names no curve is a clear error, not a KeyError."""
        if isinstance(shape, str):
            check_choice("p.curve", "shape", shape, ops.CURVES)
        return ops.curve(x, shape)

    # parameters (engine/patching/params.py): live-settable from OSC, OSCQuery and MIDI
    def param(self, name: str, default: float = 0.5, lo: float = 0.0, hi: float = 1.0,
              smooth: float = 0.0, description: str = "") -> float:
        """The current value of the named parameter, in lo..hi: declared on first use,
        published as /vj/param/<name>, bindable to any signal in the mappings file."""
        return self._params.declare(name, default, lo, hi, smooth, description).value

    def age(self, name: str) -> float:
        """Seconds since the signal ``name`` was last updated (inf if never): for streams that stall."""
        t = self.s.times.get(name) if self.s is not None else None
        return float("inf") if t is None else max(0.0, time.monotonic() - t)

    # output
    def controls(self, z=None, w=None, ws=None, psi: float = 1.0, noise="const", c=None,
                 transform=None, **post) -> Controls:
        return Controls(z=z, w=w, ws=ws, psi=psi, noise=noise, c=c, transform=transform, post=post)

    @staticmethod
    def transform(translate=(0.0, 0.0), rotate: float = 0.0) -> np.ndarray:
        """StyleGAN3's input transform: move the picture by ``translate`` (image widths, x
        right, y down) and turn it by ``rotate`` radians; pass it as ``p.controls(transform=...)``.
        Other models ignore it."""
        from engine.generators.stylegan3 import make_transform
        return make_transform(translate, rotate).numpy()

    def log(self, message: str) -> None:
        """Show a message on the console and the HUD (once per distinct message)."""
        self._report(f"{self.name}: {message}")


# ---------------------------------------------------------------------------------------
# live edits: what a reloaded version of the same patch file takes over (docs/patches.md,
# "Live edits keep state")

_HELPERS = (ops.Smooth, ops.AttackRelease, ops.Envelope, ops.LFO)
# a helper's running state; the rest of it is its settings
_RUNNING = {ops.Smooth: ("value",), ops.AttackRelease: ("value",),
            ops.Envelope: ("value", "target", "rising"), ops.LFO: ()}
_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_MAX_DEPTH = 32


def _made(helper, kind: str, *args):
    helper._vj_recipe = (kind, fingerprint(args))
    return helper


def fingerprint(value, _depth: int = 0, _path: frozenset = frozenset()):
    """What ``value`` is, as a comparable description; two values are "the same" when
    their fingerprints are equal (``==``):

    * None, bool, int, float, complex, str, bytes: the same type and an equal value
      (``0`` and ``0.0`` differ; NaN equals NaN);
    * numpy arrays and numpy scalars: the same dtype, shape and contents;
    * list, tuple, dict, set, frozenset: the same type and the same items, compared
      by these rules (dicts and sets in any order);
    * helpers made by ``p.smooth``, ``p.follow``, ``p.envelope``, ``p.lfo``: the same
      kind made with the same arguments (whatever their running state);
    * anything else (objects of the patch's own classes, functions, random generators,
      helpers built by hand): never the same as anything.
    """
    t = type(value)
    if t in _SCALARS:
        if t is float and value != value:
            return ("float", "nan")
        return (t.__name__, value)
    if isinstance(value, np.generic):
        return ("numpy", value.dtype.str, value.tobytes())
    if _depth > _MAX_DEPTH or id(value) in _path:
        return ("opaque", object())
    if t is np.ndarray:
        if value.dtype.hasobject:
            return ("opaque", object())
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if t in _HELPERS:
        recipe = vars(value).get("_vj_recipe")
        return ("helper", recipe) if recipe is not None else ("opaque", object())
    path = _path | {id(value)}
    if t is list or t is tuple:
        return (t.__name__, tuple(fingerprint(v, _depth + 1, path) for v in value))
    if t is set or t is frozenset:
        return (t.__name__, frozenset(fingerprint(v, _depth + 1, path) for v in value))
    if t is dict:
        return ("dict", frozenset((fingerprint(k, _depth + 1, path), fingerprint(v, _depth + 1, path))
                                  for k, v in value.items()))
    return ("opaque", object())


def patch_state(ctx: PatchContext) -> dict:
    """The patch's own attributes on ``p`` (not the engine's), name -> value."""
    internal = ctx._internal
    return {k: v for k, v in vars(ctx).items() if k not in internal}


def setup_record(ctx: PatchContext) -> dict:
    """Fingerprints of what ``setup(p)`` produced, taken right after it ran."""
    return {k: fingerprint(v) for k, v in patch_state(ctx).items()}


def _copy(value, memo: dict):
    """A private copy of a live value (so a new version that fails on its first frame
    leaves the old one exactly as it was); shared when it cannot be copied."""
    if type(value) in _SCALARS:
        return value
    try:
        return copy.deepcopy(value, memo)
    except Exception:  # noqa: BLE001 - locks, modules, generators: share them instead
        return value


def carry_state(old: PatchContext, old_setup: dict, new: PatchContext, new_setup: dict) -> dict:
    """Give ``new`` (a reloaded version of the same file, its ``setup`` already run)
    the running state of ``old``. For each attribute:

    * set by both setups to the same value (:func:`fingerprint`): ``old``'s live value
      is kept, with its running state;
    * set by the new setup to a different value: the new value wins; a smoother,
      follower or envelope whose settings changed continues from the old one's value;
    * set by the old setup, not by the new one: dropped;
    * not set by the old setup (made by ``frame``): carried over, unless the new setup
      sets it.

    Carried values are copies (the old version stays as it was, in case the new one
    fails on its first frame). Returns the attribute names by outcome."""
    live = patch_state(old)
    # the engine's objects are shared, not copied; a reference to the old p becomes the new p
    memo = {id(v): v for k, v in vars(old).items() if k in old._internal}
    memo[id(old)] = new
    out = {"kept": [], "new": [], "dropped": [], "carried": []}
    for name, value in live.items():
        if name in new_setup:
            if name in old_setup and old_setup[name] == new_setup[name]:
                setattr(new, name, _copy(value, memo))
                out["kept"].append(name)
            else:
                if name in old_setup:
                    _continue_helper(value, vars(new)[name], memo)
                out["new"].append(name)
        elif name in old_setup:
            out["dropped"].append(name)
        else:
            setattr(new, name, _copy(value, memo))
            out["carried"].append(name)
    return out


def _continue_helper(old, new, memo: dict) -> None:
    """A helper whose settings changed: the new one takes the old one's running value."""
    if type(old) is type(new) and type(old) in _RUNNING:
        for field_name in _RUNNING[type(old)]:
            setattr(new, field_name, _copy(getattr(old, field_name), memo))
