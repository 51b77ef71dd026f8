# xoromancy: BigGAN steered the way the Xoromancy installation (Crawford & Tiwari, 2019)
# steered it with two hands over a LEAP Motion: one hand chooses where between a few
# classes the picture is, the other travels through z. Hands are not wired in yet, so two
# slow LFOs play the hands. With audio, the music's energy pushes the z walk further and
# loosens the truncation. A model without classes (the built-in DCGAN) gets the same two
# motions as a plain latent loop: the "class hand" blends between two sets of keys.
import numpy as np

# a landscape ring of ImageNet classes (BigGAN's 1000): volcano, coral reef, lakeside,
# alp, seashore, mushroom
CLASSES = [980, 973, 975, 970, 978, 947]


def setup(p):
    p.keys = p.seeds([11, 23, 42, 77, 101, 137])
    p.hand_a = p.lfo("sine", seconds=47)        # left-right: which classes
    p.hand_b = p.lfo("triangle", seconds=71)    # forward-back: where in z
    p.energy = p.follow(attack=0.05, release=1.5)
    p.travel = 0.0
    if p.model.c_dim:
        p.classes = [k for k in CLASSES if k < p.model.c_dim] or list(range(min(6, p.model.c_dim)))
    else:
        p.other = p.seeds([5, 8, 13, 21, 34, 55])
        p.log("the model has no classes: a plain latent loop")


def class_mix(classes, position, c_dim):
    """A soft class vector: ``position`` 0 is classes[0], 1 is classes[1], 0.5 half each."""
    i = int(np.clip(np.floor(position), 0, len(classes) - 1))
    f = float(np.clip(position - i, 0.0, 1.0))
    f = f * f * (3 - 2 * f)                      # dwell on each class, pass quickly between
    c = np.zeros(c_dim, np.float32)
    c[classes[i]] += 1 - f
    c[classes[min(i + 1, len(classes) - 1)]] += f
    return c


def frame(p, s):
    energy = p.energy(max(s["audio.rms"], s["audio.low"]))     # 0 without audio
    p.travel += p.dt * 0.4 * energy                            # the music pushes z onwards
    z = p.walk(p.keys, p.hand_b() * (len(p.keys) - 1) + p.travel, ease="smooth")
    if not p.model.c_dim:
        there = p.walk(p.other, p.hand_b() * (len(p.other) - 1) + p.travel, ease="smooth")
        return p.controls(z=p.slerp(z, there, p.hand_a()))
    c = class_mix(p.classes, p.hand_a() * (len(p.classes) - 1), p.model.c_dim)
    return p.controls(z=z, c=c, psi=min(1.0, 0.45 + 0.3 * energy))
