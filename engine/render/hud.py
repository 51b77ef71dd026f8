"""The on-screen HUD: what a performer reads at a glance first (the tempo, its source, the
beat in the bar with a flashing beat dot, and which inputs are live), then fps, frame time,
patch, dropped frames, the last error, and with audio its level and input gain
(``audio -12 dB  gain manual +6 dB``).

Text is drawn with Pillow's built-in font into a small RGBA image and uploaded only
when it changes (a few times a second, and on each new beat), so the HUD costs one extra
blended quad. The beat dots are not text: ``beat_dots`` gives a few small squares per frame,
in the space ``HudText`` leaves free at the start of the first line, so they flash on the
beat at the frame rate without re-rendering any text.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine.signals.features import DB_FLOOR


class HudText:
    def __init__(self, size: int = 16):
        self.font = ImageFont.load_default(size=size)
        self.line_h = size + 4
        self._last: tuple[str, ...] | None = None

    def render(self, lines: list[str], lead: int = 0) -> np.ndarray | None:
        """RGBA uint8 image of the lines, top row first, the first line moved right by ``lead``
        pixels (room for the beat dots); None if unchanged since last call."""
        key = (tuple(lines), lead)
        if key == self._last:
            return None
        self._last = key
        h = self.line_h * max(1, len(lines)) + 8
        w = 12 + int(max(self.font.getlength(line) + (lead if i == 0 else 0) for i, line in enumerate(lines))) \
            if lines else 12 + lead
        img = Image.new("RGBA", (w, h), (0, 0, 0, 150))
        draw = ImageDraw.Draw(img)
        for i, line in enumerate(lines):
            colour = (255, 110, 90, 255) if line.startswith("!") else (235, 235, 235, 255)
            draw.text((6 + (lead if i == 0 else 0), 4 + i * self.line_h), line, font=self.font, fill=colour)
        return np.asarray(img)


# the clock sync's owners (control/clock_sync.py PRIORITY) as a performer names them
SOURCES = {"keys": "tap", "osc": "OSC", "midi": "MIDI", "audio": "audio", "set": "set", "link": "Link"}


@dataclass(frozen=True)
class Beat:
    """The clock as the HUD shows it: tempo, who set it, where the beat is. ``audio_bar`` is
    ``audio.bar_phase`` (with ``audio_phase``, ``audio.beat_phase``) while the audio owns the
    tempo: then the bar is the tracker's, not the clock's count."""

    bpm: float = 120.0
    beat: float = 0.0
    beats_per_bar: int = 4
    source: str = "set"
    running: bool = True
    audio_bar: float | None = None
    audio_phase: float = 0.0
    link_peers: int | None = None     # None: not in a Link session

    @property
    def phase(self) -> float:
        return self.beat % 1.0

    def bar(self) -> tuple[int, int]:
        """(the beat in the bar, from 1; beats in the bar)."""
        if self.audio_bar is not None:
            return audio_bar(self.audio_bar, self.audio_phase)
        n = max(1, int(self.beats_per_bar))
        return math.floor(self.beat) % n + 1, n


def audio_bar(bar_phase: float, beat_phase: float) -> tuple[int, int]:
    """The beat in the bar and the meter from the tracker's ``bar_phase = (k + beat_phase) / B``
    (B is 3 or 4; the tracker knows no other): the B that makes k a whole number."""
    def off(b: int) -> float:
        return abs((bar_phase * b - beat_phase + 0.5) % 1.0 - 0.5)
    b = min((4, 3), key=off)
    return round(bar_phase * b - beat_phase) % b + 1, b


def beat_of(frame, running: bool = True) -> Beat:
    """A frame's Beat: the tempo and its owner the clock sync left in ``frame.status``, the beat
    from its snapshot."""
    snap, st = frame.snap, frame.status
    owner = st.get("tempo_source", "set")
    label = SOURCES.get(owner, owner)
    values = snap.values
    if owner == "midi" and "midi.clock.bpm" in values:
        label = "MIDI clock"
    audio = owner == "audio" and "audio.bar_phase" in values
    return Beat(bpm=float(st.get("tempo", snap.bpm)), beat=float(snap.beat), beats_per_bar=int(snap.beats_per_bar),
                source=label, running=running, audio_bar=float(values["audio.bar_phase"]) if audio else None,
                audio_phase=float(values.get("audio.beat_phase", 0.0)), link_peers=st.get("link_peers"))


def tempo_line(beat: Beat) -> str:
    """``128.0 bpm tap  2/4`` (``stopped`` while a MIDI transport holds the beat)."""
    k, n = beat.bar()
    return f"{beat.bpm:5.1f} bpm {beat.source}  {k}/{n}" + ("" if beat.running else "  stopped")


DOT, DOT_GAP, MAX_DOTS = 10, 6, 8     # pixels; a longer bar shows one dot
DOWNBEAT_RGB, BEAT_RGB, UNLIT_RGB = (1.0, 0.6, 0.15), (0.92, 0.92, 0.92), (0.2, 0.2, 0.2)


def dots_lead(beat: Beat) -> int:
    """The room the beat dots take at the start of the first line, in pixels."""
    n = beat.bar()[1]
    return (n if n <= MAX_DOTS else 1) * (DOT + DOT_GAP) + DOT_GAP


def flash(phase: float, running: bool = True) -> float:
    """The lit dot's brightness: full on the beat, fading over the first 0.4 of it."""
    return 0.3 + 0.7 * max(0.0, 1.0 - phase / 0.4) if running else 0.3


