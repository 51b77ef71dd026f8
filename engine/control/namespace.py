"""The engine's own OSC namespace, declared once.

Every address a performer or a controller can use (``/vj/scene``, ``/vj/tempo``,
``/vj/param/<name>`` ...) is one ``Entry`` in ``TABLE``: its arguments with their types
and ranges, whether it is read, written or an event, a one-line description, what it does
(the bus channels and events it becomes) and how its current value is read. Everything
else is derived from this table: the dispatcher's validation (``dispatch.py``), the
OSCQuery tree and OSC out (``publish.py``), the targets MIDI/OSC learn may bind, and the
README's table (``markdown()``; ``tests/test_namespace.py`` keeps the README equal to it).

Values a table entry reads come from ``status``: a flat dict the render thread rebuilds
every frame (tempo, beat, scene, params, audio features ...; ``publish.Publisher``).
Ranges that depend on the show (how many scenes, which parameters) read it too.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from engine.limits import NAME_RE  # a patch parameter's name

F32_MAX = 3.4028234e38
INT_MAX = 2 ** 31 - 1
MAX_STRING = 64                                          # names of scenes, takes, parameters


@dataclass(frozen=True)
class Arg:
    """One argument: ``type`` is an OSC type tag, ``f`` (float), ``i`` (int) or ``s`` (string).

    Numbers must be finite and inside ``lo..hi`` (or ``bounds(status, key)`` when the range
    depends on the show or on the ``{name}``); with ``clip`` they are clipped into it instead
    of refused. Booleans (OSC ``T``/``F``) count as 1 and 0. Strings are at
    most ``max_len`` printable characters and, with ``choices(status)``, one of those."""

    type: str
    name: str = ""
    lo: float | None = None
    hi: float | None = None
    bounds: Callable[[dict, str], tuple[float, float]] | None = None
    choices: Callable[[dict], list[str]] | None = None
    max_len: int = MAX_STRING
    clip: bool = False

    def range(self, status: dict, key: str = "") -> tuple[float | None, float | None]:
        return self.bounds(status, key) if self.bounds is not None else (self.lo, self.hi)


# what an entry does: (key, values) -> (channels to set, events to emit)
Action = Callable[[str, tuple], tuple[dict, list]]


@dataclass(frozen=True)
class Entry:
    """One address. ``{name}`` in ``address`` stands for one path segment (a parameter, a
    feature); ``names(status)`` lists the segments that exist now. ``access`` is ``r``
    (read: published, sent by OSC out), ``w`` (an event or a command), ``rw`` (both).
    ``signatures`` are the argument lists it accepts (alternatives); ``read(status, key)`` its
    current value; ``learn``: MIDI/OSC learn may bind a control to it; ``valid(status, key)``
    which ``{name}`` segments it accepts (default: those ``names`` lists now);
    ``describe(status, key)`` a description of one concrete address."""

    address: str
    description: str
    access: str
    signatures: tuple[tuple[Arg, ...], ...] = ((),)
    does: Action | None = None
    read: Callable[[dict, str], Any] | None = None
    names: Callable[[dict], Iterable[str]] | None = None
    learn: bool = False
    out: bool = True       # readable entries are sent by OSC out unless this is False
    typetag: str = ""      # OSCQuery TYPE when the value's type is not the first signature's
    range: tuple | None = None  # of a read-only value, for OSCQuery
    valid: Callable[[dict, str], bool] | None = None
    describe: Callable[[dict, str], str] | None = None

    @property
    def pattern(self) -> bool:
        return "{name}" in self.address

    @property
    def readable(self) -> bool:
        return "r" in self.access

    @property
    def writable(self) -> bool:
        return "w" in self.access

    def path(self, key: str = "") -> str:
        return self.address.replace("{name}", key)

    def first_signature(self) -> tuple[Arg, ...]:
        return next((s for s in self.signatures if s), ())

    def type_tag(self) -> str:
        if self.typetag:
            return self.typetag
        return "".join(a.type for a in self.first_signature()) or ("N" if not self.readable else "f")

    def spelled(self) -> str:
        """How the README writes the address with each argument list it takes:
        ``/vj/scene n``, ``/vj/scene name``."""
        address = self.address.replace("{name}", "<name>")
        return ", ".join(f"`{address}{''.join(' ' + (a.name or a.type) for a in sig)}`" for sig in self.signatures)


# --- readers and actions -------------------------------------------------------------------------

def _status(key: str, default=0.0):
    return lambda st, _k: st.get(key, default)


def _event(name: str, value=None):
    return lambda key, vals: ({}, [(name, vals[0] if vals and value is None else value)])


def _scene_bounds(st: dict, key: str = "") -> tuple[float, float]:
    return 1, max(1, int(st.get("scenes", 1)))


def _scene_names(st: dict) -> list[str]:
    return list(st.get("scene_names", ()))


def _scene(key, vals):
    return {}, [("cue.goto", vals[0])]


def _param(how: str):
    def act(key, vals):
        return {}, [("param.set", (key, vals[0], how))]
    return act


def _param_names(st: dict) -> list[str]:
    return sorted(st.get("params", {}))


def _raw_bounds(st: dict, key: str = "") -> tuple[float, float]:
    p = st.get("params", {}).get(key)
    if p is None:  # not declared yet (a scene still loading): kept until it is, clamped then
        return -F32_MAX, F32_MAX
    return min(p["lo"], p["hi"]), max(p["lo"], p["hi"])


def _param_key(st: dict, key: str) -> bool:
    """Any well-formed name: a parameter may be set before its patch declares it (a scene
    still loading); the value waits for the declaration."""
    return bool(NAME_RE.match(key))


def _param_text(how: str):
    def describe(st, key):
        p = st.get("params", {}).get(key)
        if p is None:
            return f"patch parameter {key}"
        d = p["description"] or key
        return f"{d} (0..1 of {p['lo']:g}..{p['hi']:g})" if how == "norm" else f"{d}, in its own units"
    return describe


def _learn(key, vals):
    if not vals:
        return {}, [("param.learn", 1.0)]          # no name: the next parameter in turn (the L key)
    return {}, [("param.learn", tuple(vals))]


def _latent(kind: str):
    def act(key, vals):
        v = vals[0]
        return {f"latent.{kind}": float(v)}, [(f"latent.{kind}", v)]
    return act


def _bookmarks(st: dict) -> list[str]:
    return list(st.get("bookmarks", ()))


def _bookmark(how: str):
    def act(key, vals):
        return {}, [("bookmark." + how, tuple(vals))]
    return act


def learn_targets(status: dict) -> list[str]:
    """What ``/vj/learn`` may bind: the patch's parameters, then the learnable addresses."""
    return _param_names(status) + [e.address for e in TABLE if e.learn and not e.pattern]


