# drift: a slow, tempo-locked loop through eight seeded faces.
# One lap every 8 bars at the current tempo; change the tempo (tap Space) and the
# loop speeds up without jumping. A gentle sine on the zoom breathes with the bar.

def setup(p):
    p.keys = p.seeds([3, 14, 15, 92, 65, 35, 89, 79])
    p.breath = p.lfo("sine", beats=4)


def frame(p, s):
    z = p.loop(p.keys, beats=8 * 4)
    return p.controls(z=z, fit=1.0, zoom=1.0 + 0.03 * p.breath())   # fit=1: fill the frame
