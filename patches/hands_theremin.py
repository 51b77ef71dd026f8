# hands_theremin: the smallest hand patch. One hand (either) plays it like a theremin:
# raise the palm to travel round a loop of keyframes, move it left-right to fold a
# kaleidoscope, close the fist to pull the picture towards the average image (psi -> 0).
# With no hand the tracker eases the palm to the box centre: the picture settles mid-loop.


def setup(p):
    p.keys = p.seeds([3, 14, 15, 92, 65, 35])
    p.height = p.smooth(0.2, initial=0.5)        # seconds: a little glide, no jitter


def frame(p, s):
    side = "hands.right" if s["hands.right.visible"] or not s["hands.left.visible"] else "hands.left"
    z = p.walk(p.keys, p.height(s.get(side + ".palm.y", 0.5)) * len(p.keys))  # height -> loop
    kaleido = round(p.remap(s.get(side + ".palm.x", 0.5), 0.6, 1.0, 0, 8))  # right -> segments
    return p.controls(z=z, psi=1.0 - s[side + ".grab"], kaleido=kaleido, fit=1.0)  # fist -> psi 0
