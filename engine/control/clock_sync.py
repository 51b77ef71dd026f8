"""The one place where tempo and beat are set: the first stage of every frame.

Tempo comes from several sources, each arriving on the bus: tap and tempo commands
(``clock.tap`` / ``clock.tempo`` events, tagged with their source: the window's keys, OSC
over UDP or the WebSocket, a MIDI control bound to ``/vj/tempo`` or ``/vj/tap``), MIDI clock
and transport (``midi.clock.*`` from engine/signals/midi.py), the audio tracker
(``audio.bpm`` / ``audio.beat_phase``, with ``--follow-audio-tempo``), and a set's ``bpm``
(the clock's starting tempo). When two disagree, the higher in ``PRIORITY`` wins:

    keys > osc (UDP and WebSocket) > midi (MIDI clock, MIDI controls) > audio > set > link

A source holds the tempo while it is live: a tempo command, or a tap that set a tempo, for
``HOLD`` seconds after it arrives (a lone first tap sets nothing and holds nothing), MIDI clock
while its ticks keep coming (``LIVE`` after the last), the audio tracker while it is confident
(``LIVE`` after its last confident frame). A lower source is ignored while a higher one holds (counted in ``overruled``), and
takes over again, from its own tempo, once the higher one falls silent. MIDI transport
(Start, Stop, Continue) always applies: it starts and stops the beat, not the tempo.

Ableton Link (``--link``, ``control/link.py``) is the lowest source: while nothing above it
holds, the clock takes the Link session's tempo, and its beat is aligned with Link's beat
timeline, phase within the bar (quantum = ``beats_per_bar``): a small error is pulled in a
fifth a frame, never so much that the beat runs backwards; a big one (joining a session) is
taken at once, forwards. While a higher source holds, its tempo is pushed into the session,
so every other peer follows (any Link peer may change the tempo). A tap, MIDI clock and the
audio tracker also hold the beat phase while they hold; a tempo command holds only the tempo.
"""
from __future__ import annotations

import logging
import time
from collections import Counter

from engine.signals.clock import follow_audio

log = logging.getLogger("vj")

PRIORITY = ("keys", "osc", "midi", "audio", "set", "link")
LINK = PRIORITY.index("link")
HOLD = 8.0          # seconds a tap or a tempo command holds against lower sources
SET_WEIGHT = 0.3    # how strongly a set's bpm seeds the audio's beat tracker (a tap: 1)
LIVE = 1.0          # a streaming source (MIDI clock, the audio tracker) holds this long after its last word
LINK_BIG = 0.1      # beats: a Link phase error this big is taken at once, a smaller one pulled in
LINK_RATE = 0.2     # fraction of a small Link phase error taken per frame
LINK_LOG = 0.5      # seconds between the debug lines of the clock beat against Link's (vj -v)


def rank(source: str) -> int:
    source = {"ws": "osc", "cli": "keys", "": "osc"}.get(source, source)
    return PRIORITY.index(source) if source in PRIORITY else len(PRIORITY)


