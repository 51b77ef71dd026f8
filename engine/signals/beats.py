"""The live beat tracker: tempo, beat and bar phase, beats and downbeats, causally.

Each block, :class:`BeatTracker` takes the analyser's log-magnitude bands (the same
ones the onset detector uses) and:

1. turns them into two activations, "a beat is sounding now" and "the one of the bar
   is sounding now" (:mod:`engine.signals.beat_net`: a small recurrent network trained
   on our own MIDI-rendered music; without its weights, a normalised spectral flux);
2. filters them through the bar-pointer model (:mod:`engine.signals.bar_pointer`), a
   joint tempo, meter and phase state space, forward only;
3. at each beat, when the analyser gives its pitch classes (``chroma``), weighs how much
   the harmony of the beat just ended differs from the beat before, against the usual
   change, as evidence that the beat just ended began the bar (chords change on the
   one; :meth:`BarPointer.after_downbeat`): the network's downbeat activation alone was
   near chance on real music;
4. reports the most likely state: ``bpm``, ``phase`` (0 on the beat, rising to 1),
   ``bar_phase``, ``beats_per_bar``, and fires a beat (and on the one, a downbeat) when
   the pointer enters a new beat.

A beat fires from the model's prediction, not from the onset that confirms it, so it
is not late by the analysis window. While the input is silent (or the activations
stay flat) no beat fires; the pointer keeps running so the phase is there when the
music comes back.

Tempo from outside (tap, MIDI clock, OSC ``/vj/tempo``, a set's bpm) seeds the model
through :meth:`set_tempo` (safe from any thread; applied at the next block): the
posterior is pulled to that tempo, and with a beat time to that phase.
"""
from __future__ import annotations

import collections
import math

import numpy as np

from engine.signals.bar_pointer import BarPointer
from engine.signals.beat_net import BeatActivation


CONFIDENCE_AFTER = 5  # frames either side of a beat whose activation counts for its confidence
SILENT = 1e-4       # block RMS below which the input is silence (no evidence either way)
PRIOR_OCTAVES = 1.0  # a log-normal tempo prior around 120 bpm, paid per beat (bar_pointer.py)
HARMONY_GAIN = 1.0   # evidence per beat from a harmony change of z times the usual: exp(gain (z - 1))
HARMONY_MAX_Z = 4.0
HARMONY_MEAN = 0.1   # how fast the usual change between beats is learnt (per beat)


