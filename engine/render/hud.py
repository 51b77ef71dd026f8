"""The on-screen HUD: fps, frame time, patch, dropped frames, the last error, and with audio
its level and input gain (``audio -12 dB  gain manual +6 dB``).

Text is drawn with Pillow's built-in font into a small RGBA image and uploaded only
when it changes (a few times a second), so the HUD costs one extra blended quad.
"""
from __future__ import annotations

import logging
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont


class HudText:
    def __init__(self, size: int = 16):
        self.font = ImageFont.load_default(size=size)
        self.line_h = size + 4
        self._last: tuple[str, ...] | None = None

    def render(self, lines: list[str]) -> np.ndarray | None:
        """RGBA uint8 image of the lines, top row first; None if unchanged since last call."""
        key = tuple(lines)
        if key == self._last:
            return None
        self._last = key
        h = self.line_h * max(1, len(lines)) + 8
        w = 12 + int(max(self.font.getlength(line) for line in lines)) if lines else 12
        img = Image.new("RGBA", (w, h), (0, 0, 0, 150))
        draw = ImageDraw.Draw(img)
        for i, line in enumerate(lines):
            colour = (255, 110, 90, 255) if line.startswith("!") else (235, 235, 235, 255)
            draw.text((6, 4 + i * self.line_h), line, font=self.font, fill=colour)
        return np.asarray(img)


def hud_lines(stats, patch_name: str, error: str | None, model: str, size, fps_target: float,
              note: str | None = None, display: str = "") -> list[str]:
    latency = f"  input {stats.latency_ms:4.0f} ms" if stats.latency_ms is not None else ""
    lines = [
        f"{stats.fps:5.1f} fps (target {fps_target:g})  frame {stats.frame_ms:5.1f} ms  "
        f"gen {stats.gen_ms:5.1f} ms  dropped {stats.dropped}{latency}",
        f"patch {patch_name}   model {model}   {size[0]}x{size[1]}" + (f"   {display}" if display else ""),
    ]
    if note:
        lines.append(note[:120])
    if error:
        for chunk in [error[i:i + 90] for i in range(0, min(len(error), 270), 90)]:
            lines.append("! " + chunk)
    return lines


log = logging.getLogger("vj")


