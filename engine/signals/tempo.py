"""A causal tempo and beat tracker: the onset strength of each audio block in, tempo,
beat phase and beat events out, with no look-ahead.

Tempo: every ``every`` s, the autocorrelation of the last ``window`` s of onset strength
is scored at each candidate tempo (a fine grid, ``min_bpm``..``max_bpm``) summed over
the first ``harmonics`` multiples of its beat period, so a tempo only wins if the
onsets repeat at one, two, three and four beats; a log-normal prior around ``prior_bpm``
settles the octave (90 and not 45 or 180); the current tempo is preferred a little, and
an octave jump must be seen twice before it is taken.

Phase: a comb of the last ``phase_beats`` beat periods slides over the onset strength;
where it collects the most onset strength is where the beats were. A phase-locked loop
(an oscillator counting beats, nudged towards that measurement with a time constant of
``lock_time`` s, never backwards) gives a phase that rises smoothly from 0 to 1 between
beats; a beat event fires when it crosses a whole number.

External tempo: :meth:`set_tempo` fixes the tempo (tap, MIDI clock, OSC, a set file)
and optionally the phase; it is safe to call from any thread and takes effect on the
next frame.
"""
from __future__ import annotations

import collections
import math

import numpy as np


class TempoTracker:
    def __init__(self, frame_rate: float, *, min_bpm: float = 60.0, max_bpm: float = 200.0,
                 prior_bpm: float = 120.0, prior_octaves: float = 1.0, window: float = 8.0,
                 min_history: float = 2.5, every: float = 0.25, delay: float = 0.0,
                 harmonics: int = 4, phase_beats: int = 6, lock_time: float = 0.25,
                 min_confidence: float = 0.05, bpm_step: float = 0.25):
        self.fr = float(frame_rate)
        self.min_bpm, self.max_bpm = float(min_bpm), float(max_bpm)
        self.delay = float(delay)
        self.harmonics = int(harmonics)
        self.phase_beats = int(phase_beats)
        self.lock_time = float(lock_time)
        self.min_confidence = float(min_confidence)
        self._len = max(16, round(window * self.fr))
        self._min_n = max(8, round(min_history * self.fr))
        self._every = max(1, round(every * self.fr))
        self._silent_n = max(2, round(2.0 * self.fr))      # frames of near-zero onset strength = silence
        self.candidates = np.arange(self.min_bpm, self.max_bpm + 1e-9, bpm_step)
        self._prior = np.exp(-0.5 * (np.log2(self.candidates / prior_bpm) / prior_octaves) ** 2)
        self._nfft = 1 << math.ceil(math.log2(2 * self._len))
        self._commands: collections.deque = collections.deque()
        self.reset()

    def reset(self) -> None:
        self._oss = np.zeros(self._len)
        self._i = 0
        self._n = 0
        self._t: float | None = None
        self._quiet = 0                    # frames since the onset strength last moved
        self.bpm = 0.0                     # 0: not known yet
        self.confidence = 0.0
        self.phase = 0.0
        self._beats = 0.0                  # unwrapped beat count of the oscillator
        self._est = 0.0                    # the audio's tempo estimate
        self._candidate = 0.0              # an octave jump waiting to be confirmed
        self._ext_bpm: float | None = None
        self._ext_phase = False
        self._locked = False               # the oscillator has a phase
        self._since_est = 0
        self._comb_key = None

    # -- from outside --------------------------------------------------------------------
    def set_tempo(self, bpm: float | None, phase_time: float | None = None) -> None:
        """Fix the tempo at ``bpm`` (None: follow the audio again). With ``phase_time``
        (a time, in the time base of :meth:`update`'s ``t``, at which a beat fell), the
        phase is fixed too and runs free at that tempo; without it, the phase keeps
        locking to the audio."""
        if bpm is not None and not (20.0 <= float(bpm) <= 400.0):
            raise ValueError(f"tempo {bpm} bpm is outside 20..400")
        self._commands.append((None if bpm is None else float(bpm), phase_time))

    @property
    def external(self) -> bool:
        return self._ext_bpm is not None

    # -- one frame -----------------------------------------------------------------------
    def update(self, oss: float, t: float) -> bool:
        """Feed one frame's onset strength, at time ``t`` (s, the end of its block).
        Returns True when a beat falls in this frame."""
        dt = 1.0 / self.fr if self._t is None else max(0.0, t - self._t)
        self._t = t
        self._oss[self._i] = oss
        self._i = (self._i + 1) % self._len
        self._n += 1
        self._quiet = self._quiet + 1 if oss < 1e-3 else 0
        while self._commands:
            self._apply(*self._commands.popleft(), t)

        if self._ext_bpm is not None:
            self.bpm = self._ext_bpm
            self.confidence = 1.0
        else:
            self._since_est += 1
            if self._n >= self._min_n and self._since_est >= self._every:
                self._since_est = 0
                self._estimate()
        if self.bpm <= 0.0:
            return False

        inc = dt * self.bpm / 60.0
        step = inc
        active = self._quiet < self._silent_n
        if not self._ext_phase and active and self._n >= self._min_n:
            measured = self._measure_phase()
            if measured is not None:
                if not self._locked:
                    self._beats = math.floor(self._beats) + measured
                    self._locked = True
                else:
                    err = (measured - self._beats - inc + 0.5) % 1.0 - 0.5
                    gain = 1.0 - math.exp(-dt / self.lock_time)
                    step = inc + max(-0.5 * inc, min(0.5 * inc, gain * err))
        before = self._beats
        self._beats = before + step
        self.phase = self._beats % 1.0
        fired = math.floor(self._beats) > math.floor(before)
        if self._ext_bpm is not None:
            return fired
        return fired and self._locked and active and self.confidence >= self.min_confidence

    # -- internals -----------------------------------------------------------------------
    def _apply(self, bpm, phase_time, t) -> None:
        if bpm is None:
            self._ext_bpm = None
            self._ext_phase = False
            if self._est > 0:
                self.bpm = self._est
            return
        self._ext_bpm = bpm
        self.bpm = bpm
        if phase_time is not None:
            since = (t - phase_time) * bpm / 60.0
            self._beats = math.floor(self._beats) + since % 1.0
            self._ext_phase = True
            self._locked = True
        else:
            self._ext_phase = False

    def _recent(self, m: int) -> np.ndarray:
        """The last m onset strengths, oldest first."""
        m = min(m, self._n, self._len)
        start = (self._i - m) % self._len
        if start + m <= self._len:
            return self._oss[start:start + m]
        return np.concatenate([self._oss[start:], self._oss[:start + m - self._len]])

    def _estimate(self) -> None:
        x = self._recent(self._len)
        x = x - x.mean()
        energy = float(np.dot(x, x))
        if energy <= 1e-12:
            return
        X = np.fft.rfft(x, self._nfft)
        acf = np.fft.irfft(X.real * X.real + X.imag * X.imag, self._nfft)[:len(x)] / energy
        n = len(acf)
        lags = self.fr * 60.0 / self.candidates
        score = np.zeros(len(lags))
        for k in range(1, self.harmonics + 1):
            lk = k * lags
            ok = lk < n - 1
            i = np.minimum(lk.astype(int), n - 2)
            f = lk - i
            score += np.where(ok, acf[i] * (1.0 - f) + acf[i + 1] * f, 0.0)
        score /= self.harmonics
        weighted = score * self._prior
        if self._est > 0:
            near = np.exp(-0.5 * (np.log2(self.candidates / self._est) / 0.03) ** 2)
            weighted = weighted * (1.0 + 0.15 * near)
        j = int(np.argmax(weighted))
        bpm = float(self.candidates[j])
        if 0 < j < len(weighted) - 1:              # parabolic refinement on the grid
            a, b, c = weighted[j - 1], weighted[j], weighted[j + 1]
            den = a - 2 * b + c
            if den < 0:
                bpm += 0.5 * (a - c) / den * (self.candidates[1] - self.candidates[0])
        conf = float(np.clip(score[j], 0.0, 1.0))
        if self._est > 0 and abs(math.log2(bpm / self._est)) > 0.06:
            # a different tempo: take it only when two estimates in a row agree
            if self._candidate > 0 and abs(math.log2(bpm / self._candidate)) < 0.06:
                self._est = bpm
                self._candidate = 0.0
            else:
                self._candidate = bpm
                return
        else:
            self._candidate = 0.0
            self._est = bpm if self._est <= 0 else 0.5 * (self._est + bpm)
        self.confidence = conf
        if self._ext_bpm is None:
            self.bpm = self._est

    def _measure_phase(self) -> float | None:
        """Where the beats fell: the oscillator's phase (0..1) at the newest frame."""
        period = self.fr * 60.0 / self.bpm                  # frames per beat
        m = min(self._n, self._len)
        beats = min(self.phase_beats, int((m - 1) // period))
        if beats < 1:
            return None
        key = (period, m, beats)
        if self._comb_key != key:                          # the comb only changes with the tempo
            phis = np.arange(int(math.ceil(period)))
            pos = (m - 1) - phis[:, None] - period * np.arange(beats)[None, :]
            i = np.clip(pos.astype(int), 0, m - 2)
            self._comb = (i, (pos - i) * 0.85 ** np.arange(beats), (1.0 - (pos - i)) * 0.85 ** np.arange(beats))
            self._comb_key = key
        i, wf, w1 = self._comb
        x = self._recent(m)
        score = (x[i] * w1 + x[i + 1] * wf).sum(axis=1)
        j = int(np.argmax(score))
        if score[j] <= 0.0:
            return None
        phi = float(j)
        a, b, c = score[j - 1], score[j], score[(j + 1) % len(score)]
        den = a - 2 * b + c
        if den < 0:
            phi += 0.5 * (a - c) / den
        since = phi / self.fr + self.delay                  # seconds since the last beat
        return (since * self.bpm / 60.0) % 1.0
