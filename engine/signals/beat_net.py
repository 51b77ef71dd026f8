"""Beat and downbeat activations from the analyser's log bands, one frame at a time.

The bands are first pooled into fixed groups, three per octave from 30 Hz up, so the
same weights serve any sample rate; each frame's features are the groups' log
magnitudes and their rise since the last frame (a spectral flux per group).

With trained weights (``beat_net.npz`` beside this file, made by
``tools/train_beat_net.py``; see ``beat_net.md`` for the data, the licence and how it
was trained), a small causal recurrent network (a dense layer, one GRU, a softmax over
"no beat", "beat", "downbeat") reads the features: it has learnt which onsets are
beats from the music around them (a kick, not a hi-hat; the bar's harmony changing).
Without the file, or when it does not load, the activation is the summed flux,
normalised by its recent peaks: any onset may be a beat and any beat the one.

The recurrent step is plain NumPy (a few small matrix products per frame), so no
deep-learning library is needed live.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

log = logging.getLogger("vj")

WEIGHTS = Path(__file__).with_name("beat_net.npz")
GROUP_FMIN = 30.0
GROUPS_PER_OCTAVE = 3
GROUP_FMAX = 16000.0


def group_matrix(freqs: np.ndarray) -> np.ndarray:
    """[n_bands, n_groups] averaging the analyser's bands (centre ``freqs``, Hz) into
    fixed log-spaced groups; a group with no band of its own takes the nearest band."""
    n = int(math.floor(math.log2(GROUP_FMAX / GROUP_FMIN) * GROUPS_PER_OCTAVE))
    edges = GROUP_FMIN * 2.0 ** (np.arange(n + 1) / GROUPS_PER_OCTAVE)
    G = np.zeros((len(freqs), n), np.float32)
    for j in range(n):
        inside = (freqs >= edges[j]) & (freqs < edges[j + 1])
        if inside.any():
            G[inside, j] = 1.0 / inside.sum()
        else:
            G[int(np.argmin(np.abs(np.log(np.maximum(freqs, 1.0) / math.sqrt(edges[j] * edges[j + 1]))))), j] = 1.0
    return G


class Features:
    """Per frame: pooled log magnitudes and their positive first difference."""

    def __init__(self, freqs: np.ndarray):
        self.G = group_matrix(np.asarray(freqs, np.float64))
        self.size = 2 * self.G.shape[1]
        self.reset()

    def reset(self) -> None:
        self._prev: np.ndarray | None = None

    def step(self, logb: np.ndarray) -> np.ndarray:
        g = np.asarray(logb, np.float32) @ self.G
        prev = g if self._prev is None else self._prev
        self._prev = g
        return np.concatenate([g, np.maximum(g - prev, 0.0)])


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class BeatActivation:
    """``step(logb) -> (beat, downbeat)``, each 0..1."""

    def __init__(self, freqs: np.ndarray, weights: dict | None = None):
        self.features = Features(freqs)
        self.trained = weights is not None
        if weights is not None:
            w = {k: np.asarray(v, np.float32) for k, v in weights.items()}
            self.mean, self.std = w["mean"], w["std"]
            self.W0, self.b0 = w["dense.weight"], w["dense.bias"]
            self.Wi, self.Wh = w["gru.weight_ih_l0"], w["gru.weight_hh_l0"]
            self.bi, self.bh = w["gru.bias_ih_l0"], w["gru.bias_hh_l0"]
            self.Wo, self.bo = w["out.weight"], w["out.bias"]
            self.hidden = self.Wh.shape[1]
            if self.W0.shape[1] != self.features.size:
                raise ValueError(f"beat network expects {self.W0.shape[1]} features, not {self.features.size}")
        self.reset()

    @classmethod
    def load(cls, freqs: np.ndarray, path: Path = WEIGHTS) -> "BeatActivation":
        """The trained network if its weights load, else the flux activation."""
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    return cls(freqs, {k: z[k] for k in z.files})
            except (OSError, ValueError, KeyError) as e:
                log.warning("beat network %s did not load (%s): beats from the spectral flux", path, e)
        return cls(freqs)

    def reset(self) -> None:
        self.features.reset()
        if self.trained:
            self.h = np.zeros(self.hidden, np.float32)
        self._peak = 1e-3

    def step(self, logb: np.ndarray) -> tuple[float, float]:
        f = self.features.step(logb)
        if not self.trained:
            n = len(f) // 2
            flux = float(f[n:].mean())
            self._peak = max(flux, self._peak * 0.995, 1e-3)
            v = min(1.0, flux / self._peak)
            return 0.5 * v, 0.5 * v
        x = np.tanh(self.W0 @ ((f - self.mean) / self.std) + self.b0)
        H = self.hidden
        gi = self.Wi @ x + self.bi
        gh = self.Wh @ self.h + self.bh
        r = _sigmoid(gi[:H] + gh[:H])
        z = _sigmoid(gi[H:2 * H] + gh[H:2 * H])
        n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
        self.h = (1.0 - z) * n + z * self.h
        o = self.Wo @ self.h + self.bo
        o = np.exp(o - o.max())
        p = o / o.sum()
        return float(p[1]), float(p[2])
