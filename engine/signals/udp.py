"""A UDP receiver on a daemon thread that never starves the render thread: the OSC input
(``osc.py``) and OSC hands (``hand_osc.py``) both run on it.

The socket is bound in ``start`` (a port in use is a clear error there, not on the thread),
with a 1 MiB kernel buffer and, on Linux, ``SO_RXQ_OVFL`` so datagrams the kernel dropped are
counted (``stats["kernel_drops"]``). The thread budgets its own CPU time: at most ``duty`` of
each 2 ms window (receiving, parsing, publishing); over it, it sleeps and the kernel buffers
or drops, so a flood is paid for by the sender, not by the frames. Subclasses say what a
datagram means (``_datagram``), and may wake on a deadline of their own (``_timeout``,
``_idle``).
"""
from __future__ import annotations

import logging
import socket
import struct
import threading
import time

log = logging.getLogger("vj")

MAX_DATAGRAM = 65536
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)  # Linux
WINDOW = 0.002                                    # s: the CPU budget's window
now = time.monotonic


class UdpReceiver:
    """``port`` 0 binds an ephemeral port (``self.port`` is the real one after ``start``);
    ``allow``: sender IP addresses accepted (None = any)."""

    thread_name = "udp"

    def __init__(self, port: int, bind: str = "127.0.0.1", allow=None, duty: float = 0.2):
        self.port, self.bind = int(port), bind
        self.allow = set(allow) if allow else None
        self.duty = float(duty)
        self.cpu_time = 0.0   # the receiver thread's CPU seconds so far
        self.crashed: str | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ovfl = False

    # --- what a subclass says
    @property
    def stats(self):
        raise NotImplementedError

    def _datagram(self, data: bytes, t: float) -> None:
        raise NotImplementedError

    def _timeout(self) -> float:
        """How long to wait for the next datagram."""
        return 0.1

    def _idle(self) -> None:
        """No datagram came within ``_timeout()``."""

    # --- lifecycle
    def start(self):
        family = socket.AF_INET6 if ":" in self.bind else socket.AF_INET
        s = socket.socket(family, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        except OSError:
            pass
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
            self._ovfl = True
        except OSError:
            self._ovfl = False
        try:
            s.bind((self.bind, self.port))
        except OSError:
            s.close()
            raise
        self.port = s.getsockname()[1]
        s.settimeout(0.1)
        self._sock = s
        self._thread = threading.Thread(target=self._run, name=f"{self.thread_name}:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            try:  # wake the receiver now rather than at its next timeout
                host = "127.0.0.1" if self.bind in ("0.0.0.0", "") else ("::1" if self.bind == "::" else self.bind)
                with socket.socket(self._sock.family, socket.SOCK_DGRAM) as w:
                    w.sendto(b"", (host, self.port))
            except OSError:
                pass
            self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as e:  # noqa: BLE001 - reported, never raised into the engine
            self.crashed = f"{type(e).__name__}: {e}"
            log.error("%s receiver stopped: %s", self.thread_name, self.crashed)

    def _loop(self) -> None:
        sock, stats, allow = self._sock, self.stats, self.allow
        anc = socket.CMSG_SPACE(4) if self._ovfl else 0
        perf, cpu = time.perf_counter, time.thread_time  # thread CPU time: receiving, parsing, writing
        window, cpu0, budget = perf(), cpu(), self.duty * WINDOW
        while not self._stop.is_set():
            sock.settimeout(self._timeout())
            try:
                if anc:
                    data, cmsgs, _flags, addr = sock.recvmsg(MAX_DATAGRAM + 1, anc)
                    for level, kind, payload in cmsgs:
                        if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(payload) >= 4:
                            stats["kernel_drops"] = struct.unpack("=I", payload[:4])[0]
                else:
                    data, addr = sock.recvfrom(MAX_DATAGRAM + 1)
            except (TimeoutError, socket.timeout):
                self._idle()
                continue
            except OSError:
                if self._stop.is_set():
                    return
                stats["socket_errors"] += 1
                time.sleep(0.01)
                continue
            if self._stop.is_set():
                return
            if allow is not None and addr[0] not in allow:
                stats["refused"] += 1
            else:
                self._datagram(data, now())
            t1, c = perf(), cpu()
            self.cpu_time = c
            if t1 - window >= WINDOW:
                window, cpu0 = t1, c
            elif c - cpu0 > budget:
                # used this window's share: let the render thread run, the kernel buffers or drops
                stats["throttled"] += 1
                time.sleep(max(0.0, window + WINDOW - t1))
                window, cpu0 = perf(), cpu()
