# xoromancy: after the Xoromancy installation (Crawford & Tiwari, 2019), where visitors
# steered BigGAN with their hands over a LEAP Motion sensor. Here each hand flies through a
# cube of latent space: eight seeded keyframes sit at its corners and the palm's x, y, z
# (left-right, height, forward-back) pick the blend between them. Tilting the hand turns
# the picture: roll and pitch push along two fixed latent directions. A fist closes the
# truncation towards 0 (the average image); a pinch drops a new keyframe where the hand is.
# Two hands each have their own cube (two scenes); the HIGHER hand leads the mix. On a
# class-conditional model (BigGAN) hand height also moves through a ring of classes.
# With nobody there, it idles: two slow LFOs play the hands as the old version did, and
# the picture cross-fades from wherever the last visitor left it into that drift and back.
import numpy as np

# a landscape ring of ImageNet classes (BigGAN's 1000): volcano, coral reef, lakeside,
# alp, seashore, mushroom
CLASSES = [980, 973, 975, 970, 978, 947]
SIDES = ("left", "right")
MAX_DROPPED = 8          # pinched keyframes kept per hand (the oldest is replaced)
REACH = 0.25             # how near (in box units, 0..1) a dropped keyframe pulls the picture
TURN = 0.6               # how far a full radian of roll or pitch turns the latent


def setup(p):
    # idle: two slow LFOs play the hands when nobody is there
    p.idle_a = p.lfo("sine", seconds=47)         # which classes / which set of keys
    p.idle_b = p.lfo("triangle", seconds=71)     # where along the keys
    p.idle_keys = p.seeds([11, 23, 42, 77, 101, 137])
    p.idle_other = p.seeds([5, 8, 13, 21, 34, 55])
    p.energy = p.follow(attack=0.05, release=1.5)
    p.travel = 0.0
    # each hand's cube: 8 corner keyframes (corner i = bits x, y, z of i)
    p.corners = {"left": p.seeds(range(300, 308)), "right": p.seeds(range(400, 408))}
    p.dropped = {"left": [], "right": []}        # (palm x, y, z, latent) per pinch
    p.pinching = {"left": False, "right": False}
    p.roll_dir = p.seed(1) - p.seed(2)           # directions: differences of two seeds
    p.pitch_dir = p.seed(3) - p.seed(4)
    # smoothing (seconds): the palm a little, presence and mixes more, so nothing jumps
    p.palm = {side: p.smooth(0.15, initial=np.full(3, 0.5)) for side in SIDES}
    p.turns = {side: p.smooth(0.2, initial=np.zeros(2)) for side in SIDES}
    p.seen = {side: p.smooth(0.4, initial=0.0) for side in SIDES}
    p.presence = p.smooth(1.2, initial=0.0)      # 0 idle .. 1 a visitor's hands
    p.lead = p.smooth(0.4, initial=0.5)          # 0 the left scene .. 1 the right scene
    p.fist = p.smooth(0.25, initial=0.0)
    if p.model.c_dim:
        p.classes = [k for k in CLASSES if k < p.model.c_dim] or list(range(min(6, p.model.c_dim)))
    else:
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


def cube(p, side, xyz):
    """The hand's place in its cube: trilinear weights on the corners, plus dropped keyframes
    pulling when the palm is within REACH of where they were dropped."""
    x, y, z = np.clip(xyz, 0.0, 1.0)
    weights = [(x if i & 1 else 1 - x) * (y if i & 2 else 1 - y) * (z if i & 4 else 1 - z)
               for i in range(8)]
    keys = list(p.corners[side])
    for (dx, dy, dz, key) in p.dropped[side]:
        near = max(0.0, 1.0 - np.linalg.norm(np.subtract((dx, dy, dz), xyz)) / REACH)
        weights.append(3.0 * near * near)
        keys.append(key)
    return p.mix(keys, weights)


def frame(p, s):
    # -- idle: the drift between visitors (audio, if any, pushes it on) --
    energy = p.energy(max(s["audio.rms"], s["audio.low"]))
    p.travel += p.dt * 0.4 * energy
    idle = p.walk(p.idle_keys, p.idle_b() * (len(p.idle_keys) - 1) + p.travel, ease="smooth")
    if not p.model.c_dim:
        there = p.walk(p.idle_other, p.idle_b() * (len(p.idle_other) - 1) + p.travel, ease="smooth")
        idle = p.slerp(idle, there, p.idle_a())

    # -- the hands: one scene per hand --
    scene, height, grab = {}, {}, 0.0
    for side in SIDES:
        h = "hands." + side
        if s[h + ".visible"]:        # a hand gone keeps its last place: the idle takes over
            p.palm[side]([s[h + ".palm.x"], s[h + ".palm.y"], s[h + ".palm.z"]])
            p.turns[side]([s[h + ".roll"], s[h + ".pitch"]])
        xyz = p.palm[side].value
        roll, pitch = np.clip(p.turns[side].value, -1.0, 1.0)
        z = cube(p, side, xyz) + TURN * (roll * p.roll_dir + pitch * p.pitch_dir)
        scene[side], height[side] = z, xyz[1]
        p.seen[side](s[h + ".visible"])
        grab = max(grab, s[h + ".grab"])
        # a pinch (crossing 0.8 upwards) drops the current picture as a keyframe here
        if s[h + ".pinch"] > 0.8 and not p.pinching[side]:
            p.dropped[side] = (p.dropped[side] + [(*xyz, z)])[-MAX_DROPPED:]
        p.pinching[side] = s[h + ".pinch"] > (0.5 if p.pinching[side] else 0.8)

    # two hands: the higher one leads; one hand alone leads by itself
    left, right = p.seen["left"].value, p.seen["right"].value
    higher = np.clip(0.5 + 2.0 * (height["right"] - height["left"]), 0.0, 1.0)
    wl, wr = left * (1 - higher), right * higher
    lead = p.lead(wr / (wl + wr) if wl + wr > 0.05 else p.lead.value)
    hand = p.slerp(scene["left"], scene["right"], lead)
    y = (1 - lead) * height["left"] + lead * height["right"]

    # -- cross-fade between the idle drift and the hands --
    here = p.presence(1.0 if s["hands.left.visible"] or s["hands.right.visible"] else 0.0)
    z = p.slerp(idle, hand, here)
    top = 0.8 if p.model.c_dim else 1.0          # BigGAN is at its best below 1
    idle_psi = min(1.0, 0.45 + 0.3 * energy) if p.model.c_dim else 1.0
    psi = (1 - here) * idle_psi + here * top * (1 - p.fist(grab))     # a fist -> psi 0
    if not p.model.c_dim:
        return p.controls(z=z, psi=psi, fit=1.0)
    position = (1 - here) * p.idle_a() + here * y                     # hand height -> class
    c = class_mix(p.classes, position * (len(p.classes) - 1), p.model.c_dim)
    return p.controls(z=z, c=c, psi=psi, fit=1.0)
