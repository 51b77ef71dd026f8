"""What the soak measures from outside the engine: frame times (one OSC out bundle per frame,
carrying ``/vj/frame``) and the engine process's resident memory."""
from __future__ import annotations

import socket
import struct
import threading
import time


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _values(bundle: bytes) -> dict[str, float]:
    """The float messages of one OSC out bundle (the engine's own encoding: one float each)."""
    out, i = {}, 16  # "#bundle\0" + timetag
    while i + 4 <= len(bundle):
        size = struct.unpack_from(">i", bundle, i)[0]
        msg = bundle[i + 4:i + 4 + size]
        i += 4 + size
        end = msg.find(b"\0")
        start = (end + 4) & ~3
        if end > 0 and msg[start:start + 4] == b",f\0\0" and len(msg) >= start + 8:
            out[msg[:end].decode("ascii", "replace")] = struct.unpack_from(">f", msg, start + 4)[0]
    return out


class FrameMonitor:
    """Receives the engine's OSC out on a UDP port and keeps, for each frame, when it arrived and
    when the engine's clock says the frame began (``/vj/beat`` at ``/vj/tempo``): gaps are
    measured on the engine's clock, so a datagram that waited in a queue is not a gap."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.arrivals: list[tuple[float, float]] = []   # (arrival, frame number)
        self.clock: list[float] = []                    # the engine's seconds since start, per arrival
        self._seconds = 0.0
        self._beat: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-monitor", daemon=True)

    def start(self) -> "FrameMonitor":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except OSError:
                continue
            t = time.monotonic()
            v = _values(data)
            n, beat, bpm = v.get("/vj/frame"), v.get("/vj/beat"), v.get("/vj/tempo")
            if n is None or beat is None or not bpm or (self.arrivals and n <= self.arrivals[-1][1]):
                continue
            if self._beat is not None:
                self._seconds += (beat - self._beat) * 60.0 / bpm
            self._beat = beat
            self.arrivals.append((t, n))
            self.clock.append(self._seconds)

    def gaps(self, since: float = 0.0) -> list[tuple[float, float]]:
        """(when, seconds) between consecutive frames. When bundles were merged or lost (the
        frame number jumps by k), the k frames shared the interval: its k-th part is taken."""
        out = []
        pts = [(t, n, c) for (t, n), c in zip(self.arrivals, self.clock) if t >= since]
        for (t0, n0, c0), (t1, n1, c1) in zip(pts, pts[1:]):
            out.append((t0, (c1 - c0) / max(1.0, n1 - n0)))
        return out

    @property
    def frames(self) -> int:
        return int(self.arrivals[-1][1]) if self.arrivals else 0
