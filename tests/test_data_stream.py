"""patches/data_stream.py: a slow OSC value drives a continuous walk, sensible on stalls and jumps."""
import time

import numpy as np

from engine import paths
from engine.patching.loader import PatchHost
from engine.signals.bus import SignalBus


class Info:
    z_dim, name, architecture, resolution, w_dim, num_ws, c_dim = 100, "t", "dcgan", 64, 100, 1, 0


class Run:
    def __init__(self):
        self.host = PatchHost(paths.PATCHES / "data_stream.py", Info)
        assert self.host.load()
        self.bus, self.k, self.t = SignalBus(), 0, 0.0

    def frames(self, n, value=None, age=0.0):
        out = []
        for i in range(n):
            if value is not None and i == 0:
                self.bus.set("osc./data/value", value, t=time.monotonic() - age)
            self.t += 1 / 30
            snap = self.bus.snapshot(time=self.t, dt=1 / 30 if self.k else 0.0, frame=self.k)
            self.k += 1
            c = self.host.frame(snap)
            assert self.host.last_error is None, self.host.last_error
            out.append((np.asarray(c.z, np.float64), c.post))
        return out


def steps(frames):
    z = np.array([f[0] for f in frames])
    return np.linalg.norm(np.diff(z, axis=0), axis=1)


def test_stream_walks_glides_over_jumps_and_breathes_when_stalled():
    r = Run()
    r.frames(5, value=100.0)           # the first value: start there
    r.frames(1000, value=200.0)        # the range is learnt: 200 is the far end, glided to
    ctx = r.host.active.ctx
    assert abs(ctx.pos - 9) < 0.05
    calm = r.frames(30, value=110.0)   # a jump back across the whole range
    # a glide, not a cut: the largest step per frame is small next to the whole move
    assert steps(calm).max() < 0.25 * np.linalg.norm(calm[-1][0] - calm[0][0]) + 1e-6
    assert ctx.flash.value > 0         # and the jump is marked by a flash
    assert ctx.pos > 0.9               # still on its way to 0.9 keyframes (from 9)
    r.frames(1000, value=110.0)
    assert abs(ctx.pos - 0.9) < 0.05   # arrived
    still = r.frames(30)
    assert steps(still).max() < 1e-3   # fresh data, no change: the picture rests
    # the stream stalls: the picture keeps breathing and the colour fades
    stalled = r.frames(120, value=110.0, age=60.0)
    assert steps(stalled[-60:]).mean() > 1e-3
    assert stalled[-1][1]["saturation"] < 0.7
    # data comes back: colour returns, and it eases home
    back = r.frames(200, value=110.0)
    assert back[-1][1]["saturation"] > 0.95
    assert steps(back[-30:]).max() < 1e-3


def test_no_data_yet_and_non_numbers_are_fine():
    r = Run()
    f = r.frames(30)                   # nothing received: a slow drift, not an error
    assert np.isfinite(f[-1][0]).all()
    r.frames(3, value="not a number")
    r.frames(3, value=float("nan"))