class ClockSync:
    name = "clock"

    def __init__(self, clock, follow_audio_tempo: bool = False, now=time.monotonic, link=None,
                 seed=None):
        self.clock = clock
        self.seed = seed                         # seed(bpm, phase_time, weight): the audio's beat tracker
        self._seeded_bpm = 0.0
        self.follow_audio_tempo = follow_audio_tempo
        self.now = now
        self.link = link                         # control/link.py LinkPeer, or None
        self.until: dict[int, float] = {}       # rank -> until when it holds the tempo
        self.phase_until = 0.0                  # until when a tap, MIDI clock or the audio hold the phase
        self.counts: Counter = Counter()
        self.owner = "set"
        self._tapped = False
        self._logged = -1e9

    def _holds(self, source: str, now: float) -> bool:
        """Does a source above this one hold the tempo now? (Counted as overruled.)"""
        r = rank(source)
        if any(other < r and until > now for other, until in self.until.items()):
            self.counts["overruled"] += 1
            return True
        return False

    def _took(self, source: str, now: float, hold: float, phase: bool = False) -> None:
        r = rank(source)
        self.until[r] = max(self.until.get(r, 0.0), now + hold)
        self.owner = PRIORITY[r] if r < len(PRIORITY) else source
        if phase:
            self.phase_until = max(self.phase_until, now + hold)

    def run(self, frame) -> None:
        snap, clock, now = frame.snap, self.clock, self.now()
        ev = snap.events
        if self._seeded_bpm == 0.0:              # the set's (or --bpm) tempo: a hint
            self._seed(clock.bpm, None, SET_WEIGHT)
        for e in ev.get("clock.tempo", ()):
            if not self._holds(e.source, now):
                clock.set_tempo(float(e.value))
                self._took(e.source, now, HOLD)
                self.counts["tempo"] += 1
                self._seed(clock.bpm, None, 1.0)
        for e in ev.get("clock.tap", ()):
            if not self._holds(e.source, now):
                bpm = clock.tap(e.t)
                self.counts["tap"] += 1
                if bpm:
                    self._took(e.source, now, HOLD, phase=True)
                    self._tapped = True
                    log.info("tap tempo: %.1f bpm", bpm)
                    self._seed(bpm, e.t, 1.0)
        self._midi(snap, now)
        if self.follow_audio_tempo and not self._holds("audio", now) and follow_audio(clock, snap):
            self._took("audio", now, LIVE, phase=True)
        if self.link is not None:
            self._link(frame, now)
        frame.status["tempo"] = clock.bpm
        frame.status["tempo_source"] = self.owner

    def _seed(self, bpm: float, phase_time: float | None, weight: float) -> None:
        """Tell the audio's beat tracker (a performer's or a clock's tempo seeds it, so a
        tap pulls a wrong lock onto the beat)."""
        self._seeded_bpm = bpm
        if self.seed is None:
            return
        try:
            self.seed(bpm, phase_time, weight)
            self.counts["seeded"] += 1
        except ValueError as e:
            log.warning("beat tracker: seed %.1f bpm refused (%s)", bpm, e)

    def _midi(self, snap, now: float) -> None:
        ev, values, times, clock = snap.events, snap.values, snap.times, self.clock
        if ev.get("midi.clock.start"):      # transport: always
            clock.set_beat(0.0)
            clock.running = True
        if ev.get("midi.clock.continue"):
            clock.running = True
        if ev.get("midi.clock.stop"):
            clock.running = False
        t = times.get("midi.clock.bpm")
        if t is None or now - t > LIVE or self._holds("midi", now):
            return  # no clock (or it stopped sending), or a tap holds: the tempo stays where it is
        self._took("midi", now, LIVE, phase=bool(values.get("midi.clock.running")))
        bpm = values["midi.clock.bpm"]
        if abs(bpm - clock.bpm) > 0.005 and 20.0 <= bpm <= 400.0:
            clock.set_tempo(bpm)
        if 20.0 <= bpm <= 400.0 and abs(bpm / self._seeded_bpm - 1.0) > 0.005:
            self._seed(bpm, None, 1.0)
        if values.get("midi.clock.running") and "midi.clock.beat" in values:
            # soft phase lock: small errors are pulled in, a big one (a song position jump) is taken
            expected = values["midi.clock.beat"] + (now - times["midi.clock.beat"]) * bpm / 60.0
            err = expected - clock.beat
            clock.set_beat(expected if abs(err) > 0.25 else clock.beat + 0.1 * err)

    def _link(self, frame, now: float) -> None:
        """Follow the Link session while nothing above it holds; else push our tempo into it."""
        link, clock = self.link, self.clock
        q = float(clock.beats_per_bar)
        start = getattr(clock, "start", None)           # LiveClock: clock time 0 in monotonic seconds
        t = now if start is None else start + clock.time
        try:
            peers = link.peers()
            tempo, beat = link.session(t, q)
            frame.status["link_peers"] = peers
            if any(r < LINK and until > now for r, until in self.until.items()):
                if abs(clock.bpm - tempo) > 0.01:      # the performer changed it here: every peer follows
                    link.set_tempo(clock.bpm, t)
                    self.counts["link_pushed"] += 1
                if self._tapped:
                    link.request_beat(clock.beat, t, q)
            else:
                self.owner = "link"
                bpm = min(400.0, max(20.0, tempo))
                if abs(bpm - clock.bpm) > 1e-9:
                    clock.set_tempo(bpm)
            self._tapped = False
            err = phase_error(beat, clock.beat, q)
            if now - self._logged >= LINK_LOG:
                self._logged = now
                log.debug("link: beat %.6f at %.6f s monotonic, %.4f bpm, %d peers, phase error %+.2f ms",
                          clock.beat, t, clock.bpm, peers, err * 60000.0 / clock.bpm)
            if clock.running and now >= self.phase_until:   # a tempo command holds the tempo, not the phase
                clock.set_beat(align(clock.beat, err, clock.dt * clock.bpm / 60.0, q))
        except Exception as e:  # noqa: BLE001 - Link must never stop a frame
            self.counts["link_errors"] += 1
            if self.counts["link_errors"] == 1:
                log.error("Ableton Link: %s: %s (the clock runs on)", type(e).__name__, e)


def phase_error(target: float, beat: float, quantum: float) -> float:
    """How far ``target`` is ahead of ``beat`` in phase within ``quantum`` beats: -q/2 .. q/2."""
    return (target - beat + quantum / 2.0) % quantum - quantum / 2.0


def align(beat: float, err: float, step: float, quantum: float) -> float:
    """The beat corrected by a phase error ``err`` (beats): a small one pulled in by ``LINK_RATE``
    (a backward pull never more than half the frame's ``step``, so the beat never runs backwards),
    a big one taken at once, always forwards (behind: the same phase in the next bar)."""
    if abs(err) < LINK_BIG:
        return beat + max(-0.5 * step, LINK_RATE * err)
    return beat + (err if err > 0 else err + quantum)
