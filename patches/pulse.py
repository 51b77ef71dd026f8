# pulse: the music's energy drives the movement. Loud passages travel fast through
# latent space and onsets kick the image; silence drifts very slowly, so the patch
# also runs with no audio at all.

def setup(p):
    p.keys = p.seeds([7, 21, 33, 48, 56, 77])
    p.energy = p.follow(attack=0.03, release=0.4)   # seconds
    p.kick = p.envelope(attack=0.01, decay=0.25)
    p.position = 0.0


def frame(p, s):
    energy = p.energy(max(s["audio.rms"], s["audio.low"]))
    kick = p.kick(s.fired("audio.onset"))
    # keyframes per second: a crawl in silence, brisk when loud
    p.position += p.dt * (0.02 + 1.5 * energy + 2.0 * kick)
    z = p.walk(p.keys, p.position)
    return p.controls(z=z, fit=1.0, zoom=1.0 + 0.08 * kick, brightness=0.12 * kick)