def _param_value(how: str):
    def read(st, key):
        p = st.get("params", {}).get(key)
        return None if p is None else p["norm" if how == "norm" else "value"]
    return read


GAIN_MODES = ("auto", "slow", "locked", "manual")    # = engine.signals.features.GAIN_MODES


def _gain_lock(key, vals):
    return {}, [("audio.gain.lock", bool(vals[0]) if vals else None)]   # None: toggle


F = Arg("f")
TABLE: tuple[Entry, ...] = (
    Entry("/vj/scene", "the current scene (from 1); send a number or a scene's name to go there", "rw",
          ((Arg("i", "n", bounds=_scene_bounds),), (Arg("s", "name", choices=_scene_names),)), _scene,
          _status("scene", 1)),
    Entry("/vj/cue/next", "next scene of the set", "w", ((),), _event("cue.next", 1.0), learn=True),
    Entry("/vj/cue/prev", "previous scene of the set", "w", ((),), _event("cue.prev", 1.0), learn=True),
    Entry("/vj/cue/goto", "go to scene n (from 1)", "w", ((Arg("i", "n", bounds=_scene_bounds),),), _scene),
    Entry("/vj/tempo", "tempo in bpm (20..400)", "rw", ((Arg("f", "bpm", 20.0, 400.0),),),
          _event("clock.tempo"), _status("tempo", 120.0), learn=True),
    Entry("/vj/tap", "tap the tempo", "w", ((),), _event("clock.tap", 1.0), learn=True),
    Entry("/vj/beat", "beats since the start", "r", read=_status("beat")),
    Entry("/vj/beat/phase", "position in the current beat, 0..1", "r", read=_status("beat_phase"), range=(0.0, 1.0)),
    Entry("/vj/beat/trigger", "1 on the frame a beat starts, else 0", "r", read=_status("beat_trigger"), range=(0.0, 1.0)),
    Entry("/vj/bar", "bars since the start", "r", read=_status("bar")),
    Entry("/vj/bar/phase", "position in the current bar, 0..1", "r", read=_status("bar_phase"), range=(0.0, 1.0)),
    Entry("/vj/fps", "frames drawn per second", "r", read=_status("fps")),
    Entry("/vj/frame", "frame number", "r", read=_status("frame")),
    Entry("/vj/record", "1 while recording, else 0", "r", read=_status("recording"), typetag="i",
          range=(0, 1)),
    Entry("/vj/record/start", "start recording to --record-dir, named s or by the date", "w",
          ((), (Arg("s", "s"),)), _event("record.start")),
    Entry("/vj/record/stop", "stop the recording started by /vj/record/start", "w", ((),), _event("record.stop")),
    Entry("/vj/param/{name}", "a patch parameter, 0..1 of its range", "rw",
          ((Arg("f", lo=0.0, hi=1.0, clip=True),),), _param("norm"), _param_value("norm"),
          names=_param_names, learn=True, valid=_param_key, describe=_param_text("norm")),
    Entry("/vj/param/{name}/raw", "a patch parameter in its own units", "rw",
          ((Arg("f", bounds=_raw_bounds, clip=True),),), _param("raw"), _param_value("raw"), names=_param_names,
          out=False, valid=_param_key, describe=_param_text("raw")),
    Entry("/vj/learn", "bind the next control moved (MIDI or OSC) to s, a parameter or a learnable address; "
          "no argument: the next parameter in turn", "w",
          ((), (Arg("s", "s", choices=learn_targets, max_len=128),),
           (Arg("s", "s", choices=learn_targets, max_len=128),
            Arg("s", "relative", choices=lambda st: ["absolute", "relative", "relative-offset"]))), _learn),
    Entry("/vj/learn/cancel", "stop learning", "w", ((),), lambda k, v: ({}, [("param.learn", None)])),
    Entry("/vj/latent/key", "a keyframe index for patches (s[\"latent.key\"])", "rw",
          ((Arg("i", "i", 0, INT_MAX),),), _latent("key"), _status("latent_key"), typetag="i"),
    Entry("/vj/latent/seed", "a seed for patches (s[\"latent.seed\"])", "rw",
          ((Arg("i", "i", 0, INT_MAX),),), _latent("seed"), _status("latent_seed"), typetag="i"),
    Entry("/vj/latent/position", "a position 0..1 for patches (s[\"latent.position\"])", "rw",
          ((Arg("f", "f", 0.0, 1.0),),), _latent("position"), _status("latent_position"), learn=True),
    Entry("/vj/bookmark/save", "bookmark the latent on screen and the parameters, named s or numbered", "w",
          ((), (Arg("s", "name"),)), _bookmark("save"), learn=True),
    Entry("/vj/bookmark/recall", "go to bookmark s (with the parameters it saved), over f seconds; "
          "it holds until released", "w",
          ((Arg("s", "name", choices=_bookmarks),), (Arg("s", "name", choices=_bookmarks), Arg("f", "seconds", 0.0, 600.0))),
          _bookmark("recall")),
    Entry("/vj/bookmark/recall/beats", "go to bookmark s over f beats", "w",
          ((Arg("s", "name", choices=_bookmarks), Arg("f", "beats", 0.0, 1024.0)),), _bookmark("recall_beats")),
    Entry("/vj/bookmark/release", "hand the latent back to the patch, over f seconds", "w",
          ((), (Arg("f", "seconds", 0.0, 600.0),)), _bookmark("release"), learn=True),
    Entry("/vj/bookmark/rename", "rename bookmark s to the second name", "w",
          ((Arg("s", "name", choices=_bookmarks), Arg("s", "new")),), _bookmark("rename")),
    Entry("/vj/bookmark/delete", "delete bookmark s", "w", ((Arg("s", "name", choices=_bookmarks),),),
          _bookmark("delete")),
    Entry("/vj/bookmark/hold", "how far the picture is held at a recalled bookmark, 0..1", "r",
          read=_status("bookmark_hold"), range=(0.0, 1.0)),
    Entry("/vj/audio/{name}", "an audio feature (levels, bands, onsets, drums, tempo ...)", "r",
          read=lambda st, k: st.get("audio", {}).get(k), names=lambda st: sorted(st.get("audio", {}))),
    Entry("/vj/audio/gain", "audio input gain in dB (-24..24, clamped); it shows when the automatic gain is "
          "locked or in manual mode", "rw", ((Arg("f", "db", -24.0, 24.0, clip=True),),), _event("audio.gain"),
          _status("audio_gain_db", 0.0), learn=True),
    Entry("/vj/audio/gain/mode", "how audio levels are normalised: auto (automatic gain), slow (60 s release), "
          "locked (frozen), manual (fixed references times the gain)", "w",
          ((Arg("s", "mode", choices=lambda st: list(GAIN_MODES)),),), _event("audio.gain.mode")),
    Entry("/vj/audio/gain/lock", "lock the automatic gain (1), unlock it (0: back to the mode before); "
          "no argument: toggle", "rw", ((), (Arg("i", "on", 0, 1),)), _gain_lock,
          _status("audio_gain_locked", 0.0), learn=True, typetag="i", range=(0, 1)),
    Entry("/vj/hands/{name}", "a hand signal (--hands): right.palm.x, left.grab, count ...", "r",
          read=lambda st, k: st.get("hands", {}).get(k), names=lambda st: sorted(st.get("hands", {}))),
    Entry("/vj/hands/filter/min_cutoff", "hand smoothing: One Euro min cutoff in Hz (lower: steadier, laggier)",
          "rw", ((Arg("f", "hz", 0.001, 100.0),),), _event("hands.filter.min_cutoff"),
          _status("hands_min_cutoff", 1.0)),
    Entry("/vj/hands/filter/beta", "hand smoothing: One Euro beta (higher: less lag on fast moves)", "rw",
          ((Arg("f", "beta", 0.0, 10.0),),), _event("hands.filter.beta"), _status("hands_beta", 0.007)),
)

