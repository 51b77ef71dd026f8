"""Beat and downbeat activations from the analyser's log bands, one frame at a time.

The bands are first pooled into fixed groups, three per octave from 30 Hz up, so the
same weights serve any sample rate; each frame's features are the groups' log
magnitudes and their rise since the last frame (a spectral flux per group).

With trained weights (``beat_net.npz`` and ``beat_net_shuffle.npz`` beside this file, made
by ``tools/train_beat_net.py``; see ``beat_net.md`` for the data, the licence and how they
were trained), two small causal recurrent networks (a dense layer, one GRU, a softmax over
"no beat", "beat", "downbeat") read the features, and their outputs are averaged: each has
learnt which onsets are beats from the music around them (a kick, not a hi-hat; the bar's
harmony changing), and the mean of two trained apart errs less than either. A quarter of
the activation is the summed flux, normalised by its recent peaks (``FLUX_SHARE``): the
networks know the soundfonts they learnt from, and on produced music they missed beats the
flux finds. A file that is missing or does not load is left out; without any, the
activation is the flux alone: any onset may be a beat and any beat the one.

The recurrent step is plain NumPy (a few small matrix products per frame), so no
deep-learning library is needed live.
"""
from __future__ import annotations

import logging
import math
import zipfile
from pathlib import Path

import numpy as np

log = logging.getLogger("vj")

# two networks of the same shape, trained apart (the second also on a piano shuffle): their
# mean is steadier than either (beat_net.md)
WEIGHTS = (Path(__file__).with_name("beat_net.npz"), Path(__file__).with_name("beat_net_shuffle.npz"))
# how much of the activation is the normalised flux rather than the networks' beat: chosen on
# the tune split's LMMS songs, which no network saw (0 / 0.25 / 0.5 / 0.75: beat F 0.830 /
# 0.895 / 0.899 / 0.864), and kept low because the flux also counts off-beat hi-hats
# (the off-beat hard case 0.92 / 0.89 / 0.64 / -)
FLUX_SHARE = 0.25
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


class _Net:
    """One trained network's recurrent step: features in, (none, beat, downbeat) out."""

    def __init__(self, weights: dict, n_features: int):
        w = {k: np.asarray(v, np.float32) for k, v in weights.items()}
        self.mean, self.std = w["mean"], w["std"]
        self.W0, self.b0 = w["dense.weight"], w["dense.bias"]
        self.Wi, self.Wh = w["gru.weight_ih_l0"], w["gru.weight_hh_l0"]
        self.bi, self.bh = w["gru.bias_ih_l0"], w["gru.bias_hh_l0"]
        self.Wo, self.bo = w["out.weight"], w["out.bias"]
        self.hidden = self.Wh.shape[1]
        if self.W0.shape[1] != n_features:
            raise ValueError(f"beat network expects {self.W0.shape[1]} features, not {n_features}")
        self.reset()

    def reset(self) -> None:
        self.h = np.zeros(self.hidden, np.float32)

    def step(self, f: np.ndarray) -> np.ndarray:
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
        return o / o.sum()


class BeatActivation:
    """``step(logb) -> (beat, downbeat)``, each 0..1: the mean of the trained networks'
    outputs (``weights``: one dict of arrays per network) with a share of the normalised
    flux, or the flux alone without any network. ``evidence``: how likely a beat is now by
    the networks alone (the flux without them), for the tracker's confidence."""

    def __init__(self, freqs: np.ndarray, weights: list[dict] | None = None):
        self.features = Features(freqs)
        self.nets = [_Net(w, self.features.size) for w in (weights or [])]
        self.trained = bool(self.nets)
        self.reset()

    @classmethod
    def load(cls, freqs: np.ndarray, paths: tuple[Path, ...] | None = None) -> "BeatActivation":
        """The trained networks whose weights load (``paths``, default ``WEIGHTS``; each bad
        file named and left out), else the flux activation."""
        act = cls(freqs)
        for path in WEIGHTS if paths is None else paths:
            if not path.is_file():
                continue
            try:
                with np.load(path, allow_pickle=False) as z:
                    act.nets.append(_Net({k: z[k] for k in z.files}, act.features.size))
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
                log.warning("beat network %s did not load (%s): left out", path, e)
        act.trained = bool(act.nets)
        if not act.trained:
            log.warning("no beat network loaded: beats from the spectral flux")
        return act

    def reset(self) -> None:
        self.features.reset()
        for net in self.nets:
            net.reset()
        self._peak = 1e-3
        self.evidence = 0.0         # the last step's beat-or-downbeat, by the networks alone

    def step(self, logb: np.ndarray) -> tuple[float, float]:
        f = self.features.step(logb)
        n = len(f) // 2
        flux = float(f[n:].mean())
        if not math.isfinite(flux):
            self.reset()
            return 0.0, 0.0
        self._peak = max(flux, self._peak * 0.995, 1e-3)
        v = min(1.0, flux / self._peak)
        if not self.trained:
            self.evidence = v
            return 0.5 * v, 0.5 * v
        p = self.nets[0].step(f)
        for net in self.nets[1:]:
            p = p + net.step(f)
        p = p / len(self.nets)
        beat, down = float(p[1]), float(p[2])
        if not (math.isfinite(beat) and math.isfinite(down)):
            # a non-finite band would stay in the recurrent state for good: start afresh
            self.reset()
            return 0.0, 0.0
        # a share of the flux: the networks know the soundfonts they were trained on, the
        # flux any onset (beat_net.md); the networks still say which beat is the one, and
        # how sure (``evidence``: noise has onsets everywhere, and beats nowhere)
        total = beat + down
        self.evidence = total
        share = down / total if total > 1e-9 else 0.0
        total = (1.0 - FLUX_SHARE) * total + FLUX_SHARE * v
        return total * (1.0 - share), total * share
