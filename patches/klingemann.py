# klingemann: harmony chooses the face, the bass drum kicks it. After the audio-reactive
# GAN pieces of Mario Klingemann: twelve keyframes, one per pitch class, are weighted by
# the chroma, so a chord change moves the picture to another place in latent space; a
# slow drift wanders underneath and calms down while the music is sustained and
# harmonic; each kick drum pushes the latent along one direction and flashes the
# feedback trails. Without audio it drifts slowly through the average of the keys.

def setup(p):
    p.keys = p.seeds(range(100, 112))            # one keyframe per pitch class, C .. B
    p.wander = p.seeds([7, 21, 33, 48])
    p.direction = p.seed(1) - p.seed(2)          # "a direction": the difference of two seeds
    p.harmony = p.smooth(0.35)                   # s, chroma (12 numbers) smoothed
    p.calm = p.smooth(1.0)                       # s, harmonic level, slow
    p.kick = p.envelope(attack=0.005, decay=0.25)
    p.flash = p.envelope(attack=0.005, decay=0.1)
    p.position = 0.0


def frame(p, s):
    chord = p.mix(p.keys, p.harmony(s.get("audio.chroma", [0.0] * 12)), sharpness=2.0)
    calm = p.calm(s["audio.harmonic"])
    p.position += p.dt * 0.25 * (1.0 - 0.8 * calm)          # keys per second
    base = p.slerp(p.walk(p.wander, p.position), chord, 0.7)
    hit = max(s.events_of("audio.kick"), default=0.0)       # event value: strength 0..1
    kick = p.kick(0.5 + 0.5 * hit if hit else None)
    flash = p.flash(hit)
    z = base + p.direction * 0.6 * kick
    return p.controls(z=z, fit=1.0, zoom=1.0 + 0.06 * kick, feedback=0.55 + 0.35 * kick,
                      feedback_zoom=1.0 + 0.03 * kick, brightness=0.3 * flash)