def beat_dots(beat: Beat, line_h: int) -> list[tuple[int, int, int, tuple[float, float, float]]]:
    """One square per beat of the bar, (x, y from the top, size, rgb 0..1) in the HUD image's
    pixels; the current beat's lit (the one orange), the others unlit."""
    k, n = beat.bar()
    f = flash(beat.phase, beat.running)
    lit = tuple(c * f for c in (DOWNBEAT_RGB if k == 1 else BEAT_RGB))
    y = 4 + (line_h - DOT) // 2
    if n > MAX_DOTS:
        return [(6, y, DOT, lit)]
    return [(6 + i * (DOT + DOT_GAP), y, DOT, lit if i == k - 1 else UNLIT_RGB) for i in range(n)]


def hud_lines(stats, patch_name: str, error: str | None, model: str, size, fps_target: float,
              note: str | None = None, display: str = "", beat: Beat | None = None,
              inputs: list[tuple[str, str]] | None = None) -> list[str]:
    """The HUD's text, top line first: with ``beat``, the tempo line (the beat dots go before
    it); with ``inputs`` (name, state), which are live; then frames, patch, news, errors."""
    latency = f"  input {stats.latency_ms:4.0f} ms" if stats.latency_ms is not None else ""
    lines = [tempo_line(beat)] if beat is not None else []
    if inputs:
        lines.append("  ".join(f"{name} {state}" for name, state in inputs))
    lines += [
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
    LIVE_S = 2.0    # an input is live while it has been heard from this recently

    def __init__(self, stats, patches, model: str, size, fps: float, setlist=None, params=None, dispatcher=None,
                 recording=None, osc_in=None, oscquery=None, ws_osc=None, midi=None, mappings=None, display: str = "",
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
        self.ws_osc = ws_osc      # OSC packets over OSCQuery's WebSocket: counted by a handler of their own
        self.mappings = mappings  # its load and save problems are news on the HUD
        self.news: list[tuple[float, str]] = []
        self._shown: dict[str, str] = {}
        self._reported = 0
        self._heard: dict[str, tuple[int, float]] = {}   # input -> (its count, when it last grew)

    def _add(self, now: float, msg: str) -> None:
        self.news.append((now, msg))
        del self.news[:-6]

    def report_problems(self) -> None:
        """Off the render thread, twice a second: say so when new bad packets or commands were counted."""
        problems = sum(part.problems() for part in (self.dispatcher, self.osc_in and self.osc_in.stats,
                                                    self.oscquery and self.oscquery.stats,
                                                    self.ws_osc and self.ws_osc.stats) if part)
        if problems > self._reported:
            self._reported = problems
            msg = f"osc: {self.input_summary()}"
            log.warning("%s", msg)
            self._add(time.monotonic(), msg)

    def input_summary(self) -> str:
        parts = [self.osc_in.stats.summary()] if self.osc_in is not None else []
        if self.oscquery is not None:
            parts.append(self.oscquery.summary())
        if self.ws_osc is not None and self.ws_osc.stats.problems():
            parts.append(f"websocket OSC {self.ws_osc.stats.summary()}")
        if self.dispatcher is not None:
            parts.append(self.dispatcher.summary())
        return ", ".join(parts)

    def hud_lines(self, beat: Beat | None = None) -> list[str]:
        """The HUD's text; the tempo and the inputs' line only with the window's ``beat``."""
        now = time.monotonic()
        p = self.patches
        note = p.last_message[1] if p.last_message and now - p.last_message[0] < self.NEWS_S else None
        label = p.name
        if self.setlist is not None:
            sl = self.setlist
            label = f"{label}  (scene {sl.index + 1}/{len(sl.scenes)} {sl.scene.name}{self.show_line()})"
        return hud_lines(self.stats, label, p.last_error, self.model, self.size, self.fps, note,
                         self.display_line(), beat, self.inputs(beat, now) if beat is not None else None) \
            + self.control_lines(now)

    def inputs(self, beat: Beat | None = None, now: float | None = None) -> list[tuple[str, str]]:
        """OSC, MIDI, audio, hands and Link, each ``live`` (heard from in the last ``LIVE_S``),
        ``idle`` (open, quiet), ``off`` (not asked for, or not running), or what else it lacks."""
        now = time.monotonic() if now is None else now
        out = []
        if self.osc_in is None and self.oscquery is None:
            out.append(("OSC", "off"))
        else:   # OSC comes over UDP, OSCQuery's WebSocket, or only the latter when the port is taken
            ws = self.oscquery.stats["ws_messages"] if self.oscquery is not None else 0
            udp = self.osc_in.stats["messages"] if self.osc_in is not None else 0
            out.append(("OSC", self._live("osc", udp + ws, now)))
        midi = self.midi
        if midi is None or midi.unavailable:
            out.append(("MIDI", "off"))
        elif not midi.ports:
            out.append(("MIDI", "no device"))
        else:
            out.append(("MIDI", self._live("midi", sum(d.stats["messages"] for d in midi.decoders.values()), now)))
        if self.audio is None or not self.audio.sources:
            out.append(("audio", "off"))
        else:
            out.append(("audio", "live" if self.audio.rms_db > DB_FLOOR else "silent"))
        if self.hands is None:
            out.append(("hands", "off"))
        else:
            out.append(("hands", self._live("hands", self.hands.tracker.stats["frames"], now)))
        peers = None if beat is None else beat.link_peers
        out.append(("Link", "off" if peers is None else f"{peers} peer{'' if peers == 1 else 's'}"))
        return out

    def _live(self, name: str, count: int, now: float) -> str:
        last, at = self._heard.get(name, (0, -1e9))
        if count != last:
            self._heard[name] = (count, at := now)
        return "live" if now - at < self.LIVE_S else "idle"

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
