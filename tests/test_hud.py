"""The performer's HUD: tempo, its source, the beat in the bar with a flashing dot, and which
inputs are live; on in a window, off fullscreen until H. The text is checked through
``hud_lines``; the window under Xvfb (real keys, real screenshots), skipped without it."""
import socket
import subprocess
import time

import numpy as np
import pytest

from conftest import ROOT, free_port, stop, vj_cmd
from engine.render.display import HudShown
from engine.render.hud import (Beat, HudText, StatusBoard, audio_bar, beat_dots, dots_lead, flash, hud_lines,
                               tempo_line)
from engine.render.loop import FrameStats
from x_display import find_window, key, needs_x, screenshot


def lines_for(beat, inputs=None):
    return hud_lines(FrameStats(), "drift", None, "digiface64", (320, 180), 30, beat=beat, inputs=inputs)


def test_tempo_beat_bar_and_inputs_lead_the_hud():
    lines = lines_for(Beat(bpm=128, beat=5.25, beats_per_bar=4, source="tap"),
                      [("OSC", "live"), ("MIDI", "no device"), ("audio", "off"), ("hands", "off"), ("Link", "2 peers")])
    assert lines[0] == "128.0 bpm tap  2/4"
    assert lines[1] == "OSC live  MIDI no device  audio off  hands off  Link 2 peers"
    assert lines[2].startswith("  0.0 fps (target 30)") and lines[3].startswith("patch drift")
    assert lines_for(Beat(bpm=90, beat=8.0, beats_per_bar=3, source="MIDI clock", running=False))[0] \
        == " 90.0 bpm MIDI clock  3/3  stopped"
    assert lines_for(None)[0].startswith("  0.0 fps")   # no clock given: the HUD as before


def test_the_bar_from_the_audio_tracker():
    # bar_phase = (beat in bar + beat phase) / meter: 3/4 and 4/4 are told apart by it
    assert audio_bar((1 + 0.5) / 4, 0.5) == (2, 4)
    assert audio_bar((2 + 0.3) / 3, 0.3) == (3, 3)
    assert audio_bar((3 + 0.96) / 4, 0.96) == (4, 4)
    assert audio_bar(0.0, 0.0) == (1, 4)
    # while the audio owns the tempo its bar is shown, not the clock's count
    beat = Beat(bpm=100, beat=17.2, source="audio", audio_bar=(1 + 0.2) / 3, audio_phase=0.2)
    assert tempo_line(beat) == "100.0 bpm audio  2/3"


def test_beat_dots_flash_on_the_beat():
    on = beat_dots(Beat(beat=4.0), 20)            # the one, just struck
    late = beat_dots(Beat(beat=4.7), 20)          # the same beat, later
    assert len(on) == 4 and [d[0] for d in on] == [6, 22, 38, 54]
    assert on[0][3] == pytest.approx((1.0, 0.6, 0.15))                      # the one: orange, full
    assert max(late[0][3]) < 0.4 * max(on[0][3])                            # faded by the end of it
    assert on[1][3] == on[2][3] == on[3][3] == (0.2, 0.2, 0.2)              # the others unlit
    second = beat_dots(Beat(beat=5.05), 20)
    assert second[1][3][0] == second[1][3][1] > 0.8 and second[0][3] == (0.2, 0.2, 0.2)
    assert flash(0.0, running=False) == flash(0.9, running=False)           # stopped: no flashing
    assert len(beat_dots(Beat(beats_per_bar=12), 20)) == 1                 # a long bar: one dot
    assert dots_lead(Beat()) == 4 * 16 + 6


def test_text_leaves_room_for_the_dots_and_renders_only_changes():
    hud = HudText()
    img = hud.render(["120.0 bpm set  1/4", "x"], lead=70)
    assert img[4:20, :70, :3].max() == 0            # the dots' room is the plain panel
    assert img[4:20, 70:].max() > 200               # the text starts after it
    assert hud.render(["120.0 bpm set  1/4", "x"], lead=70) is None
    assert hud.render(["120.0 bpm set  1/4", "x"], lead=6) is not None


def test_hud_on_in_a_window_off_fullscreen_and_h_toggles_each():
    hud = HudShown()
    assert hud.shown
    hud.fullscreen = True                            # F: the projector shows no stats ...
    assert not hud.shown
    hud.toggle()                                     # ... until H asks for them there
    assert hud.shown
    hud.fullscreen = False
    hud.toggle()                                     # H in the window hides it in the window only
    assert not hud.shown
    hud.fullscreen = True
    assert hud.shown


