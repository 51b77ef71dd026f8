# mandala: the built-in model made for a projector. A 64x64 face blown up to a wall is a
# blur; folded into a slowly turning kaleidoscope, with trails pushed outwards on every
# beat, it becomes a mandala of eyes, hair and skin that fills the frame edge to edge.
# Without audio it keeps time with the clock (120 bpm, tap Space): the faces drift, each
# beat breathes the zoom and sends a ring out through the trails, the colours turn over a
# few bars. With audio (--audio FILE, --audio-in) the music takes over: its beats and kicks
# pulse it, its loudness speeds the drift, its high end tints the hue. The look depends only
# on the clock when there is no audio, so a scene left and entered again is where it was.
import math


def setup(p):
    p.keys = p.seeds([180, 44, 161, 38, 181, 128, 78, 3])   # faces whose eyes meet the mirrors
    p.push = p.seed(6) - p.seed(5)              # "a direction": the beat's kick in latent space
    p.level = p.follow(attack=0.03, release=0.8)
    p.hit = p.envelope(attack=0.005, decay=0.3)
    p.heard = p.smooth(1.5)                     # 0 = no audio .. 1 = the music leads
    p.air = p.smooth(0.5)
    p.travel = 0.0                              # laps of the loop the music has added


def frame(p, s):
    segments = p.param("segments", default=10, lo=2, hi=16, description="kaleidoscope segments")
    trails = p.param("trails", default=0.5, lo=0.0, hi=0.9, description="feedback amount")
    level = p.level(max(s["audio.rms"], s["audio.low"]))
    heard = p.heard(1.0 if level > 0.02 else 0.0)
    hits = s.events_of("audio.beat") + s.events_of("audio.kick")
    hit = p.hit(max(hits) if hits else None)
    tick = math.exp(-4.0 * s.beat_phase)        # the clock's own beat: 1 on it, fading out
    pulse = (1.0 - heard) * tick + heard * hit
    p.travel += p.dt * 0.04 * level
    z = p.loop(p.keys, beats=4 * len(p.keys), phase=p.travel, ease="smooth") + p.push * 0.12 * pulse
    bar = s.beat / 4.0
    return p.controls(
        z=z, fit=1.0,
        zoom=1.1 + 0.06 * math.sin(bar * math.tau / 4) + 0.06 * pulse,
        kaleido=round(segments), kaleido_rotate=bar / 8,
        feedback=trails + 0.2 * pulse, feedback_zoom=1.008 + 0.03 * pulse, feedback_rotate=0.01,
        hue=bar / 16 + 0.1 * p.air(s["audio.high"]), saturation=1.4, contrast=1.15,
        brightness=0.08 * pulse)
