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


def _frame_number(bundle: bytes) -> float | None:
    """``/vj/frame``'s float from one OSC out bundle (the engine's own encoding: one float each)."""
    at = bundle.find(b"/vj/frame\0")
    if at < 0:
        return None
    start = at + 12  # "/vj/frame\0" padded to 12, then ",f\0\0"
    if bundle[start:start + 4] != b",f\0\0":
        return None
    return struct.unpack_from(">f", bundle, start + 4)[0]


class FrameMonitor:
    """Receives the engine's OSC out on a UDP port and keeps (arrival time, frame number)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.arrivals: list[tuple[float, float]] = []
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
            n = _frame_number(data)
            if n is not None and (not self.arrivals or n > self.arrivals[-1][1]):
                self.arrivals.append((t, n))

    def gaps(self, since: float = 0.0) -> list[tuple[float, float]]:
        """(when, seconds) between consecutive frames. When bundles were merged or lost (the
        frame number jumps by k), the k frames shared the interval: its k-th part is taken."""
        out = []
        pts = [a for a in self.arrivals if a[0] >= since]
        for (t0, n0), (t1, n1) in zip(pts, pts[1:]):
            out.append((t0, (t1 - t0) / max(1.0, n1 - n0)))
        return out

    @property
    def frames(self) -> int:
        return int(self.arrivals[-1][1]) if self.arrivals else 0