_EXACT = {e.address: e for e in TABLE if not e.pattern}
_PATTERNS = [(re.compile(r"\A" + re.escape(e.address).replace(r"\{name\}", r"([^/\s]+)") + r"\Z"), e)
             for e in TABLE if e.pattern]


def lookup(address: str) -> tuple[Entry | None, str]:
    """The entry an address belongs to, and the ``{name}`` it filled (``""`` for plain ones)."""
    e = _EXACT.get(address)
    if e is not None:
        return e, ""
    for rx, e in _PATTERNS:
        m = rx.match(address)
        if m:
            return e, m.group(1)
    return None, ""


def key_ok(entry: Entry, key: str, status: dict) -> bool:
    """Is ``key`` a valid ``{name}`` for this entry now?"""
    if not entry.pattern:
        return True
    if entry.valid is not None:
        return entry.valid(status, key)
    return entry.names is not None and key in set(entry.names(status))


def expand(status: dict) -> list[tuple[Entry, str]]:
    """Every concrete address now: (entry, key) with key ``""`` for plain entries."""
    out = []
    for e in TABLE:
        if e.pattern:
            out.extend((e, k) for k in (e.names(status) if e.names else ()))
        else:
            out.append((e, ""))
    return out


def readable(status: dict, for_out: bool = False) -> dict[str, float]:
    """``{address: number}`` for every readable entry that has a finite value now: what
    OSCQuery serves as VALUE, and with ``for_out`` what OSC out sends (``out=False`` left out)."""
    out = {}
    for e, key in expand(status):
        if not e.readable or e.read is None or for_out and not e.out:
            continue
        v = e.read(status, key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[e.path(key)] = float(v)
    return out


def markdown() -> str:
    """The README's table of the namespace."""
    lines = ["| address | access | does |", "|---|---|---|"]
    for e in TABLE:
        access = {"r": "read", "w": "write", "rw": "read, write"}[e.access]
        lines.append(f"| {e.spelled()} | {access} | {e.description} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m engine.control.namespace: the README table
    print(markdown())
