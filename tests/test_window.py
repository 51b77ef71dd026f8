"""The projector window, on a virtual X display (Xvfb) with real key presses (xdotool).
Skipped where Xvfb or xdotool are missing; .ci/run installs both."""
import subprocess
import time

from conftest import ROOT, read_video, vj_cmd
from x_display import find_window, geometry, key, needs_x, screenshot

pytestmark = needs_x


def text_edges(region) -> int:
    """Light pixels (> 200) right beside dark ones (< 120): the edges of text on the HUD panel."""
    m = region.min(axis=2)
    light, dark = m > 200, m < 120
    return int((light[:, :-1] & dark[:, 1:]).sum() + (dark[:, :-1] & light[:, 1:]).sum())


def test_window_draws_hud_fullscreen_and_escape(tmp_path, display):
    out = tmp_path / "w.mp4"
    p = subprocess.Popen(vj_cmd("run", "sets/demo.toml", "--size", "320x180", "--record", out, "--no-state"),
                         cwd=ROOT, env=display,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        win = find_window(display)
        # wait for the first frames (model load and shader compile take a while on busy cores)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shot = screenshot(display)[:180, :320].astype(int)
            if shot[60:, 100:220].std() > 10 and (shot[:24, :300].min(axis=2) > 200).sum() > 30:
                break
            time.sleep(0.3)
        # the picture is on screen (a face, not black) and the HUD text is drawn at the top left
        assert shot[60:, 100:220].std() > 10
        hud = shot[:24, :300]
        assert (hud.min(axis=2) > 200).sum() > 30 and text_edges(hud) > 30  # light text on the dark panel
        key(display, win, "h")  # HUD off
        time.sleep(1.0)
        # the text's strokes are gone: a light pixel right beside a dark one is a glyph's edge on
        # the panel; the picture (a soft upscale, however bright) has next to none
        assert text_edges(screenshot(display)[:24, :300]) < text_edges(hud) / 3
        key(display, win, "f")  # fullscreen on the (only) monitor
        deadline = time.monotonic() + 20
        while geometry(display, win) != (1024, 768) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert geometry(display, win) == (1024, 768)
        time.sleep(1.0)
        full = screenshot(display).astype(int)
        # aspect kept: 16:9 canvas in a 4:3 screen leaves black bars top and bottom
        assert full[:40].max() < 10 and full[-40:].max() < 10 and full[300:460].std() > 10
        key(display, win, "Right")  # next scene of the set
        time.sleep(1.0)
        key(display, win, "Escape")
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert "recording closed" in err
    assert "scene 2/3: pulse" in err
    frames, _ = read_video(out)
    assert len(frames) > 60