class BeatTracker:
    def __init__(self, frame_rate: float, freqs: np.ndarray, *, min_bpm: float = 55.0,
                 max_bpm: float = 215.0, meters: tuple[int, ...] = (4, 3),
                 activation: BeatActivation | None = None, lead: float = 0.0,
                 silence: float = 2.0):
        self.fr = float(frame_rate)
        self.model = BarPointer(self.fr, min_bpm=min_bpm, max_bpm=max_bpm, meters=meters,
                                prior_octaves=PRIOR_OCTAVES)
        self.activation = activation or BeatActivation.load(freqs)
        self.lead = float(lead)                 # fire this many seconds before the pointer's beat
        self._silent_n = max(2, round(silence * self.fr))
        self._commands: collections.deque = collections.deque()
        self.reset()

    def reset(self) -> None:
        self.model.reset()
        self.activation.reset()
        self.bpm = 0.0
        self.phase = 0.0
        self.bar_phase = 0.0
        self.beats_per_bar = 4
        self.confidence = 0.0
        self.beat_activation = 0.0
        self.downbeat_activation = 0.0
        self._t: float | None = None
        self._n = 0
        self._quiet = 0
        self._heard = False
        self._last_phase = 0.0
        self._since_beat = math.inf             # frames since the last beat fired
        self._act_trace = collections.deque(maxlen=CONFIDENCE_AFTER)
        self._conf_wait, self._conf_max = 0, 0.0
        self._ext_bpm: float | None = None
        self._ext_until = -math.inf
        self._ext_phase: float | None = None
        self._beat_times: collections.deque = collections.deque(maxlen=9)
        self._chroma_sum = np.zeros(12)          # the pitch classes heard in this beat
        self._chroma_n = 0
        self._chroma_prev: np.ndarray | None = None   # ... in the beat before (unit length)
        self._change_mean = 0.0

    # -- from outside -------------------------------------------------------------------
    def set_tempo(self, bpm: float | None, phase_time: float | None = None, hold: float = 8.0,
                  weight: float = 1.0) -> None:
        """A tempo from outside: seed the model with ``bpm`` and, with ``phase_time``
        (the time, in the time base of :meth:`update`'s ``t``, at which a beat fell),
        with that phase too. For ``hold`` seconds after, tempo and phase keep a gentle
        pull each beat. ``weight`` 1 is a performer's word (a tap, a typed tempo: only
        the states that agree with it are kept, half of them fresh); less is a hint (a
        set's bpm: 0.3 keeps 70 % of the rest). ``None`` lets go of any pull."""
        if bpm is not None and not (20.0 <= float(bpm) <= 400.0):
            raise ValueError(f"tempo {bpm} bpm is outside 20..400")
        if not (0.0 < float(weight) <= 1.0):
            raise ValueError(f"seed weight {weight} is outside (0, 1]")
        self._commands.append((None if bpm is None else float(bpm), phase_time, float(hold),
                               float(weight)))

    @property
    def external(self) -> bool:
        return self._ext_bpm is not None

    def _apply(self, bpm, phase_time, hold, weight, t) -> None:
        if bpm is None:
            self._ext_bpm, self._ext_until = None, -math.inf
            return
        bpm = _fold(bpm, self.model)
        since = None if phase_time is None else t - phase_time      # (a beat to come: negative)
        if weight >= 1.0:          # a performer's word: only what agrees with it, half of it new
            self.model.seed(bpm, since, floor=0.0, fresh=0.5)
        else:                      # a hint
            self.model.seed(bpm, since, floor=1.0 - weight)
        self._ext_bpm = bpm
        self._ext_phase = phase_time
        self._ext_until = t + hold

    # -- one block ----------------------------------------------------------------------
    def update(self, bands: np.ndarray, t: float, level: float = 1.0,
               chroma: np.ndarray | None = None) -> tuple[bool, bool]:
        """One block's log-magnitude bands, ending at time ``t`` (s); ``level`` is the
        block's RMS (silence gating); ``chroma``, the pitch classes heard now (12), when
        known: where the harmony changes is evidence of where the bar begins. Returns
        (beat fired, downbeat fired)."""
        if chroma is not None:
            self._chroma_sum += chroma
            self._chroma_n += 1
        self._t = t
        self._n += 1
        while self._commands:
            self._apply(*self._commands.popleft(), t)
        beat_act, down_act = self.activation.step(bands)
        self.beat_activation, self.downbeat_activation = beat_act, down_act
        evidence = self.activation.evidence     # the networks' word: the flux in the blend counts noise too
        self._act_trace.append(evidence)
        if self._conf_wait > 0:                 # the beat fired from the prediction: its onset may follow
            self._conf_max = max(self._conf_max, evidence)
            self._conf_wait -= 1
            if self._conf_wait == 0:
                self._confidence_update(self._conf_max)
        self._quiet = self._quiet + 1 if level < SILENT else 0

        m = self.model
        s = m.step(beat_act, down_act, observe=level >= SILENT)
        if self._ext_bpm is not None:
            if t > self._ext_until:
                self._ext_bpm = None
            elif m.within[s] == 0:                 # a gentle pull, once a beat
                since = None if self._ext_phase is None else t - self._ext_phase
                m.seed(self._ext_bpm, since, tempo_width=0.1, phase_width=0.15, floor=0.2)
                s = m.best
        bpm, phase, bar_phase, B = m.describe(s)
        lead = self.lead * self.fr / m.interval[s]
        phase = phase + lead
        self._since_beat += 1
        beat_of_bar = int(m.beat_index[s])
        if phase >= 1.0:                             # the lead reaches into the next beat
            phase -= 1.0
            beat_of_bar = (beat_of_bar + 1) % B
        fired = down = False
        # a new beat: the phase wrapped round (a jump of the pointer back by less than
        # half a beat, or a beat within half a beat of the last, is no new beat)
        if phase < self._last_phase - 0.5 and self._since_beat >= 0.5 * m.interval[s]:
            fired = True
            down = beat_of_bar == 0
            self._since_beat = 0
            self._conf_wait, self._conf_max = CONFIDENCE_AFTER, max(self._act_trace)
            self._note_beat(t + self.lead, m.interval[s])
            self._harmony_at_beat()
        self._last_phase = phase
        active = self._quiet < self._silent_n and self._n > self.fr   # a second of audio first
        self._heard = self._heard or (fired and active)
        # no tempo until the music has given one (or someone has)
        self.bpm = self._tempo(bpm) if (self._heard or self._ext_bpm is not None) else 0.0
        self.phase = phase
        self.bar_phase = (beat_of_bar + phase) / B
        self.beats_per_bar = B
        if not active:
            return False, False
        return fired, fired and down

    # -- internals ----------------------------------------------------------------------
    def _tempo(self, bpm: float) -> float:
        """The reported tempo. The model's tempi are whole frames per beat (coarse at
        fast tempi: 24 or 25 frames is 4 %), but its beats fall on the right frames, so
        the span of the recent beats, where they agree with the model, measures the
        tempo to a fraction of a percent."""
        beats = self._beat_times
        if len(beats) >= 3:
            span = (beats[-1] - beats[0]) / (len(beats) - 1)
            if span > 0 and abs(math.log2(60.0 / span / bpm)) < 0.06:
                return 60.0 / span
        return bpm

    def _note_beat(self, t: float, interval: int) -> None:
        """Keep the recent beats that are evenly spaced at the model's tempo."""
        beats = self._beat_times
        period = interval / self.fr
        if beats and abs((t - beats[-1]) / period - 1.0) > 0.15:
            beats.clear()                       # a jump: start measuring again
        beats.append(t)

    def _harmony_at_beat(self) -> None:
        """A beat fired: how much the harmony of the beat that just ended differs from the
        beat before it says how likely that beat began a bar (chords change on the one)."""
        c, n = self._chroma_sum, self._chroma_n
        self._chroma_sum, self._chroma_n = np.zeros(12), 0
        norm = float(np.linalg.norm(c)) if n else 0.0
        if not (norm > 0 and math.isfinite(norm)):
            self._chroma_prev = None
            return
        c /= norm
        if self._chroma_prev is not None:
            change = 1.0 - float(self._chroma_prev @ c)
            self._change_mean += HARMONY_MEAN * (change - self._change_mean)
            if self._change_mean > 1e-6:
                z = min(change / self._change_mean, HARMONY_MAX_Z)
                self.model.after_downbeat(math.exp(HARMONY_GAIN * (z - 1.0)))
        self._chroma_prev = c

    def _confidence_update(self, got: float) -> None:
        """How much beat activation the recent beats landed on (0..1), smoothed over beats."""
        self.confidence += 0.25 * (min(1.0, 2.0 * got) - self.confidence)


def _fold(bpm: float, model: BarPointer) -> float:
    """A tempo outside the model's range, doubled or halved into it."""
    lo = 60.0 * model.fr / model.intervals[-1]
    hi = 60.0 * model.fr / model.intervals[0]
    while bpm < lo:
        bpm *= 2.0
    while bpm > hi:
        bpm /= 2.0
    return bpm
