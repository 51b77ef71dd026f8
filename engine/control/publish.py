"""Publishing the engine's state: the last stage before the outputs.

Every frame the stages leave what they know in ``frame.status`` (the clock sync the tempo,
the set the scene, the recorder whether it records, the parameters their values); this
stage adds the clock and the audio features from the snapshot and swaps the whole dict in
at once, so other threads (the dispatcher, OSCQuery) never see it half-built. From it and
the namespace table come OSC out's ``{address: number}`` and OSCQuery's nodes.
"""
from __future__ import annotations

import math

from engine.control.namespace import expand, readable


class Publisher:
    name = "publish"

    def __init__(self, osc_out=None, params=None, stats=None, scenes: list[str] | None = None):
        self.osc_out = osc_out
        self.params = params        # a ParamSet: its ``published`` dict
        self.stats = stats          # FrameStats: fps
        # what commands are checked against until the first frame publishes
        self.status: dict = {"scene": 1, "scenes": len(scenes or ()) or 1, "scene_names": list(scenes or ()),
                             "params": {}, "audio": {}, "tempo": 120.0}
        self._last_beat: int | None = None

    def get(self) -> dict:
        return self.status

    def run(self, frame) -> None:
        snap = frame.snap
        st = {"scene": 1, "scenes": 1, "scene_names": []}
        st.update(frame.status)
        beat, per_bar = snap.beat, snap.beats_per_bar
        whole = math.floor(beat)
        st.update(frame=float(snap.frame), beat=float(beat), beat_phase=beat % 1.0,
                  beat_trigger=1.0 if self._last_beat is not None and whole != self._last_beat else 0.0,
                  bar=beat / per_bar, bar_phase=(beat / per_bar) % 1.0,
                  fps=float(self.stats.fps) if self.stats is not None else 0.0)
        st.setdefault("tempo", float(snap.bpm))
        self._last_beat = whole
        st["params"] = dict(self.params.published) if self.params is not None else {}
        audio, hands = {}, {}
        for name, v in snap.values.items():
            if name.startswith("audio.") and isinstance(v, float) and math.isfinite(v):
                audio[name[6:]] = v
            elif name.startswith("hands.") and isinstance(v, float) and math.isfinite(v):
                hands[name[6:]] = v
            elif name.startswith("latent.") and isinstance(v, float):
                st["latent_" + name[7:]] = v
        st["audio"] = audio
        st["hands"] = hands
        self.status = st
        if self.osc_out is not None:
            self.osc_out.publish(readable(st, for_out=True))

    # --- OSCQuery, on its own thread: reads the status swapped in last
    def nodes(self) -> list[dict]:
        return nodes(self.status)


def nodes(status: dict) -> list[dict]:
    """The OSCQuery nodes of the whole namespace, with values and ranges, from the table."""
    values = readable(status)
    out = [{"FULL_PATH": "/vj", "ACCESS": 0, "DESCRIPTION": "vj engine"},
           {"FULL_PATH": "/vj/param", "ACCESS": 0, "DESCRIPTION": "patch parameters"}]
    for e, key in expand(status):
        path = e.path(key)
        node = {"FULL_PATH": path, "TYPE": e.type_tag(), "ACCESS": (1 if e.readable else 0) | (2 if e.writable else 0),
                "DESCRIPTION": e.describe(status, key) if e.describe else e.description}
        if path in values:
            v = values[path]
            node["VALUE"] = [int(v) if node["TYPE"] == "i" else v]
        sig = e.first_signature()
        arg = sig[0] if sig else None
        if arg is not None and arg.choices is not None:
            node["RANGE"] = [{"VALS": list(arg.choices(status))}]
        elif arg is not None and arg.type in "fi":
            lo, hi = arg.range(status, key)
            if lo is not None and hi is not None and abs(lo) < 1e30:
                node["RANGE"] = [{"MIN": lo, "MAX": hi}]
            if arg.clip:
                node["CLIPMODE"] = "both"
        elif e.range is not None:
            node["RANGE"] = [{"MIN": e.range[0], "MAX": e.range[1]}]
        others = [s for s in e.signatures if s and s is not sig]
        if others:   # /vj/scene takes a number or a scene's name: the names are its choices
            node["OVERLOADS"] = [_overload(s, status, key) for s in others]
        out.append(node)
    return out


def _overload(sig, status: dict, key: str) -> dict:
    """An alternative argument list as OSCQuery's OVERLOADS writes it: its type and a range
    per argument (empty where there is none)."""
    ranges = []
    for arg in sig:
        r: dict = {}
        if arg.choices is not None:
            r = {"VALS": list(arg.choices(status))}
        elif arg.type in "fi":
            lo, hi = arg.range(status, key)
            if lo is not None and hi is not None and abs(lo) < 1e30:
                r = {"MIN": lo, "MAX": hi}
        ranges.append(r)
    out: dict = {"TYPE": "".join(a.type for a in sig)}
    if any(ranges):
        out["RANGE"] = ranges
    return out

