# tunnel: long feedback trails pushed outwards, so the picture seems to fly towards you
# through rings of its own past. The face is folded into six mirrored wedges;
# every beat throws a new ring out with a push in latent space and a flash, every bar the
# colour steps on, and the trails sway one way then the other over two bars. Without audio
# the clock's beat (120 bpm, tap Space) drives it; with audio the kicks and the loudness do.
import math


def setup(p):
    p.keys = p.seeds([177, 24, 88, 38, 135, 10])
    p.push = p.seed(2) - p.seed(1)
    p.level = p.follow(attack=0.02, release=0.5)
    p.kick = p.envelope(attack=0.005, decay=0.2)
    p.heard = p.smooth(1.5)                     # 0 = no audio .. 1 = the music leads


def frame(p, s):
    level = p.level(max(s["audio.rms"], s["audio.low"]))
    heard = p.heard(1.0 if level > 0.02 else 0.0)
    kicks = s.events_of("audio.kick") + s.events_of("audio.beat")
    kick = p.kick(max(kicks) if kicks else None)
    tick = math.exp(-6.0 * s.beat_phase)        # the clock's beat: 1 on it, gone by the next
    pulse = (1.0 - heard) * tick + heard * kick
    bar = s.beat / 4.0
    z = p.loop(p.keys, beats=3 * len(p.keys), ease="smooth") + p.push * (0.15 + 0.2 * level) * pulse
    return p.controls(
        z=z, fit=1.0, zoom=1.1 + 0.08 * pulse,
        kaleido=6, kaleido_rotate=1 / 24,
        feedback=0.7, feedback_zoom=1.012 + 0.05 * pulse,
        feedback_rotate=0.015 * math.sin(bar * math.tau / 2),
        hue=math.floor(bar) * 0.13 + 0.05 * pulse, saturation=1.5, contrast=1.3,
        brightness=0.12 * pulse)
