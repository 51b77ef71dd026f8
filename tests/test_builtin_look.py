"""The first impression: the README's main command, played through the real CLI, fills a 16:9
frame and keeps moving with no input at all; and a flash never lights a letterbox bar."""
import shlex

import numpy as np
import pytest

from conftest import ROOT, frame_motion, read_video, run_vj
from test_readme import quick_start_commands

NEAR_BLACK = 24      # 0..255: what an encoded black bar reads as, with room for the encoder


def border_fraction(frame: np.ndarray) -> float:
    """The share of the frame in black bars: rows and columns at its edges whose every pixel
    is near black, counted inwards from each edge."""
    lit = frame.max(axis=2) > NEAR_BLACK
    h, w = lit.shape
    rows, cols = lit.any(axis=1), lit.any(axis=0)
    if not rows.any():
        return 1.0
    top, bottom = int(rows.argmax()), int(rows[::-1].argmax())
    left, right = int(cols.argmax()), int(cols[::-1].argmax())
    r, c = top + bottom, left + right
    return (r * w + c * (h - r)) / (w * h)


def readme_command(out) -> list[str]:
    """The README's first quick-start command as `vj` arguments, at a smaller 16:9 size and
    recording to ``out``; its patch or set, its frame count and the rest as written."""
    line = quick_start_commands()[0]
    args = shlex.split(line.split("&&")[-1])
    assert args[:2] == ["vj", "run"], line
    args = args[1:]
    args[args.index("--record") + 1] = str(out)
    return [*args, "--size", "640x360", "--no-osc", "--no-midi", "--no-state"]


def test_readme_demo_fills_the_frame_and_keeps_moving(tmp_path):
    out = tmp_path / "first.mp4"
    args = readme_command(out)
    proc = run_vj(*args, timeout=120)
    frames, _ = read_video(out)
    n = int(args[args.index("--frames") + 1])
    assert len(frames) == n, proc.stderr[-2000:]
    assert frames[0].shape[:2] == (360, 640)
    borders = np.array([border_fraction(f) for f in frames])
    worst = int(borders.argmax())
    assert borders[worst] <= 0.05, f"frame {worst} is {borders[worst]:.0%} black border"
    # alive with no input: every frame differs from the one before, and every second of it moves
    motion = frame_motion(frames)
    assert motion.min() > 0.3, f"frame {int(motion.argmin()) + 1} barely changed ({motion.min():.2f})"
    per_second = [motion[i:i + 30].mean() for i in range(0, len(motion) - 29, 30)]
    assert min(per_second) > 1.5, per_second
    # not one picture wobbling: the first and the last second look different
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 10


FLASH = """# a user's patch that letterboxes (fit 0) and flashes on every other frame
def frame(p, s):
    flash = s.frame % 2 == 1
    return p.controls(z=p.seed(7), fit=0.0, feedback=0.3, brightness=0.7 if flash else 0.0,
                      contrast=0.6 if flash else 1.0)
"""


def test_a_flash_never_lights_the_letterbox_bars(tmp_path):
    patch = tmp_path / "flash.py"
    patch.write_text(FLASH)
    out = tmp_path / "flash.mp4"
    run_vj("run", patch, "--headless", "--frames", "12", "--record", out, "--size", "320x180",
           "--no-osc", "--no-midi", "--no-state", timeout=120)
    frames, _ = read_video(out)
    assert len(frames) == 12
    flashed = [f.astype(int) for f in frames[1::2]]
    plain = [f.astype(int) for f in frames[2::2]]
    # the square picture spans x = 70..250 of the 320x180 canvas: the flash lit the picture ...
    assert min(f[:, 90:230].mean() for f in flashed) > max(f[:, 90:230].mean() for f in plain) + 60
    # ... and the pillarbox columns stayed black through it
    for f in flashed:
        assert f[:, :64].max() <= NEAR_BLACK and f[:, 256:].max() <= NEAR_BLACK, f[:, :64].max()


@pytest.mark.parametrize("post", [
    {"brightness": 0.6}, {"invert": 1.0}, {"contrast": 0.2}, {"brightness": 0.6, "kaleido": 6},
    {"brightness": 0.6, "feedback": 0.8, "feedback_zoom": 0.97}, {"brightness": 0.6, "fit": 1.0, "zoom": 0.6}])
def test_the_colour_grade_leaves_any_border_black(post):
    """At the shader chain: whatever folds or trails the picture, what is border stays black."""
    from engine.render.gl import headless_context
    from engine.render.post import ShaderChain
    ctx = headless_context()
    chain = ShaderChain(ctx, (160, 90), watch=False)
    try:
        img = np.full((32, 32, 3), 140, np.uint8)
        for _ in range(8):
            chain.upload(img)
            chain.render(post)
        out = chain.read().astype(int)
    finally:
        chain.release()
        ctx.release()
    assert out[:, :4].max() == 0 and out[:, -4:].max() == 0     # the bars (or zoomed-out margins)
    assert out[40:50, 75:85].mean() > 20                          # the picture is there, graded
