# chroma_layers: the bass line shapes, the melody colours. As in the audio-reactive
# StyleGAN work, the chroma of the bass notes (below middle C) picks a blend of twelve
# keyframes for the coarse layers (pose, layout), the chroma of the notes above it a
# blend for the fine layers (colour, texture), and the middle layers take half of each.
# A one-layer model (the built-in DCGAN) has no layers to split: bass and treble are
# blended into its one z instead. Silence rests on the average of the keys.

def setup(p):
    p.keys = p.seeds(range(200, 212))            # one keyframe per pitch class, C .. B
    p.bass = p.smooth(0.5)                       # s: the bass moves slowly
    p.treble = p.smooth(0.2)
    n = p.model.num_ws                           # StyleGAN2 at 1024: 18 layers
    p.coarse = max(1, round(n * 4 / 18))         # 4x4 .. 8x8
    p.fine = max(p.coarse, round(n * 8 / 18))    # from 64x64 up


def frame(p, s):
    bass = p.mix(p.keys, p.bass(s.get("audio.chroma_bass", [0.0] * 12)), sharpness=2.0)
    treble = p.mix(p.keys, p.treble(s.get("audio.chroma_treble", [0.0] * 12)), sharpness=2.0)
    middle = p.slerp(bass, treble, 0.5)
    if p.model.num_ws == 1:
        return p.controls(z=middle, fit=1.0)
    layers = [bass] * p.coarse + [middle] * (p.fine - p.coarse) + [treble] * (p.model.num_ws - p.fine)
    return p.controls(z=layers, fit=1.0)         # one z per layer
