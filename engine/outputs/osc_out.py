"""OSC out: the engine's state, one number per address, to one or more destinations.

Every frame (or at ``rate`` Hz) the render thread hands over a flat ``{address: number}``
dict (``/vj/beat``, ``/vj/tempo``, ``/vj/audio/low``, ``/vj/param/speed`` ...); a sender thread
encodes and sends it, so the render thread never touches a socket. One float per address
is what TouchDesigner's OSC In CHOP wants (it names a channel after each address); with
``bundle=True`` each frame goes out as one bundle (timetag "immediately"), split into several
bundles if it would not fit a UDP datagram.
"""
from __future__ import annotations

import logging
import socket
import struct
import threading

from engine.reporting import Once

log = logging.getLogger("vj.osc")

_IMMEDIATELY = struct.pack(">Q", 1)
MAX_PACKET = 8192  # keep bundles well under the path MTU of a LAN... and any UDP limit


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (4 - len(b) % 4)


def encode_message(address: str, value: float) -> bytes:
    """One OSC message with one float32 argument."""
    return _pad(address.encode()) + b",f\0\0" + struct.pack(">f", value)


def encode_bundle(messages: list[bytes]) -> bytes:
    return b"#bundle\0" + _IMMEDIATELY + b"".join(struct.pack(">i", len(m)) + m for m in messages)


def parse_destination(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``PORT`` (127.0.0.1)."""
    host, _, port = text.rpartition(":")
    try:
        p = int(port)
    except ValueError:
        raise ValueError(f"OSC destination {text!r}: expected HOST:PORT") from None
    if not 0 < p < 65536:
        raise ValueError(f"OSC destination {text!r}: port out of range")
    return (host.strip("[]") or "127.0.0.1"), p


class OscOut:
    def __init__(self, destinations, rate: float | None = None, bundle: bool = False):
        self.destinations = [parse_destination(d) if isinstance(d, str) else tuple(d) for d in destinations]
        self.rate = rate
        self.bundle = bundle
        self.sent = 0
        self.errors = 0
        self._state: dict | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._cache: dict[str, bytes] = {}
        self._socks: dict[int, socket.socket] = {}
        self._thread: threading.Thread | None = None
        self._reported = Once(64)

    def start(self) -> "OscOut":
        self._thread = threading.Thread(target=self._run, name="osc-out", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=2)
        for s in self._socks.values():
            s.close()

    def publish(self, state: dict) -> None:
        """Render thread: the newest state (replaces any not yet sent)."""
        self._state = state
        if self.rate is None:
            self._wake.set()

    def _sock(self, host: str) -> socket.socket:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = self._socks.get(fam)
        if s is None:
            s = self._socks[fam] = socket.socket(fam, socket.SOCK_DGRAM)
        return s

    def _run(self) -> None:
        period = 1.0 / self.rate if self.rate else None
        while not self._stop.is_set():
            if period is None:
                self._wake.wait(0.5)
                self._wake.clear()
            elif self._stop.wait(period):
                break
            state, self._state = self._state, None
            if state:
                try:
                    self.send(state)
                except Exception as e:  # noqa: BLE001 - never take the engine down
                    self._report(f"OSC out: {type(e).__name__}: {e}")

    def packets(self, state: dict) -> list[bytes]:
        msgs = []
        cache = self._cache
        for address, value in state.items():
            head = cache.get(address)
            if head is None:
                if len(cache) > 4096:
                    cache.clear()
                head = cache[address] = _pad(address.encode()) + b",f\0\0"
            msgs.append(head + struct.pack(">f", value))
        if not self.bundle:
            return msgs
        out, part, size = [], [], 16
        for m in msgs:
            if part and size + 4 + len(m) > MAX_PACKET:
                out.append(encode_bundle(part))
                part, size = [], 16
            part.append(m)
            size += 4 + len(m)
        if part:
            out.append(encode_bundle(part))
        return out

    def send(self, state: dict) -> None:
        packets = self.packets(state)
        for host, port in self.destinations:
            sock = self._sock(host)
            for pkt in packets:
                try:
                    sock.sendto(pkt, (host, port))
                    self.sent += 1
                except OSError as e:  # nobody listening (ICMP), unreachable host: count, report once
                    self.errors += 1
                    self._report(f"OSC out to {host}:{port}: {e}")
                    break

    def _report(self, msg: str) -> None:
        if self._reported.first(msg):
            log.warning("%s", msg)