class StatusBoard:
    """What the HUD and the status line say, composed from the parts a Session built (each
    optional, read duck-typed): frame stats, the patch, the set, parameters and learn, the
    dispatcher's and the inputs' counts, and news (learnt bindings, devices plugged, takes)
    shown for five seconds each."""

    NEWS_S = 5.0

    def __init__(self, stats, patches, model: str, size, fps: float, setlist=None, params=None, dispatcher=None,
                 recording=None, osc_in=None, oscquery=None, midi=None, mappings=None, display: str = "",
                 generate=None, hands=None, scenes=None, bookmarks=None, audio=None):
        self.stats, self.patches, self.model, self.size, self.fps = stats, patches, model, size, fps
        self.display = display    # the frame's path: pipelined or serial, and how the image reaches OpenGL
        self.generate = generate  # its ``late`` count: frames shown with an older image
        self.hands = hands        # control/hands.py HandsStage: the tracker's and the sources' counts
        self.scenes = scenes      # show/scenes.py SetStage: the transition under way
        self.bookmarks = bookmarks  # show/bookmark_stage.py BookmarkStage: the bookmark held
        self.audio = audio        # signals/audio.py GainStage: the level heard and the input gain
        self.setlist, self.params, self.dispatcher, self.recording = setlist, params, dispatcher, recording
        self.osc_in, self.oscquery, self.midi = osc_in, oscquery, midi
        self.mappings = mappings  # its load and save problems are news on the HUD
        self.news: list[tuple[float, str]] = []
        self._shown: dict[str, str] = {}
        self._reported = 0

    def _add(self, now: float, msg: str) -> None:
        self.news.append((now, msg))
        del self.news[:-6]

    def report_problems(self) -> None:
        """Off the render thread, twice a second: say so when new bad packets or commands were counted."""
        problems = sum(part.problems() for part in (self.dispatcher, self.osc_in and self.osc_in.stats,
                                                    self.oscquery and self.oscquery.stats) if part)
        if problems > self._reported:
            self._reported = problems
            msg = f"osc: {self.input_summary()}"
            log.warning("%s", msg)
            self._add(time.monotonic(), msg)

    def input_summary(self) -> str:
        parts = [self.osc_in.stats.summary()] if self.osc_in is not None else []
        if self.oscquery is not None:
            parts.append(self.oscquery.summary())
        if self.dispatcher is not None:
            parts.append(self.dispatcher.summary())
        return ", ".join(parts)

    def hud_lines(self) -> list[str]:
        now = time.monotonic()
        p = self.patches
        note = p.last_message[1] if p.last_message and now - p.last_message[0] < self.NEWS_S else None
        label = p.name
        if self.setlist is not None:
            sl = self.setlist
            label = f"{label}  (scene {sl.index + 1}/{len(sl.scenes)} {sl.scene.name}{self.show_line()})"
        return hud_lines(self.stats, label, p.last_error, self.model, self.size, self.fps, note,
                         self.display_line()) + self.control_lines(now)

    def show_line(self) -> str:
        """`` crossfade 40%`` while a transition is under way, `` held at sunrise`` while a bookmark holds."""
        parts = []
        tr = getattr(self.scenes, "transition", None)
        if tr is not None:
            parts.append(f"{tr.kind} {tr.amount:.0%}")
        hold = getattr(self.bookmarks, "hold", None)
        if hold is not None:
            parts.append(f"held at {hold.name}")
        return "".join(f", {p}" for p in parts)

    def display_line(self) -> str:
        """``pipelined, pbo`` and what deserves a look: generator late, recording frames dropped."""
        parts = [self.display] if self.display else []
        late = getattr(self.generate, "late", 0)
        if late:
            parts.append(f"generator late {late}")
        dropped = getattr(self.recording, "dropped", 0)
        if dropped:
            parts.append(f"rec dropped {dropped}")
        return ", ".join(parts)

    def control_lines(self, now: float | None = None) -> list[str]:
        """Inputs (marked red for five seconds after new bad packets), learn, and news."""
        now = time.monotonic() if now is None else now
        lines, parts = [], []
        if self.osc_in is not None:
            parts.append(f"osc :{self.osc_in.port} {self.osc_in.stats.summary()}")
        if self.oscquery is not None:
            parts.append(f"oscquery :{self.oscquery.port} {self.oscquery.summary()}")
        if self.midi is not None:
            parts.append(self.midi.summary())
        if self.hands is not None:
            parts.append(self.hands_summary())
        if self.audio is not None:
            lines.append(self.audio.hud_line())
        for key, latest in (("params", self.params.messages[-1:] if self.params else []),
                            ("midi", self.midi.events[-1:] if self.midi is not None else []),
                            ("record", [m for _, m in self.recording.messages[-1:]] if self.recording else []),
                            ("mappings", [self.mappings.error] if self.mappings is not None and self.mappings.error
                             else [])):
            if latest and latest[0] is not self._shown.get(key):
                self._shown[key] = latest[0]
                if not latest[0].startswith("learn "):
                    self._add(now, latest[0])
        recent = [m for t, m in self.news if now - t < self.NEWS_S]
        if parts:
            lines.append(("! " if any(m.startswith("osc: ") for m in recent) else "") + "  ".join(parts))
        if self.params is not None and self.params.learning:
            lines.append(f"LEARN {self.params.learning[0]}: move a control (MIDI or OSC)")
        notes = [m for m in recent if not m.startswith("osc: ")]
        return lines + [n[:110] for n in notes[-2:]]

    def hands_summary(self) -> str:
        """``hands 2 visible, 721 hand frames, hand to frame 41 ms``."""
        lat = self.stats.latency_by.get("hands")
        more = f", hand to frame {lat:.0f} ms" if lat is not None else ""
        return f"hands {self.hands.summary()}{more}"

    def status_line(self) -> str:
        p = self.patches
        parts = [f"patch {p.name}"]
        shown = self.display_line()
        if shown:
            parts.append(shown)
        if p.last_error:
            parts.append(f"last error: {p.last_error}")
        if self.osc_in is not None:
            parts.append(f"osc {self.input_summary()}")
        if self.midi is not None:
            parts.append(self.midi.summary())
        if self.hands is not None:
            parts.append(self.hands_summary())
        if self.audio is not None:
            parts.append(self.audio.hud_line())
        return ", ".join(parts)
