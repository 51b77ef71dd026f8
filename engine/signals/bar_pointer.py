"""A causal bar-pointer model: where in the bar the music is, and how fast it moves.

The hidden state is (meter, tempo, position in the bar). Each tempo is a whole number
of frames per beat, ``N``; a bar of ``B`` beats has ``B * N`` positions, and the
pointer moves one position per frame. The tempo may change only where one beat ends
and the next begins (so it never skips a beat), with a probability that falls off
with the size of the jump (``exp(-tempo_lambda * |N_new / N_old - 1|)``). This is the
efficient state space of Krebs, Böck and Widmer (ISMIR 2015), as used in their
online trackers: about ``B * (sum of N)`` states, two meters (3/4 and 4/4) side by side.

Evidence arrives as two activations per frame, ``beat`` (a beat that is not the one
of the bar) and ``downbeat`` (the one), each 0..1. The first ``1 / region`` of each
beat is where a beat may sound: there the evidence is the activation; elsewhere it is
what is left, spread over the rest of the beat (``(1 - beat - downbeat) / (region - 1)``).

Filtering is forward only (no look-ahead): after each frame the posterior over the
states says the tempo, the beat and bar phase, and the meter; the most likely state
is what the tracker reports. A little probability is spread back over every state
each frame (``leak``), so a lock that the music no longer supports can always be left.

``seed`` tells the model what a performer or a clock knows (tap, MIDI clock, OSC, a
set's bpm): a tempo, and optionally when a beat fell. It reweights the posterior at
once, so a tap on the right beat pulls a wrong lock over within a beat or two.
"""
from __future__ import annotations

import math

import numpy as np


