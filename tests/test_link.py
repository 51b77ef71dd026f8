"""Ableton Link (``vj run --link``): two real engines on loopback share tempo and beat phase,
a tempo sent to one over OSC reaches the other through Link, and the clock sync's phase
alignment on a stand-in Link (no network). Without the binding, ``--link`` says so and the show
runs on.

How phase is measured: each engine started with ``vj -v`` logs, twice a second, its clock's beat
at the frame's monotonic time (``link: beat B at T s monotonic``). The test process joins the
session as a third peer (engine/control/link.py ``LinkPeer``, its own monotonic -> Link clock
offset) and reads the session's beat at that same time T: the engine's beat phase (within the
bar, quantum 4) minus the session's is the engine's phase error.
"""
from __future__ import annotations

import re
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest

from conftest import ROOT, free_port, poll, vj_cmd
from engine.control.clock_sync import LINK_BIG, ClockSync, align, phase_error
from engine.signals.bus import Event
from engine.signals.clock import LiveClock

LINE = re.compile(r"link: beat ([-\d.]+) at ([\d.]+) s monotonic, ([\d.]+) bpm, (\d+) peers")
QUANTUM = 4.0


def _binding():
    try:
        import link  # noqa: F401  LinkPython-extern
        return True
    except ImportError:
        return False


needs_link = pytest.mark.skipif(not _binding(), reason="the Link binding is not installed "
                                "(pip install 'vj-engine[link]', LinkPython-extern)")