def test_inputs_live_idle_and_off_from_real_parts():
    from engine.signals.audio import GainStage
    from engine.signals.bus import SignalBus
    from engine.signals.osc import OscIn
    osc = OscIn(SignalBus(), 0).start()
    try:
        board = StatusBoard(FrameStats(), None, "m", (32, 32), 30, osc_in=osc, audio=GainStage())
        board.LIVE_S = 0.3
        assert dict(board.inputs()) == {"OSC": "idle", "MIDI": "off", "audio": "off", "hands": "off",
                                        "Link": "off"}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"/vj/x\x00\x00\x00,f\x00\x00\x3f\x80\x00\x00", ("127.0.0.1", osc.port))
        deadline = time.monotonic() + 5
        while osc.stats["messages"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert dict(board.inputs())["OSC"] == "live"
        assert dict(board.inputs(Beat(link_peers=1)))["Link"] == "1 peer"
        time.sleep(0.35)
        assert dict(board.inputs())["OSC"] == "idle"
    finally:
        osc.stop()



def test_osc_over_the_websocket_alone_is_an_input():
    """With the OSC port taken, OSC arrives only over OSCQuery's WebSocket: the HUD says so."""
    from websockets.sync.client import connect
    from engine.control.oscquery import OscQueryServer, osc_message
    srv = OscQueryServer(list, lambda packet, peer: None, 0, "127.0.0.1", osc_port=None).start()
    try:
        board = StatusBoard(FrameStats(), None, "m", (32, 32), 30, osc_in=None, oscquery=srv)
        assert dict(board.inputs())["OSC"] == "idle"
        with connect(f"ws://127.0.0.1:{srv.port}/") as ws:
            ws.send(osc_message("/vj/x", "f", [1.0]))
            deadline = time.monotonic() + 5
            while srv.stats["ws_messages"] == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert dict(board.inputs())["OSC"] == "live"
    finally:
        srv.stop()


# --- the window, under Xvfb

def light(img) -> np.ndarray:
    """HUD text pixels: the text is drawn opaque at 235; the picture under the panel is darkened
    to 41 %, so nothing of it reaches 200."""
    return img.min(axis=2) > 200


def unlit_dots(shot) -> int:
    """How many of the four beat squares show the unlit grey, solid."""
    row = shot[9:19, 6:64].astype(int)
    return sum(bool((row[:, i * 16:i * 16 + 10] == 51).all()) for i in range(4))


def wait_frames(env, box, timeout=60.0) -> np.ndarray:
    """Screenshots until the picture (a face, not black) shows in ``box`` (rows, cols)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shot = screenshot(env).astype(int)
        if shot[box].std() > 10:
            return shot
        time.sleep(0.3)
    raise AssertionError("no frames on screen")


def start(env, *args):
    return subprocess.Popen(vj_cmd("run", "--size", "320x180", "--no-state", "--no-midi", *args), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@needs_x
def test_window_shows_tempo_and_a_flashing_beat(display):
    port = free_port(socket.SOCK_DGRAM)
    p = start(display, "--osc-port", port, "--oscquery-port", "0")
    try:
        win = find_window(display)
        wait_frames(display, np.s_[130:, 100:220])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:   # /vj/tempo 133 over real OSC
            s.sendto(b"/vj/tempo\x00\x00\x00,f\x00\x00" + np.float32(133).byteswap().tobytes(), ("127.0.0.1", port))
        # what the first line should say, drawn with the HUD's own text: the tempo and its source
        text = lines_for(Beat(bpm=133, source="OSC"))[0].split("  ")[0]
        assert text == "133.0 bpm OSC"
        hud = HudText()
        lead = dots_lead(Beat())
        want = light(hud.render([text], lead=lead)[:hud.line_h + 4, :, :3])
        cols = slice(lead, want.shape[1])

        def text_match() -> float:
            got = light(screenshot(display)[:want.shape[0], :want.shape[1]])
            return (got & want)[:, cols].sum() / max(1, (got | want)[:, cols].sum())

        deadline = time.monotonic() + 20
        while (match := text_match()) < 0.8 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert match > 0.8, match
        # the dot flashes: over a few beats the lit square moves on and is brighter on the beat
        # than later in it (a busy machine draws few frames: any two brightnesses tell)
        dots, end = [], time.monotonic() + 2.5
        while time.monotonic() < end:
            row = screenshot(display)[9:19, 6:64].astype(int)
            dots.append([row[:, i * 16:i * 16 + 10].max() for i in range(4)])
            time.sleep(0.03)
        dots = np.array(dots)
        lit = dots.max(axis=1)
        assert lit.min() > 60 and lit.max() - lit.min() > 50, dots        # one lit, at changing brightness
        assert len(set(dots.argmax(axis=1))) >= 2, dots                   # it moved on to the next beat
        assert unlit_dots(screenshot(display)) == 3
        key(display, win, "h")                                    # HUD off in the window
        time.sleep(0.5)
        assert text_match() < 0.3 and unlit_dots(screenshot(display)) == 0
    finally:
        stop(p)
    assert p.returncode in (0, -15), p.stderr.read() if p.stderr else ""


@needs_x
def test_fullscreen_shows_no_hud_until_h(display):
    p = start(display, "--fullscreen", "--osc-port", "0", "--oscquery-port", "0")
    try:
        win = find_window(display)
        wait_frames(display, np.s_[300:460, 400:600])
        time.sleep(1.0)                         # time for the HUD text to have been drawn, were it on
        corner = screenshot(display)[:90, :300].astype(int)      # the black bar above a 16:9 canvas
        assert corner.max() < 10
        key(display, win, "h")
        deadline = time.monotonic() + 10
        while light(corner).sum() < 100 and time.monotonic() < deadline:
            time.sleep(0.1)
            corner = screenshot(display)[:90, :300]
        assert light(corner).sum() >= 100       # the performer asked: the HUD is up, on the projector
    finally:
        stop(p)
