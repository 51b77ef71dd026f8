"""The audio input gain a performer controls: modes auto / slow / locked / manual, a gain in
dB, onsets kept on their own automatic gain, and the /vj/audio/gain* commands over real OSC
packets and real MIDI bytes."""
from __future__ import annotations

import math
import socket
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
from pythonosc import udp_client

from audio_synth import SR, bandpassed_noise, click_track, f_measure, run_blocks
from conftest import ROOT, poll, stop, vj_cmd, write_wav
from engine.control import namespace
from engine.control.dispatch import Dispatcher
from engine.signals import features
from engine.signals.audio import GainStage
from engine.signals.bus import SignalBus
from engine.signals.features import GAIN_MODES, BlockAnalyzer

BLOCK = 512


def noise(seconds, amp, seed=0):
    return (amp * bandpassed_noise(100, 8000, int(seconds * SR), seed=seed)).astype(np.float32)


def rms_of(values, last=40):
    return float(np.mean([v["audio.rms"] for v in values[-last:]]))


@pytest.mark.parametrize("mode, quiet_reads", [("auto", "full"), ("slow", "quiet"), ("locked", "quiet")])
def test_quiet_after_loud(mode, quiet_reads):
    """20 s at -12 dB after 3 s loud: auto lifts it to full scale (10 s release); slow (60 s)
    and locked keep it quiet."""
    an = BlockAnalyzer(SR, BLOCK)
    loud, _ = run_blocks(noise(3.0, 0.4), an)
    assert rms_of(loud) > 0.9
    an.set_gain(mode)
    quiet, _ = run_blocks(noise(20.0, 0.1, seed=1), an)
    level = rms_of(quiet)
    if quiet_reads == "full":
        assert level > 0.9
    else:
        assert level < 0.45
    if mode == "locked":
        assert level == pytest.approx(0.25, rel=0.15)


def test_manual_plus_6_db_doubles_the_readings_and_minus_6_halves():
    y = noise(3.0, 0.05)
    readings = {}
    for db in (0.0, 6.0, -6.0):
        an = BlockAnalyzer(SR, BLOCK)
        an.set_gain("manual", db)
        values, _ = run_blocks(y, an)
        readings[db] = {k: float(np.mean([v[k] for v in values[-40:]])) for k in ("audio.rms", "audio.mid")}
        assert values[-1]["audio.rms_db"] == pytest.approx(20 * math.log10(0.05) + db, abs=1.0)
    for k in ("audio.rms", "audio.mid"):
        assert 0.02 < readings[0.0][k] < 0.45, k
        assert readings[6.0][k] == pytest.approx(2 * readings[0.0][k], rel=0.01), k
        assert readings[-6.0][k] == pytest.approx(0.5 * readings[0.0][k], rel=0.01), k


@pytest.mark.parametrize("mode", GAIN_MODES)
@pytest.mark.parametrize("db", [-24.0, 0.0, 24.0])
def test_silence_stays_zero_and_values_stay_in_range(mode, db):
    an = BlockAnalyzer(SR, BLOCK)
    run_blocks(noise(1.0, 0.9), an)           # loud first: the peaks are high
    an.set_gain(mode, db)
    values, events = run_blocks(np.zeros(SR, np.float32), an)
    for k in ("audio.rms", "audio.low", "audio.mid", "audio.high", "audio.flux", "audio.harmonic",
              "audio.percussive"):
        assert values[-1][k] == 0.0, k
    assert not np.any(events.get("audio.onset", np.zeros(0)) > 0.1)   # the noise's end may be one
    # and loud again, switching modes on every block: finite, 0..1
    y = noise(2.0, 0.9, seed=2)
    for i, start in enumerate(range(0, len(y) - BLOCK, BLOCK)):
        an.set_gain(GAIN_MODES[i % 4], (-24.0, 24.0)[i % 2])
        v, _ = an.process(y[start:start + BLOCK])
        for k, x in v.items():
            if isinstance(x, float) and k not in features.UNNORMALISED:
                assert math.isfinite(x) and 0.0 <= x <= 1.0, (k, x)


@pytest.mark.parametrize("mode", ["manual", "locked", "slow"])
def test_onsets_still_found_at_minus_24_db(mode):
    y, clicks = click_track(120, seconds=8.0)
    an = BlockAnalyzer(SR, BLOCK)
    an.set_gain(mode, -24.0)
    _, events = run_blocks(y, an)
    f, _, _ = f_measure(events.get("audio.onset", np.zeros(0)), clicks, 0.030)
    assert f >= 0.95


