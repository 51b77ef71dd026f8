"""Shaders hot-reload like patches: on a real OpenGL context (EGL, Mesa llvmpipe in CI),
edits to a copy of shaders/ show up in the pixels; a broken save keeps the last good look."""
import logging
import os
import shutil
import time

import numpy as np
import pytest

from engine import paths
from engine.render.gl import headless_context
from engine.render.post import WATCH_INTERVAL, ShaderChain
from conftest import save_patch, wait_for

GREY = (100, 150, 200)
GRADE = {"brightness": 0.1}  # not neutral, so the colour pass runs


@pytest.fixture(scope="module")
def ctx():
    c = headless_context()
    yield c
    c.release()


@pytest.fixture
def shaders(tmp_path):
    d = tmp_path / "shaders"
    shutil.copytree(paths.SHADERS, d)
    return d


@pytest.fixture
def chain(ctx, shaders):
    errors = []
    ch = ShaderChain(ctx, (32, 32), shaders, report=errors.append)
    ch.errors = errors
    ch.upload(np.broadcast_to(np.array(GREY, np.uint8), (16, 16, 3)).copy())
    yield ch
    ch.release()


def save(path, text):
    """A whole new file renamed over the old, with a later mtime even on a coarse clock."""
    old = paths.file_stamp(path)
    save_patch(path, text)
    if old is not None:
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, max(st.st_mtime_ns, old[0] + 1_000_000)))


def pixel(ch, post=GRADE):
    ch.render(post)
    return ch.read()[16, 16].astype(int)


def frames_for(ch, seconds, post=GRADE):
    """Every frame's centre pixel, rendering for ``seconds`` of wall time."""
    end, out = time.monotonic() + seconds, []
    while time.monotonic() < end:
        out.append(pixel(ch, post))
        time.sleep(0.01)
    return out


def frames_until(ch, cond, post=GRADE, timeout=3.0):
    return wait_for(lambda: cond(pixel(ch, post)), timeout=timeout, step=0.02)


RED = """#version 330
uniform sampler2D u_src;
in vec2 v_uv;
out vec4 f_color;
void main() { f_color = vec4(1.0, 0.0, 0.0, 1.0); }
"""
BROKEN = RED.replace("1.0, 0.0, 0.0, 1.0", "1.0, 0.0, 0.0, 1.0 +")
GREEN = RED.replace("1.0, 0.0, 0.0, 1.0", "0.0, 1.0, 0.0, 1.0")


def is_red(p):
    return p[0] > 250 and p[1] < 5 and p[2] < 5


def is_green(p):
    return p[1] > 250 and p[0] < 5 and p[2] < 5


def test_edit_shows_up_and_a_broken_save_keeps_the_last_good_look(chain, shaders, caplog):
    caplog.set_level(logging.INFO, logger="vj")
    graded = pixel(chain)
    assert not is_red(graded)
    save(shaders / "colour.frag", RED)  # declares none of the grade's uniforms: no harm
    assert frames_until(chain, is_red)
    assert "shader colour.frag reloaded" in caplog.text
    assert chain.errors == []

    save(shaders / "colour.frag", BROKEN)
    assert all(is_red(p) for p in frames_for(chain, 3 * WATCH_INTERVAL))  # frames keep coming
    assert len(chain.errors) == 1
    assert "shaders/colour.frag" in chain.errors[0] and "error" in chain.errors[0]

    save(shaders / "colour.frag", GREEN)
    assert frames_until(chain, is_green)
    assert len(chain.errors) == 1
    save(shaders / "colour.frag", BROKEN)  # the same mistake after a good save is reported again
    assert wait_for(lambda: pixel(chain) is not None and len(chain.errors) == 2, timeout=3.0)
    assert is_green(pixel(chain))