class Engine:
    """A ``vj -v run --headless --link`` whose log lines are read as they come."""

    def __init__(self, env, bpm: float, osc_port: int | None = None):
        osc = ["--osc-port", str(osc_port)] if osc_port else ["--no-osc"]
        self.proc = subprocess.Popen(
            vj_cmd("-v", "run", "--headless", "--link", "--bpm", bpm, "--size", "64x64", "--fps", "30",
                   "--frames", "3000", "--no-midi", "--no-oscquery", "--no-state", *osc),
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.samples: list[tuple[float, float, float, int]] = []    # (beat, t, bpm, peers)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            m = LINE.search(line)
            if m:
                self.samples.append((float(m[1]), float(m[2]), float(m[3]), int(m[4])))

    def last(self):
        return self.samples[-1] if self.samples else None

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return "".join(self.lines[-40:])


def _phase_ms(ref, sample) -> float:
    """The engine's phase error against the session (the reference peer), in ms."""
    beat, t, bpm, _ = sample
    tempo, session_beat = ref.session(t, QUANTUM)
    return phase_error(beat, session_beat, QUANTUM) * 60000.0 / tempo


@needs_link
def test_two_engines_share_tempo_and_phase_and_a_tempo_change(env_no_display):
    from engine.control.link import LinkPeer
    from pythonosc.udp_client import SimpleUDPClient
    osc_port = free_port(__import__("socket").SOCK_DGRAM)
    a = Engine(env_no_display, 100.0, osc_port=osc_port)
    b = Engine(env_no_display, 128.0)
    ref = None
    try:
        both = poll(lambda: a.last() and b.last() and a.last()[3] >= 1 and b.last()[3] >= 1,
                    timeout=25, step=0.1)
        assert both, (a.lines[-20:], b.lines[-20:])
        ref = LinkPeer(90.0)                      # joins the engines' session: adopts its tempo
        started = time.monotonic()
        poll(lambda: ref.link.numPeers() >= 2, timeout=5)
        time.sleep(max(0.0, 5.0 - (time.monotonic() - started)))
        n = len(a.samples), len(b.samples)
        assert poll(lambda: len(a.samples) > n[0] + 1 and len(b.samples) > n[1] + 1, timeout=3)
        sa, sb = a.last(), b.last()
        tempo = ref.session(time.monotonic(), QUANTUM)[0]
        assert abs(sa[2] - sb[2]) < 0.1 and abs(sa[2] - tempo) < 0.1, (sa, sb, tempo)
        assert min(abs(sa[2] - 100.0), abs(sa[2] - 128.0)) < 0.1, sa   # one engine's tempo, not the reference's
        ea, eb = _phase_ms(ref, sa), _phase_ms(ref, sb)
        print(f"\nafter 5 s: {sa[2]:.4f} / {sb[2]:.4f} bpm (session {tempo:.4f}); "
              f"phase error {ea:+.3f} ms / {eb:+.3f} ms")
        assert abs(ea) < 10.0 and abs(eb) < 10.0, (ea, eb)

        # a tempo sent to one engine over OSC reaches the other (and the reference) through Link
        SimpleUDPClient("127.0.0.1", osc_port).send_message("/vj/tempo", 140.0)
        assert poll(lambda: abs(ref.session(time.monotonic(), QUANTUM)[0] - 140.0) < 0.01, timeout=5), \
            ref.session(time.monotonic(), QUANTUM)
        n = len(b.samples)
        assert poll(lambda: len(b.samples) > n + 1 and abs(b.last()[2] - 140.0) < 0.01, timeout=5), b.samples[-3:]
        time.sleep(1.0)
        sa, sb = a.last(), b.last()
        ea, eb = _phase_ms(ref, sa), _phase_ms(ref, sb)
        print(f"after /vj/tempo 140 on one engine: {sa[2]:.4f} / {sb[2]:.4f} bpm; "
              f"phase error {ea:+.3f} ms / {eb:+.3f} ms")
        assert abs(sa[2] - 140.0) < 0.01 and abs(sb[2] - 140.0) < 0.01
        assert abs(ea) < 10.0 and abs(eb) < 10.0, (ea, eb)
    finally:
        if ref is not None:
            ref.close()
        log_a, log_b = a.stop(), b.stop()
    assert "Traceback" not in log_a + log_b, log_a + log_b


def test_without_the_binding_link_says_why_and_the_show_runs(tmp_path, env_no_display):
    fake = tmp_path / "link"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('no Link here')\n")
    env = dict(env_no_display, PYTHONPATH=str(tmp_path))
    proc = subprocess.run(vj_cmd("run", "--headless", "--link", "--frames", "10", "--size", "64x64", "--no-midi",
                                 "--no-osc", "--no-oscquery", "--no-state"),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "runs without Link" in proc.stderr and "pip install 'vj-engine[link]'" in proc.stderr, proc.stderr


# --- the phase alignment, on a stand-in Link (no network) ------------------------------------

class FakeLink:
    """A session timeline: ``beat = beat0 + (t - t0) * tempo / 60`` in Link's clock (µs)."""

    def __init__(self, tempo=120.0, beat0=0.0, t0=0):
        self.tempo, self.beat0, self.t0, self.peers, self.enabled = tempo, beat0, t0, 1, True
        self.micros = lambda: 0

    def clock(self):
        return SimpleNamespace(micros=self.micros)

    def numPeers(self):  # noqa: N802 - the binding's names
        return self.peers

    def captureSessionState(self):  # noqa: N802
        link = self

        class State:
            def tempo(self):
                return link.tempo

            def beatAtTime(self, m, q):  # noqa: N802
                return link.beat0 + (m - link.t0) / 1e6 * link.tempo / 60.0

            def setTempo(self, bpm, m):  # noqa: N802 - keeps the beat at m
                link.beat0, link.t0, link.tempo = self.beatAtTime(m, 4), m, bpm

            def requestBeatAtTime(self, beat, m, q):  # noqa: N802
                pass
        return State()

    def commitSessionState(self, s):  # noqa: N802
        pass


def _rig(link_offset=1000.0, tempo=120.0, beat0=0.0, bpm=100.0):
    from engine.control.link import LinkPeer
    fake = FakeLink(tempo, beat0)
    t = [0.0]
    fake.micros = lambda: int((t[0] + link_offset) * 1e6)
    peer = LinkPeer(link=fake, mono=lambda: t[0])
    clock = LiveClock(bpm)
    clock.start = 0.0
    sync = ClockSync(clock, now=lambda: t[0], link=peer)
    return fake, t, clock, sync, peer


def _frame(events=None):
    snap = SimpleNamespace(events=events or {}, values={}, times={})
    return SimpleNamespace(snap=snap, status={})


def test_phase_alignment_follows_link_tempo_and_phase_without_running_backwards():
    fake, t, clock, sync, peer = _rig(link_offset=1000.0, tempo=120.0, beat0=1.3)
    assert abs(peer.offset - 1000.0) < 1e-9
    beats, errors = [], []
    for k in range(120):                         # 4 s at an uneven ~30 fps
        t[0] = 5.0 + k / 30.0 + (0.004 if k % 3 == 0 else 0.0)
        clock.advance(t[0])
        beats.append(clock.beat)
        f = _frame()
        sync.run(f)
        session = fake.captureSessionState().beatAtTime(peer.micros(t[0]), 4)
        errors.append(phase_error(session, beats[-1], 4.0) * 500.0)   # ms at 120 bpm
    assert f.status["tempo_source"] == "link" and f.status["link_peers"] == 1 and clock.bpm == 120.0
    assert all(b2 >= b1 for b1, b2 in zip(beats, beats[1:])), "the beat ran backwards"
    assert max(abs(e) for e in errors[30:]) < 1.0, errors[25:35]


def test_a_higher_source_pushes_its_tempo_into_link_and_keeps_the_phase():
    fake, t, clock, sync, peer = _rig(tempo=120.0)
    for k in range(30):
        t[0] = 1.0 + k / 30.0
        clock.advance(t[0])
        sync.run(_frame())
    t[0] += 1 / 30.0
    clock.advance(t[0])
    f = _frame({"clock.tempo": (Event("clock.tempo", 140.0, t[0], "osc"),)})
    sync.run(f)
    assert fake.tempo == 140.0 and clock.bpm == 140.0 and f.status["tempo_source"] == "osc"
    errs = []
    for k in range(60):                          # the session keeps 140 and the phase stays locked
        t[0] += 1 / 30.0
        clock.advance(t[0])
        errs.append(phase_error(fake.captureSessionState().beatAtTime(peer.micros(t[0]), 4), clock.beat, 4.0))
        sync.run(_frame())
    assert fake.tempo == 140.0 and max(abs(e) for e in errs) * 60000 / 140 < 1.0


def test_align_small_error_pulled_big_error_taken_forwards():
    assert align(10.0, 0.05, 0.067, 4.0) == pytest.approx(10.01)
    assert align(10.0, -0.05, 0.067, 4.0) == pytest.approx(9.99)
    assert align(10.0, -0.09, 0.02, 4.0) == pytest.approx(9.99)           # never more than half a step back
    assert align(10.0, 1.5, 0.067, 4.0) == pytest.approx(11.5)             # big, ahead: taken at once
    assert align(10.0, -1.5, 0.067, 4.0) == pytest.approx(12.5)            # big, behind: next bar's, forwards
    assert align(10.0, -LINK_BIG, 0.067, 4.0) > 10.0
    assert phase_error(0.1, 3.9, 4.0) == pytest.approx(0.2)
