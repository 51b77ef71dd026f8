"""The shader chain on a real OpenGL context (EGL, Mesa llvmpipe in CI): check pixels."""
import numpy as np
import pytest

from engine.render.gl import headless_context
from engine.render.post import ShaderChain


@pytest.fixture(scope="module")
def ctx():
    c = headless_context()
    yield c
    c.release()


def chain_out(ctx, img, size, *posts):
    ch = ShaderChain(ctx, size)
    out = None
    for post in posts:
        ch.upload(img)
        ch.render(post)
        out = ch.read().astype(int)
    ch.release()
    return out


def solid(rgb, size=(64, 64)):
    return np.broadcast_to(np.array(rgb, np.uint8), (size[1], size[0], 3)).copy()


def test_contain_letterboxes_and_cover_fills(ctx):
    img = solid((200, 100, 50))
    out = chain_out(ctx, img, (320, 180), {})
    # square image in a 16:9 canvas: black bars left and right, image in the middle
    assert out[90, 5].max() < 3 and out[90, 314].max() < 3
    assert np.abs(out[90, 160] - [200, 100, 50]).max() <= 2
    # the 180 px wide square spans x = 70..250
    assert out[90, 66].max() < 3 and out[90, 74].min() > 40 and out[90, 254].max() < 3
    cover = chain_out(ctx, img, (320, 180), {"fit": 1.0})
    assert np.abs(cover[90, 3] - [200, 100, 50]).max() <= 2


def test_image_is_upright(ctx):
    img = np.zeros((64, 64, 3), np.uint8)
    img[:32] = (255, 0, 0)  # top half red
    img[32:] = (0, 0, 255)  # bottom half blue
    out = chain_out(ctx, img, (128, 128), {})
    assert out[10, 64, 0] > 200 and out[10, 64, 2] < 30
    assert out[118, 64, 2] > 200 and out[118, 64, 0] < 30


def test_upscale_is_smooth(ctx):
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, 4:] = 255  # a hard vertical edge
    out = chain_out(ctx, img, (256, 256), {})
    row = out[128, :, 0]
    # the edge becomes a ramp several pixels wide, monotonic, with no overshoot ringing
    ramp = np.sum((row > 10) & (row < 245))
    assert ramp >= 8
    assert np.all(np.diff(row[64:192]) >= -1)


def test_colour_controls(ctx):
    img = solid((100, 150, 200))
    base = chain_out(ctx, img, (64, 64), {})[32, 32]
    brighter = chain_out(ctx, img, (64, 64), {"brightness": 0.2})[32, 32]
    assert np.all(brighter - base >= 45)
    grey = chain_out(ctx, img, (64, 64), {"saturation": 0.0})[32, 32]
    assert grey.max() - grey.min() <= 2
    inverted = chain_out(ctx, img, (64, 64), {"invert": 1.0})[32, 32]
    assert np.abs(inverted - (255 - base)).max() <= 2
    rotated = chain_out(ctx, img, (64, 64), {"hue": 0.5})[32, 32]
    assert rotated[0] > rotated[2]  # blue-ish turns orange-ish
    flat = chain_out(ctx, img, (64, 64), {"contrast": 0.0})[32, 32]
    assert np.abs(flat - 128).max() <= 2


def test_kaleidoscope_is_mirror_symmetric(ctx):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    out = chain_out(ctx, img, (201, 201), {"kaleido": 6})
    plain = chain_out(ctx, img, (201, 201), {})
    assert not np.array_equal(out, plain)
    # six segments, each mirrored: the picture is symmetric about the horizontal axis
    assert np.abs(out - out[::-1]).mean() < 6


def test_feedback_leaves_trails(ctx):
    white, black = solid((255, 255, 255)), solid((0, 0, 0))
    ch = ShaderChain(ctx, (64, 64))
    ch.upload(white)
    for _ in range(30):  # the history fills up with white
        ch.render({"feedback": 0.8})
    ch.upload(black)
    ch.render({"feedback": 0.8})
    trail = ch.read()[32, 32].astype(int)
    ch.render({"feedback": 0.0})
    gone = ch.read()[32, 32].astype(int)
    ch.release()
    assert 150 < trail.min() < 255  # 80% of the white frame remains
    assert gone.max() < 3


def test_unknown_setting_is_ignored_with_a_warning(ctx, caplog):
    out = chain_out(ctx, solid((10, 20, 30)), (32, 32), {"sparkle": 1.0})
    assert np.abs(out[16, 16] - [10, 20, 30]).max() <= 2
    assert "sparkle" in caplog.text


def test_feedback_trails_last_as_long_at_any_frame_rate(ctx):
    white, black = solid((255, 255, 255)), solid((0, 0, 0))
    left = {}
    for fps in (30, 60):
        ch = ShaderChain(ctx, (32, 32))
        ch.upload(white)
        for _ in range(60):
            ch.render({"feedback": 0.8}, dt=1 / fps)
        ch.upload(black)
        for _ in range(fps // 10):  # a tenth of a second of black frames
            ch.render({"feedback": 0.8}, dt=1 / fps)
        left[fps] = ch.read()[16, 16].astype(int).mean()
        ch.release()
    assert abs(left[30] - left[60]) <= 3
    assert 255 * 0.8 ** 3 - 5 < left[30] < 255 * 0.8 ** 3 + 5  # three 1/30 s steps of 0.8
