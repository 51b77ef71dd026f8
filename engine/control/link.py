"""Ableton Link (``vj run --link``): one peer in the Link session on the LAN.

The engine shares tempo and beat phase with Ableton Live, Resolume, TouchDesigner and other
engines through Link. This module only owns the Link peer: it maps the engine's time base
(``time.monotonic()``) to Link's microsecond clock, reads the session's tempo and beat at a
given time, and pushes a tempo (or a tap's beat) into the session. What to do with them, each
frame and by priority, is the clock sync's business (``control/clock_sync.py``).

The binding is ``LinkPython-extern`` (``import link``), an optional extra:
``pip install 'vj-engine[link]'``. Link is GPL-2.0-or-later; the engine (MIT) never bundles it.
Without it, ``open_link`` says why and returns None, and the show runs on its own clock.
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger("vj")

INSTALL = "pip install 'vj-engine[link]'"
RESYNC = 5.0        # seconds between measurements of the monotonic -> Link clock offset


def measure_offset(link_micros, mono=time.monotonic, tries: int = 7) -> float:
    """Link's clock minus ``mono``, in seconds: both are monotonic (Link's is CLOCK_MONOTONIC_RAW
    on Linux), so the offset is nearly constant; the sample read in the shortest window wins."""
    best = None
    for _ in range(tries):
        a = mono()
        m = link_micros()
        b = mono()
        if best is None or b - a < best[0]:
            best = (b - a, m / 1e6 - (a + b) / 2)
    return best[1]


class LinkPeer:
    """The engine's peer in the Link session. ``link`` is a ``link.Link`` (or a stand-in with
    the same methods, for tests); by default one is made at ``bpm`` and enabled."""

    def __init__(self, bpm: float = 120.0, link=None, mono=time.monotonic):
        if link is None:
            import link as _binding     # LinkPython-extern
            link = _binding.Link(float(bpm))
            link.enabled = True
        self.link, self.mono = link, mono
        self._micros = link.clock().micros
        self.offset = measure_offset(self._micros, mono)
        self._measured = mono()
        self._peers = -1

    def micros(self, t: float) -> int:
        """Link clock time (µs) of the monotonic time ``t``."""
        return int(round((t + self.offset) * 1e6))

    def _resync(self) -> None:
        now = self.mono()
        if now - self._measured > RESYNC:   # the two clocks may be slewed apart (NTP): follow it
            self.offset, self._measured = measure_offset(self._micros, self.mono), now

    def session(self, t: float, quantum: float) -> tuple[float, float]:
        """The session's tempo, and its beat at monotonic time ``t`` (for ``quantum``)."""
        self._resync()
        s = self.link.captureSessionState()
        return s.tempo(), s.beatAtTime(self.micros(t), quantum)

    def peers(self) -> int:
        n = int(self.link.numPeers())
        if n != self._peers:
            log.info("Ableton Link: %d peer%s", n, "" if n == 1 else "s")
            self._peers = n
        return n

    def set_tempo(self, bpm: float, t: float) -> None:
        """Push a tempo into the session (the beat at ``t`` stays where it is): every peer follows."""
        s = self.link.captureSessionState()
        s.setTempo(float(bpm), self.micros(t))
        self.link.commitSessionState(s)

    def request_beat(self, beat: float, t: float, quantum: float) -> None:
        """Ask for ``beat`` at ``t`` (a tap). Alone in the session, Link takes it as it is; with
        peers it keeps the session's phase (Link never jumps other peers' beat)."""
        s = self.link.captureSessionState()
        s.requestBeatAtTime(float(beat), self.micros(t), quantum)
        self.link.commitSessionState(s)

    def close(self) -> None:
        self.link.enabled = False


def open_link(bpm: float) -> LinkPeer | None:
    """The Link peer, joined; None (said why, once) when the binding is missing or fails."""
    try:
        import link  # noqa: F401  LinkPython-extern
    except ImportError:
        log.warning("Ableton Link: the Link binding (LinkPython-extern) is not installed, so this show "
                    "runs without Link on its own clock; install it with: %s", INSTALL)
        return None
    try:
        peer = LinkPeer(bpm)
    except Exception as e:  # noqa: BLE001 - no network, a broken binding: the show goes on
        log.warning("Ableton Link could not start (%s: %s); running without Link", type(e).__name__, e)
        return None
    log.info("Ableton Link: joined at %.2f bpm (the session's tempo wins if there is one)", bpm)
    return peer
