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
"""
from __future__ import annotations

import logging
import time
from collections import Counter

from engine.signals.clock import follow_audio

log = logging.getLogger("vj")

PRIORITY = ("keys", "osc", "midi", "audio", "set", "link")
HOLD = 8.0          # seconds a tap or a tempo command holds against lower sources
LIVE = 1.0          # a streaming source (MIDI clock, the audio tracker) holds this long after its last word


def rank(source: str) -> int:
    source = {"ws": "osc", "cli": "keys", "": "osc"}.get(source, source)
    return PRIORITY.index(source) if source in PRIORITY else len(PRIORITY)


class ClockSync:
    name = "clock"

    def __init__(self, clock, follow_audio_tempo: bool = False, now=time.monotonic):
        self.clock = clock
        self.follow_audio_tempo = follow_audio_tempo
        self.now = now
        self.until: dict[int, float] = {}       # rank -> until when it holds the tempo
        self.counts: Counter = Counter()
        self.owner = "set"

    def _holds(self, source: str, now: float) -> bool:
        """Does a source above this one hold the tempo now? (Counted as overruled.)"""
        r = rank(source)
        if any(other < r and until > now for other, until in self.until.items()):
            self.counts["overruled"] += 1
            return True
        return False

    def _took(self, source: str, now: float, hold: float) -> None:
        r = rank(source)
        self.until[r] = max(self.until.get(r, 0.0), now + hold)
        self.owner = PRIORITY[r] if r < len(PRIORITY) else source

    def run(self, frame) -> None:
        snap, clock, now = frame.snap, self.clock, self.now()
        ev = snap.events
        for e in ev.get("clock.tempo", ()):
            if not self._holds(e.source, now):
                clock.set_tempo(float(e.value))
                self._took(e.source, now, HOLD)
                self.counts["tempo"] += 1
        for e in ev.get("clock.tap", ()):
            if not self._holds(e.source, now):
                bpm = clock.tap(e.t)
                self.counts["tap"] += 1
                if bpm:
                    self._took(e.source, now, HOLD)
                    log.info("tap tempo: %.1f bpm", bpm)
        self._midi(snap, now)
        if self.follow_audio_tempo and not self._holds("audio", now) and follow_audio(clock, snap):
            self._took("audio", now, LIVE)
        frame.status["tempo"] = clock.bpm
        frame.status["tempo_source"] = self.owner

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
        self._took("midi", now, LIVE)
        bpm = values["midi.clock.bpm"]
        if abs(bpm - clock.bpm) > 0.005 and 20.0 <= bpm <= 400.0:
            clock.set_tempo(bpm)
        if values.get("midi.clock.running") and "midi.clock.beat" in values:
            # soft phase lock: small errors are pulled in, a big one (a song position jump) is taken
            expected = values["midi.clock.beat"] + (now - times["midi.clock.beat"]) * bpm / 60.0
            err = expected - clock.beat
            clock.set_beat(expected if abs(err) > 0.25 else clock.beat + 0.1 * err)
