"""Playing sets/demo.toml: cues by OSC (real UDP) and MIDI (real bytes through mido) at known
frames, checked in the recorded video against renders of each scene on its own."""
import socket

import numpy as np

from conftest import ROOT, read_video, wait_for
from engine.latent.seeds import seed_z
from engine.session import ControlOptions, Options, Session
from engine.show.sets import SetList
from engine.show.transition import TransitionSpec
from engine.signals.midi import MidiDecoder

SIZE, FPS = (96, 64), 30
OSC_CUE, MIDI_CUE, FRAMES = 10, 52, 64
FADE = 30   # the demo's crossfade: 2 beats at 120 bpm, 30 fps


def osc(address: str) -> bytes:
    from pythonosc.osc_message_builder import OscMessageBuilder
    return OscMessageBuilder(address=address).build().dgram


def play(tmp_path, name: str, cues: bool, cuts_only: bool = False, start: int = 0):
    """The demo set rendered offline (the virtual clock), recorded; with ``cues``, /vj/cue/next
    over UDP before frame OSC_CUE and a MIDI program change 0 (scene 1) before MIDI_CUE."""
    sl = SetList(ROOT / "sets" / "demo.toml")
    sl.index = start
    if cuts_only:
        sl.transition = TransitionSpec()
        for sc in sl.scenes:
            sc.transition = None
    out = tmp_path / f"{name}.mp4"
    o = Options(setlist=sl, patch=sl.scene.patch, size=SIZE, fps=FPS, live=False, record=out,
                control=ControlOptions(osc_port=0, oscquery_port=None, midi=None, mappings=tmp_path / "m.toml"))
    with Session(o) as s:
        midi = MidiDecoder(s.bus, "test")
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for k in range(FRAMES):
            if cues and k == OSC_CUE:
                udp.sendto(osc("/vj/cue/next"), ("127.0.0.1", s.osc_in.port))
                assert wait_for(lambda: s.dispatcher.stats["accepted"] >= 1, 5.0)
            if cues and k == MIDI_CUE:
                midi.feed_bytes(bytes([0xC0, 0x00]))   # program change 0 on channel 1
            s.engine.render_frame()
        s.engine.flush()
        cued = list(s.scenes.cues)
        udp.close()
    frames, _ = read_video(out)
    assert len(frames) == FRAMES
    return np.array(frames, dtype=np.float64), cued


def test_demo_set_cues_land_on_their_frames_and_crossfades_last_their_length(tmp_path):
    shown, cued = play(tmp_path, "show", cues=True)
    assert cued == [(OSC_CUE, 1, "crossfade over 2 beats"), (MIDI_CUE, 0, "cut")]
    alone, _ = play(tmp_path, "first", cues=False)               # scene 1 the whole time
    cut, _ = play(tmp_path, "cuts", cues=True, cuts_only=True)    # the same cues, every one a cut

    def close(a, b):
        return float(np.abs(a - b).mean())

    # before the cue the two renders are the same frames, encoded alike (offline: a constant
    # quantiser); a blend of two encoded references differs from the encoded blend by up to
    # about two levels of encoder error
    noise = max(close(shown[k], alone[k]) for k in range(OSC_CUE))
    assert noise < 2.0
    tol = max(noise, 1.0) + 2.0
    # the crossfade: frame OSC_CUE + i shows (i + 1) / FADE of scene 2, through FADE frames
    for i in range(FADE):
        k = OSC_CUE + i
        a = (i + 1) / FADE
        assert close(shown[k], (1 - a) * alone[k] + a * cut[k]) < tol, k
    # then scene 2 alone, until the MIDI cut lands on its frame and scene 1 is back
    for k in range(OSC_CUE + FADE, MIDI_CUE):
        assert close(shown[k], cut[k]) < tol, k
    for k in range(MIDI_CUE, FRAMES):
        # scene 1 again (a picture of the beat alone); the encoder's error is larger just after a cut
        assert close(shown[k], cut[k]) < tol and close(shown[k], alone[k]) < 2 * tol, k
    assert close(shown[MIDI_CUE - 1], shown[MIDI_CUE]) > 3 * tol   # a cut, not a drift
    # the scenes really differ where the fade is measured
    assert close(alone[OSC_CUE + FADE // 2], cut[OSC_CUE + FADE // 2]) > 3 * tol


def test_a_set_whose_models_do_not_fit_is_refused_before_the_show(tmp_path):
    (tmp_path / "a.py").write_text("def frame(p, s):\n    return p.controls(z=p.seed(1))\n")
    f = tmp_path / "big.toml"
    f.write_text('memory_limit = 16\n[[scene]]\npatch = "a.py"\n[[scene]]\npatch = "a.py"\n'
                 'model = "digiface64"\n')
    from conftest import run_vj
    proc = run_vj("run", f, "--headless", "--frames", "5", "--no-osc", "--no-midi", check=False)
    assert proc.returncode != 0
    assert "need about" in proc.stderr and "MiB" in proc.stderr and "memory_limit" in proc.stderr, proc.stderr[-2000:]


ARITH = """def setup(p):
    p.keys = p.seeds([1, 2])

def frame(p, s):
    try:
        base = p.bookmark("other")
    except KeyError:          # not saved yet
        return p.controls(z=p.keys[0])
    # latent arithmetic on a bookmarked point, then a little truncation toward it
    ws = p.combine(base, plus=[p.ws(p.keys[1])], minus=[p.ws(p.keys[0])])
    return p.controls(ws=p.truncate(ws, 0.5, toward=base))
"""


def test_patches_compute_with_bookmarks_saved_live(tmp_path):
    (tmp_path / "arith.py").write_text(ARITH)
    o = Options(patch=tmp_path / "arith.py", size=(64, 48), fps=FPS, live=False, state=tmp_path / "state")
    with Session(o) as s:
        for k in range(8):
            if k == 2:
                assert s.dispatcher.dispatch("/vj/bookmark/save", ("other",), None, source="osc")
            f = s.engine.render_frame()
        space, z_dim = s.spaces[id(s.runner)], s.runner.info.z_dim
        a, b = space.ws(seed_z(1, z_dim)), space.ws(seed_z(2, z_dim))
        base = space.bookmark("other")
        assert np.array_equal(base, a)        # saved from the frame drawn from p.keys[0]
        expect = base + 0.5 * ((base + b - a) - base)
        assert np.allclose(f.controls.ws, expect, atol=1e-6) and s.patches.errors == 0
        assert s.bookmarks.saved == ["other"]
