"""data_stream: a slow outside number walks the picture through latent space.

In the spirit of Anna Ridler's Mosaic Virus, where the price of bitcoin shapes the tulips:
any slow stream (a price, a sensor, the weather) sent over OSC to one address,

    oscsend 127.0.0.1 9000 /data/value f 27350.5

picks a place on a path of keyframes: the same value always gives the same picture, a rising
value walks forward. The range is learnt from the values seen (or fix it in RANGE below).
- A jump glides there at most `glide` keyframes per second, with a flash: never a cut.
- A stall (nothing for `stall` seconds, or nothing yet) keeps the picture breathing around its
  place and fades the colour, so a dead feed shows; when values come back it eases home.
"""
SOURCE = "osc./data/value"   # or e.g. "osc./sensor/temp", "midi.cc.1"
RANGE = None                 # None: learn it from the stream; or (low, high)


def setup(p):
    p.keys = p.seeds([11, 23, 5, 42, 77, 8, 31, 64, 19, 90])
    p.lo, p.hi = (RANGE if RANGE else (None, None))
    p.pos = 0.0
    p.last_t = None
    p.last_u = None
    p.wander = p.lfo("random", seconds=5.0, seed=3)
    p.stale = p.smooth(1.5, initial=1.0)        # 0 = fresh data, 1 = stalled (eased)
    p.flash = p.envelope(attack=0.05, decay=1.2)


def frame(p, s):
    glide = p.param("glide", default=0.3, lo=0.02, hi=3.0, description="keyframes per second at most")
    stall = p.param("stall", default=10.0, lo=1.0, hi=120.0, description="seconds without data = stalled")
    wander = p.param("wander", default=0.5, lo=0.0, hi=2.0, description="keyframes of drift while stalled")
    t = s.times.get(SOURCE)
    value = s.get(SOURCE, None)
    if t is not None and t != p.last_t and isinstance(value, (int, float)):
        p.last_t = t
        if RANGE is None:   # the range grows to hold every value seen
            p.lo = value if p.lo is None else min(p.lo, value)
            p.hi = value if p.hi is None else max(p.hi, value)
        span = (p.hi - p.lo) or 1.0
        u = min(1.0, max(0.0, (value - p.lo) / span))
        if p.last_u is None:
            p.pos = u * (len(p.keys) - 1)           # the first value: start there
        elif abs(u - p.last_u) > 0.15:
            p.flash.trigger(min(1.0, abs(u - p.last_u) * 2))
        p.last_u = u
    target = p.last_u * (len(p.keys) - 1) if p.last_u is not None else p.pos
    # glide: ease towards the target, never faster than `glide` keyframes per second
    step = max(-glide * p.dt, min(glide * p.dt, (target - p.pos) * min(1.0, 2.0 * p.dt)))
    p.pos += step
    stale = p.stale(1.0 if p.age(SOURCE) > stall else 0.0)
    drift = (p.wander() - 0.5) * 2.0 * wander * stale
    pos = min(len(p.keys) - 1.0, max(0.0, p.pos + drift))
    flash = p.flash()
    z = p.walk(p.keys, pos, ease="smooth", closed=False)
    return p.controls(z=z, fit=1.0, saturation=1.0 - 0.6 * stale, brightness=0.25 * flash,
                      zoom=1.0 + 0.05 * flash, feedback=0.2 + 0.4 * stale)