def test_a_gain_change_is_not_an_onset():
    """A steady tone, the gain stepping from -24 to +24 dB and back: no onset."""
    t = np.arange(4 * SR) / SR
    y = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    an = BlockAnalyzer(SR, BLOCK)
    an.set_gain("manual", -24.0)
    onsets = 0
    for i, start in enumerate(range(0, len(y) - BLOCK, BLOCK)):
        if i in (100, 200, 300):
            an.set_gain(db=(24.0, -24.0, 24.0)[(i // 100) - 1])
        _, ev = an.process(y[start:start + BLOCK])
        onsets += "audio.onset" in ev and i > 10
    assert onsets == 0


def test_set_gain_refuses_bad_values_and_clamps():
    an = BlockAnalyzer(SR, BLOCK)
    with pytest.raises(ValueError, match="auto, slow, locked, manual"):
        an.set_gain("loud")
    with pytest.raises(ValueError):
        an.set_gain(db=float("nan"))
    an.set_gain("manual", 99.0)
    an.process(np.zeros(BLOCK, np.float32))
    assert an.gain_mode == "manual" and an.gain_db == 24.0
    assert namespace.GAIN_MODES == features.GAIN_MODES


class FakeSource:
    def __init__(self):
        self.calls = []

    def set_gain(self, mode=None, db=None):
        self.calls.append((mode, db))


def stage_frame(bus):
    return SimpleNamespace(snap=bus.snapshot(), status={})


def test_commands_through_the_dispatcher_reach_the_sources():
    bus, src = SignalBus(), FakeSource()
    stage, d = GainStage([src]), Dispatcher(bus)
    assert d.dispatch("/vj/audio/gain", (40.0,))            # clamped at the edge
    assert d.dispatch("/vj/audio/gain/mode", ("manual",))
    assert not d.dispatch("/vj/audio/gain/mode", ("loud",))
    assert "auto, slow, locked, manual" in d.last_problem
    f = stage_frame(bus)
    stage.run(f)
    assert ("manual", None) in src.calls and (None, 24.0) in src.calls
    assert f.status["audio_gain_mode"] == "manual" and f.status["audio_gain_db"] == 24.0
    assert stage.hud_line() == "audio silent  gain manual +24 dB"
    assert d.dispatch("/vj/audio/gain/lock", ())             # toggle: locked
    stage.run(stage_frame(bus))
    assert stage.mode == "locked" and src.calls[-1] == ("locked", None)
    assert d.dispatch("/vj/audio/gain/lock", (False,))       # unlock: back to manual
    stage.run(stage_frame(bus))
    assert stage.mode == "manual"
    assert "/vj/audio/gain" in namespace.learn_targets({}) and "/vj/audio/gain/lock" in namespace.learn_targets({})


# --------------------------------------------------------------------------- a running engine

@pytest.fixture
def engine_with_audio(tmp_path, env_no_display):
    y, _ = click_track(120, seconds=6.0, noise_db=-30)
    wav = write_wav(tmp_path / "song.wav", y)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        osc = s.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        oq = s.getsockname()[1]
    proc = subprocess.Popen(
        vj_cmd("run", "patches/pulse.py", "--headless", "--size", "64x64", "--fps", "30", "--audio", wav,
               "--loop", "--mute", "--osc-port", osc, "--oscquery-port", oq, "--no-midi"),
        cwd=ROOT, env=env_no_display, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield SimpleNamespace(proc=proc, osc=osc, oq=oq)
    finally:
        stop(proc)


def value(port, path):
    import json
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.loads(r.read())["VALUE"][0]


def test_osc_sets_the_gain_and_a_bad_mode_is_named_while_frames_go_on(engine_with_audio):
    e = engine_with_audio
    assert poll(lambda: value(e.oq, "/vj/audio/rms_db") > -100, 90, proc=e.proc), "no audio in the engine"
    c = udp_client.SimpleUDPClient("127.0.0.1", e.osc)
    c.send_message("/vj/audio/gain/mode", "locked")
    c.send_message("/vj/audio/gain", 6.0)
    assert poll(lambda: value(e.oq, "/vj/audio/gain/lock") == 1, 20, proc=e.proc)
    assert poll(lambda: value(e.oq, "/vj/audio/gain_db") == pytest.approx(6.0), 20, proc=e.proc)
    frame = value(e.oq, "/vj/frame")
    c.send_message("/vj/audio/gain/mode", "loud")
    c.send_message("/vj/audio/gain/lock", 0)
    assert poll(lambda: value(e.oq, "/vj/audio/gain/lock") == 0, 20, proc=e.proc)
    assert poll(lambda: value(e.oq, "/vj/frame") > frame + 30, 20, proc=e.proc)
    assert e.proc.poll() is None
    e.proc.terminate()
    _, err = e.proc.communicate(timeout=30)
    assert "/vj/audio/gain/mode: 'loud' is not one of auto, slow, locked, manual" in err
    assert "audio gain: locked" in err


def test_a_midi_fader_bound_to_the_gain_sets_the_db(tmp_path):
    """A mappings file binds CC 7 to /vj/audio/gain: real MIDI bytes set the input gain in dB."""
    from engine.render.gl import headless_context
    from engine.session import AudioOptions, ControlOptions, Options, Session
    from engine.signals.midi import MidiDecoder
    y, _ = click_track(120, seconds=2.0)
    wav = write_wav(tmp_path / "song.wav", y)
    (tmp_path / "p.py").write_text("def frame(p, s):\n    return p.controls(z=p.seed(1))\n")
    (tmp_path / "p.mappings.toml").write_text('[[binding]]\nsource = "midi.ch1.cc.7"\nparam = "/vj/audio/gain"\n')
    ctx = headless_context()
    try:
        with Session(Options(patch=tmp_path / "p.py", size=(32, 32), live=False, ctx=ctx,
                             audio=AudioOptions(file=str(wav), play=False, loop=True),
                             control=ControlOptions(osc_port=None, oscquery_port=None, midi=None))) as s:
            midi = MidiDecoder(s.bus, "test")
            s.engine.render_frame()
            midi.feed_bytes(bytes([0xB0, 7, 127]))      # all the way up: +24 dB
            for _ in range(3):
                s.engine.render_frame()
            assert s.audio_gain.db == pytest.approx(24.0)
            midi.feed_bytes(bytes([0xB0, 7, 0]))        # all the way down: -24 dB
            for _ in range(3):
                s.engine.render_frame()
            assert s.audio_gain.db == pytest.approx(-24.0)
            src = s.audio_sources[0]
            assert poll(lambda: src.analyzer.gain_db == pytest.approx(-24.0), 5)
            assert s.dispatcher.problems() == 0
    finally:
        ctx.release()
