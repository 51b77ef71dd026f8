"""The one place where tempo and beat are set: the first stage of every frame.

Tempo comes from several sources, each arriving on the bus: tap and tempo commands
(``clock.tap`` / ``clock.tempo`` events, tagged with their source: the window's keys, OSC
over UDP or the WebSocket, a MIDI control bound to ``/vj/tempo`` or ``/vj/tap``), MIDI clock
and transport (``midi.clock.*`` from engine/signals/midi.py), the audio tracker
(``audio.bpm`` / ``audio.beat_phase``, with ``--follow-audio-tempo``), and a set's ``bpm``
(the clock's starting tempo). When two disagree, the higher in ``PRIORITY`` wins:

    keys > osc (UDP and WebSocket) > midi (MIDI clock, MIDI controls) > audio > set > link

A source holds the tempo while it is live: a tap or tempo command for ``HOLD`` seconds after
it arrives, MIDI clock while ticks keep coming (``MIDI_LIVE``), the audio tracker while it is
confident. A lower source is ignored while a higher one holds (counted in ``overruled``), and
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
MIDI_LIVE = 1.0     # MIDI clock counts as live this long after its last tick


def rank(source: str) -> int:
    source = {"ws": "osc", "cli": "keys", "": "osc"}.get(source, source)
    return PRIORITY.index(source) if source in PRIORITY else len(PRIORITY)


class ClockSync:
    name = "clock"

    def __init__(self, clock, follow_audio_tempo: bool = False, now=time.monotonic):
        self.clock = clock
        self.follow_audio_tempo = follow_audio_tempo
        self.now = now
        self.heard: dict[int, float] = {}       # rank -> when it last held the tempo
        self.counts: Counter = Counter()
        self.owner = "set"

    def _holds(self, r: int, now: float) -> bool:
        """Does a source above rank r hold the tempo now?"""
        return any(other < r and now - t < (MIDI_LIVE if PRIORITY[other] == "midi" else HOLD)
                   for other, t in self.heard.items())

    def _claim(self, source: str, now: float) -> bool:
        r = rank(source)
        if self._holds(r, now):
            self.counts["overruled"] += 1
            return False
        self.heard[r] = now
        self.owner = PRIORITY[r] if r < len(PRIORITY) else source
        return True

    def run(self, frame) -> None:
        snap, clock, now = frame.snap, self.clock, self.now()
        ev = snap.events
        for e in ev.get("clock.tempo", ()):
            if self._claim(getattr(e, "source", ""), now):
                clock.set_tempo(float(e.value))
                self.counts["tempo"] += 1
        for e in ev.get("clock.tap", ()):
            if self._claim(getattr(e, "source", ""), now):
                bpm = clock.tap(e.t)
                self.counts["tap"] += 1
                if bpm:
                    log.info("tap tempo: %.1f bpm", bpm)
        self._midi(snap, now)
        if self.follow_audio_tempo and not self._holds(rank("audio"), now):
            if follow_audio(clock, snap):
                self.heard[rank("audio")] = now
                self.owner = "audio"
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
        if t is None or now - t > MIDI_LIVE or not self._claim("midi", now):
            return  # no clock (or it stopped sending), or a tap holds: the tempo stays where it is
        bpm = values["midi.clock.bpm"]
        if abs(bpm - clock.bpm) > 0.005 and 20.0 <= bpm <= 400.0:
            clock.set_tempo(bpm)
        if values.get("midi.clock.running") and "midi.clock.beat" in values:
            # soft phase lock: small errors are pulled in, a big one (a song position jump) is taken
            expected = values["midi.clock.beat"] + (now - times["midi.clock.beat"]) * bpm / 60.0
            err = expected - clock.beat
            clock.set_beat(expected if abs(err) > 0.25 else clock.beat + 0.1 * err)