class BarPointer:
    def __init__(self, frame_rate: float, *, min_bpm: float = 55.0, max_bpm: float = 215.0,
                 meters: tuple[int, ...] = (4, 3), region: int = 16, tempo_lambda: float = 100.0,
                 leak: float = 1e-7, meter_prior: tuple[float, ...] | None = None,
                 prior_bpm: float = 120.0, prior_octaves: float = 0.0):
        self.fr = float(frame_rate)
        self.meters = tuple(int(m) for m in meters)
        lo = max(2, int(math.floor(60.0 * self.fr / max_bpm)))
        hi = int(math.ceil(60.0 * self.fr / min_bpm))
        self.intervals = np.arange(lo, hi + 1)                      # frames per beat, per tempo
        K = len(self.intervals)
        self.leak = float(leak)
        # tempo transitions at beat boundaries: rows from, columns to
        ratio = self.intervals[None, :] / self.intervals[:, None]
        A = np.exp(-tempo_lambda * np.abs(ratio - 1.0))
        A[A < 1e-9] = 0.0
        self.A = (A / A.sum(axis=1, keepdims=True)).astype(np.float64)
        if prior_octaves > 0:
            # a tempo prior, paid once a beat: a fast tempo pays more often, so the
            # eighth notes of a slow song do not win as its beat for free
            bpm = 60.0 * self.fr / self.intervals
            self.A = self.A * np.exp(-0.5 * (np.log2(bpm / prior_bpm) / prior_octaves) ** 2)[None, :]

        pos, interval, meter, beat_of_bar = [], [], [], []
        self._ends, self._starts = [], []         # per meter: [B, K] state indices
        base = 0
        for B in self.meters:
            ends = np.zeros((B, K), np.int64)
            starts = np.zeros((B, K), np.int64)
            for k, N in enumerate(self.intervals):
                n = B * N
                p = np.arange(n)
                pos.append(p)
                interval.append(np.full(n, N))
                meter.append(np.full(n, B))
                beat_of_bar.append(p // N)
                starts[:, k] = base + np.arange(B) * N
                ends[:, k] = base + np.arange(B) * N + N - 1
                base += n
            self._ends.append(ends)
            self._starts.append(np.roll(starts, -1, axis=0))   # where each beat's end goes
        self.pos = np.concatenate(pos)
        self.interval = np.concatenate(interval)
        self.meter = np.concatenate(meter)
        self.beat_index = np.concatenate(beat_of_bar)           # which beat of the bar
        self.n_states = len(self.pos)
        within = self.pos - self.beat_index * self.interval      # frames since this beat began
        self.within = within
        width = np.maximum(1, np.round(self.interval / region)).astype(np.int64)
        self.in_beat = within < width
        self.is_down = self.in_beat & (self.beat_index == 0)
        # the beat nearest each state (this one until half way, then the next)
        self.nearest_beat = np.where(within < self.interval / 2, self.beat_index,
                                     (self.beat_index + 1) % self.meter)
        self.is_beat = self.in_beat & ~self.is_down
        self._rest = 1.0 / (region - 1)
        self._beat_idx = np.flatnonzero(self.is_beat)
        self._down_idx = np.flatnonzero(self.is_down)
        self.tempo_of_state = np.searchsorted(self.intervals, self.interval)
        if meter_prior is None:
            meter_prior = tuple(1.0 for _ in self.meters)
        self._meter_prior = dict(zip(self.meters, meter_prior))
        self.reset()

    def reset(self) -> None:
        prior = np.array([self._meter_prior[m] for m in self.meter], np.float64)
        # every tempo equally likely, every position in its bar equally likely
        prior /= (self.meter * self.interval)
        self.alpha = prior / prior.sum()
        self._new = np.empty_like(self.alpha)
        self.best = int(np.argmax(self.alpha))

    # -- one frame ----------------------------------------------------------------------
    def step(self, beat: float, downbeat: float, observe: bool = True) -> int:
        """Move one frame on and weigh the evidence (``observe`` False: there is none,
        as in silence, where "no beat now" would say nothing about the beat); returns
        the most likely state."""
        a = self.alpha
        new = self._new
        # states are laid out bar by bar, position by position: one frame on is a shift
        # by one; what that carries over a beat's end is overwritten by the tempo move
        new[1:] = a[:-1]
        for ends, starts in zip(self._ends, self._starts):
            new[starts] = a[ends] @ self.A                            # [B, K]
        if not observe:
            self._new, self.alpha = a, new
            self.best = int(np.argmax(new))
            return self.best
        eps = 1e-4
        b = min(max(beat, eps), 1.0 - eps)
        d = min(max(downbeat, eps), 1.0 - eps)
        rest = max(1.0 - b - d, eps) * self._rest
        new *= rest
        new[self._beat_idx] *= b / rest
        new[self._down_idx] *= d / rest
        total = new.sum()
        if not math.isfinite(total) or total <= 0.0:
            self.reset()
            return self.best
        new *= (1.0 - self.leak) / total
        new += self.leak / self.n_states
        self._new, self.alpha = a, new
        self.best = int(np.argmax(new))
        return self.best

    # -- what the posterior says --------------------------------------------------------
    def describe(self, state: int | None = None) -> tuple[float, float, float, int]:
        """(bpm, beat phase 0..1, bar phase 0..1, beats per bar) of a state (default: the
        most likely one)."""
        s = self.best if state is None else state
        N = self.interval[s]
        B = self.meter[s]
        return (60.0 * self.fr / N, self.within[s] / N, self.pos[s] / (B * N), int(B))

    def tempo_posterior(self) -> np.ndarray:
        """Probability of each tempo (``intervals``), summed over meters and positions."""
        return np.bincount(self.tempo_of_state, weights=self.alpha, minlength=len(self.intervals))

    def meter_posterior(self) -> dict[int, float]:
        return {B: float(self.alpha[self.meter == B].sum()) for B in self.meters}

    def after_downbeat(self, weight: float) -> None:
        """Evidence from outside the activations that the beat before the nearest one was
        the bar's first (``weight`` > 1: likelier; < 1: less likely), as a likelihood ratio
        on the states whose nearest beat is the bar's second."""
        if not (weight > 0 and math.isfinite(weight)) or weight == 1.0:
            return
        a = np.where(self.nearest_beat == 1, self.alpha * weight, self.alpha)
        total = a.sum()
        if total > 0 and math.isfinite(total):
            self.alpha = a / total
            self.best = int(np.argmax(self.alpha))

    # -- what someone outside knows -----------------------------------------------------
    def seed(self, bpm: float | None, since_beat: float | None = None, *, tempo_width: float = 0.04,
             phase_width: float = 0.08, floor: float = 1e-3, fresh: float = 0.0) -> None:
        """Reweight the posterior towards ``bpm`` (a log-normal of ``tempo_width``
        octaves) and, with ``since_beat`` (seconds since a beat fell), towards the
        states whose beat began that long ago (within ``phase_width`` of a beat). The
        rest keeps ``floor`` of its weight, so the music can still overrule a mistake.
        ``fresh`` (0..1) of the result is new mass spread over the seeded states alone:
        a confident posterior may have next to nothing left there to reweight, and a
        performer's tap must land even then (with floor 0, nothing outside 3 widths is
        kept at all)."""
        w = np.ones(self.n_states)
        inside = np.ones(self.n_states, bool)
        if bpm is not None and bpm > 0:
            state_bpm = 60.0 * self.fr / self.interval
            z = np.log2(state_bpm / bpm) / tempo_width
            w *= np.exp(-0.5 * z * z)
            inside &= np.abs(z) <= 3.0
        if since_beat is not None:
            ago = since_beat * self.fr / self.interval                 # in beats
            err = (self.within / self.interval - ago + 0.5) % 1.0 - 0.5
            z = err / phase_width
            w *= np.exp(-0.5 * z * z)
            inside &= np.abs(z) <= 3.0
        if floor <= 0.0:
            w = np.where(inside, w, 0.0)
        a = self.alpha * (floor + (1.0 - floor) * w)
        total = a.sum()
        if not (total > 0 and math.isfinite(total)):
            a, total, fresh = np.zeros_like(a), 1.0, 1.0
        a /= total
        if fresh > 0.0:
            q = w / (self.meter * self.interval)           # as the initial prior: each bar alike
            if q.sum() > 0:
                a = (1.0 - fresh) * a + fresh * q / q.sum()
        self.alpha = a
        self.best = int(np.argmax(a))