def test_deleted_unreadable_or_huge_shader_keeps_the_last_good_one(chain, shaders):
    save(shaders / "colour.frag", RED)
    assert frames_until(chain, is_red)
    (shaders / "colour.frag").unlink()
    assert wait_for(lambda: is_red(pixel(chain)) and len(chain.errors) == 1, timeout=3.0)
    assert "shaders/colour.frag is missing" in chain.errors[0]

    (shaders / "colour.frag").write_bytes(b"#version 330\n// \xff\xfe\n")
    assert wait_for(lambda: is_red(pixel(chain)) and len(chain.errors) == 2, timeout=3.0)
    assert "not UTF-8" in chain.errors[1]

    save(shaders / "colour.frag", RED + "//" + "x" * (300 * 1024) + "\n")
    assert wait_for(lambda: is_red(pixel(chain)) and len(chain.errors) == 3, timeout=3.0)
    assert "limit" in chain.errors[2]

    save(shaders / "colour.frag", GREEN)
    assert frames_until(chain, is_green)


def test_vertex_shader_change_rebuilds_the_programs_using_it(chain, shaders):
    img = np.zeros((16, 16, 3), np.uint8)
    img[:8] = (255, 0, 0)  # top half red, bottom half blue
    img[8:] = (0, 0, 255)

    def top():
        chain.upload(img)
        chain.render({})
        return chain.read()[6, 16].astype(int)

    assert is_red(top())
    vert = (shaders / "blit.vert").read_text()
    upside_down = vert.replace("v_uv = vec2(corner.x, 1.0 - corner.y);", "v_uv = corner;")
    assert upside_down != vert
    save(shaders / "blit.vert", upside_down)
    assert wait_for(lambda: top()[2] > 250, timeout=3.0, step=0.02)
    save(shaders / "blit.vert", vert + "\nbroken")
    assert wait_for(lambda: top()[2] > 250 and len(chain.errors) == 1, timeout=3.0, step=0.02)
    assert "shaders/blit.vert" in chain.errors[0]
    save(shaders / "blit.vert", vert)
    assert wait_for(lambda: is_red(top()), timeout=3.0, step=0.02)

    chain.upload(np.broadcast_to(np.array(GREY, np.uint8), (16, 16, 3)).copy())
    full = (shaders / "fullscreen.vert").read_text()
    save(shaders / "fullscreen.vert", full + "\nbroken")
    # four programs share it: one report, and the grade keeps working
    assert wait_for(lambda: pixel(chain) is not None and len(chain.errors) == 2, timeout=3.0)
    frames_for(chain, 2 * WATCH_INTERVAL)
    assert len(chain.errors) == 2 and "shaders/fullscreen.vert" in chain.errors[1]
    assert pixel(chain).min() > GREY[0]


def test_watch_off_ignores_edits(ctx, shaders):
    ch = ShaderChain(ctx, (32, 32), shaders, watch=False)
    ch.upload(np.broadcast_to(np.array(GREY, np.uint8), (16, 16, 3)).copy())
    before = pixel(ch)
    save(shaders / "colour.frag", RED)
    assert not frames_until(ch, is_red, timeout=3 * WATCH_INTERVAL)
    assert np.array_equal(pixel(ch), before)
    assert ch.reload_changed() == ["colour.frag"]  # still available by hand
    assert is_red(pixel(ch))
    ch.release()


def test_broken_shader_without_report_logs_once_on_vj(ctx, shaders, caplog):
    caplog.set_level(logging.INFO, logger="vj")
    ch = ShaderChain(ctx, (32, 32), shaders)
    ch.upload(np.broadcast_to(np.array(GREY, np.uint8), (16, 16, 3)).copy())
    save(shaders / "colour.frag", BROKEN)
    assert ch.reload_changed() == []
    assert ch.reload_changed() == []  # nothing new on disk: nothing reported again
    errs = [r for r in caplog.records if r.name == "vj" and r.levelno == logging.ERROR]
    assert len(errs) == 1 and "shaders/colour.frag" in errs[0].getMessage()
    ch.release()
