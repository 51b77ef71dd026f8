"""Frame sources (the generator -> OpenGL hand-off) and the read-back, on a real OpenGL context."""
import logging

import numpy as np
import pytest
import torch

from engine.render.frame_source import PboSource, open_frame_source
from engine.render.gl import headless_context
from engine.render.readback import PixelReadback


@pytest.fixture(scope="module")
def ctx():
    c = headless_context()
    yield c
    c.release()


def test_pbo_upload_keeps_every_pixel(ctx):
    src = PboSource(ctx)
    rng = np.random.default_rng(0)
    for shape in ((37, 53, 3), (37, 53, 3), (16, 16, 4), (64, 48, 3)):
        img = rng.integers(0, 255, shape, dtype=np.uint8)
        tex = src.upload(img)
        assert tex.size == (shape[1], shape[0]) and tex.components == shape[2]
        back = np.frombuffer(tex.read(alignment=1), np.uint8).reshape(shape)
        assert np.array_equal(back, img)
    same = src.upload(torch.from_numpy(img))  # a CPU tensor, as the generator hands it over
    assert same is tex
    src.release()


def test_pbo_upload_refuses_what_is_not_a_frame(ctx):
    src = PboSource(ctx)
    for bad in (np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8), np.zeros((8, 8, 2), np.uint8)):
        with pytest.raises(ValueError, match="uint8"):
            src.upload(bad)
    src.release()


def test_a_cpu_generator_gets_the_pixel_buffer_path(ctx, caplog):
    for path in ("auto", "pbo"):
        src, note = open_frame_source(ctx, torch.device("cpu"), path)
        assert src.name == "pbo" and note is None
        src.release()
    with caplog.at_level(logging.WARNING, logger="vj"):
        src, _ = open_frame_source(ctx, torch.device("cpu"), "cuda-gl")
    assert src.name == "pbo" and "needs a CUDA generator" in caplog.text
    src.release()
    with pytest.raises(ValueError, match="display path"):
        open_frame_source(ctx, torch.device("cpu"), "sli")


def test_readback_hands_back_each_frame_a_frame_late(ctx):
    size = (40, 30)
    rb = PixelReadback(ctx, size)
    textures = []
    for k in range(3):
        rgba = np.zeros((30, 40, 4), np.uint8)
        rgba[..., 0] = 10 * (k + 1)
        rgba[0, :, 1] = 255  # OpenGL's row 0: the bottom row of the picture
        textures.append(ctx.texture(size, 4, rgba.tobytes()))
    assert rb.push(textures[0], "a") is None
    got = [rb.push(textures[1], "b"), rb.push(textures[2], "c"), rb.drain()]
    assert [tag for _, tag in got] == ["a", "b", "c"]
    for k, (rgb, _) in enumerate(got):
        assert rgb.shape == (30, 40, 3)
        assert (rgb[..., 0] == 10 * (k + 1)).all()
        assert (rgb[-1, :, 1] == 255).all() and (rgb[:-1, :, 1] == 0).all()  # upright
    assert rb.drain() is None
    rb.release()
    for t in textures:
        t.release()
