"""OSC in: every address becomes a signal; the /vj/... namespace controls the engine.

A plain UDP socket on its own thread receives datagrams; python-osc's ``OscMessage`` parses
each message, and bundles are unpacked here (depth-limited, each element on its own, the
timetag ignored: TouchDesigner's timetags are not wall-clock, and nothing here ever waits).
Each message is written to the signal bus and nothing else happens on this thread:

- ``/any/address 0.5``          -> channel ``osc./any/address`` = 0.5   (TouchDesigner: one value per address)
- ``/max/list 1 2 3``           -> channel ``osc./max/list`` = float32 vector [1, 2, 3]  (Max lists)
- ``/label "intro"``            -> channel ``osc./label`` = "intro"      (strings kept as the last value)
- ``/go`` (no argument, Impulse, or the string "bang") -> event ``osc./go``
- ``/vj/...``                   -> ``control(address, args, t, source)``: the control plane's
  dispatcher (engine/control/dispatch.py) validates it against the namespace table

Robustness: a packet that is not OSC, a truncated or oversized one, a sender outside the
allow-list, or a new address once ``max_channels`` exist, is counted (``OscIn.stats``) and dropped, never raised. The
receiver sheds load instead of starving the render thread (it shares the GIL): it spends at
most ``duty`` of each 2 ms of its CPU time on receiving and parsing, and sleeps the rest of a window it has used up, so a
flood fills the kernel's socket buffer and the kernel drops the excess (counted through
``SO_RXQ_OVFL`` on Linux).
"""
from __future__ import annotations

import logging
import math
import struct
import time
from collections import Counter, OrderedDict

import numpy as np
from pythonosc.osc_message import OscMessage

from engine.signals.udp import MAX_DATAGRAM, UdpReceiver

log = logging.getLogger("vj.osc")

MAX_BUNDLE_DEPTH = 8
MAX_ADDRESS = 256
_KNOWN_TAGS = b"ihfdsbrmtTFNI[]"  # what python-osc parses, plus Impulse
_F32_MAX = 3.4028234e38
_now = time.monotonic


class Stats(Counter):
    """Counts by kind: datagrams, messages, bundles, malformed, unknown (a /vj address with no
    dispatcher), refused, oversize, evicted (the stalest address forgotten to make room for a
    new one), kernel_drops."""

    PROBLEMS = ("malformed", "unknown", "refused", "oversize", "evicted", "kernel_drops")

    def problems(self) -> int:
        return sum(self[k] for k in self.PROBLEMS)

    def summary(self) -> str:
        bad = ", ".join(f"{self[k]} {k.replace('_', ' ')}" for k in self.PROBLEMS if self[k])
        return f"{self['messages']} msgs" + (f" ({bad})" if bad else "")


def _number(v):
    """An OSC argument as a float, or None (strings, blobs, nil, arrays)."""
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)):
        f = float(v)
        return f if math.isfinite(f) and abs(f) <= _F32_MAX else None
    return None


def bundle_parts(data: bytes) -> tuple[list[bytes], bool]:
    """The elements of one bundle (``#bundle\\0``, an 8-byte timetag, ignored on purpose, then
    size-prefixed elements) and whether it was malformed after them (a bad size ends it)."""
    parts, i, n = [], 16, len(data)
    while i < n:
        if i + 4 > n:
            return parts, True
        size = struct.unpack_from(">i", data, i)[0]
        i += 4
        if size <= 0 or size % 4 or i + size > n:
            return parts, True
        parts.append(data[i:i + size])
        i += size
    return parts, False


def decode_message(data: bytes) -> tuple[str, list] | None:
    """``(address, args)`` of one OSC message, or None if it is malformed. The type tags are
    checked before python-osc sees them: it logs (root logger) on every tag it does not know,
    which a flood would turn into a torrent; Impulse (I) is read as Nil."""
    end = data.find(b"\0")
    start = (end + 4) & ~3
    if end < 0 or start > len(data) or end > MAX_ADDRESS:
        return None
    if start < len(data):
        tag_end = data.find(b"\0", start)
        tags = data[start:tag_end]
        if tag_end < 0 or tags[:1] != b"," or tags.translate(None, _KNOWN_TAGS) != b",":
            return None
        if b"I" in tags:
            data = data[:start] + tags.replace(b"I", b"N") + data[tag_end:]
    try:
        msg = OscMessage(data)
        return msg.address, msg.params
    except Exception:  # noqa: BLE001 - python-osc raises ParseError, struct.error, UnicodeDecodeError...
        return None


class OscHandler:
    """Datagram -> bus. Shared by the UDP receiver and the OSCQuery WebSocket (binary frames)."""

    def __init__(self, bus, max_channels: int = 2048, control=None):
        self.bus = bus
        self.max_channels = max_channels
        self.control = control  # (address, args, t, source) -> None, for /vj addresses
        self.stats = Stats()
        self._channels: OrderedDict[str, None] = OrderedDict()  # least recently written first

    # --- packets
    def datagram(self, data: bytes, t: float | None = None, source: str = "osc") -> None:
        st = self.stats
        st["datagrams"] += 1
        if len(data) > MAX_DATAGRAM:
            st["oversize"] += 1
            return
        t = _now() if t is None else t
        if data[:8] == b"#bundle\0":
            self._bundle(data, t, 0, source)
        elif data[:1] == b"/" and len(data) % 4 == 0:
            self._message(data, t, source)
        else:
            st["malformed"] += 1

    def _bundle(self, data: bytes, t: float, depth: int, source: str) -> None:
        st = self.stats
        if depth >= MAX_BUNDLE_DEPTH or len(data) < 16 or len(data) % 4:
            st["malformed"] += 1
            return
        st["bundles"] += 1
        parts, malformed = bundle_parts(data)
        for part in parts:
            if part[:8] == b"#bundle\0":
                self._bundle(part, t, depth + 1, source)
            elif part[:1] == b"/":
                self._message(part, t, source)
            else:
                st["malformed"] += 1
        if malformed:
            st["malformed"] += 1

    def _message(self, data: bytes, t: float, source: str) -> None:
        st = self.stats
        decoded = decode_message(data)
        if decoded is None:
            st["malformed"] += 1
            return
        address, args = decoded
        if not address.startswith("/") or len(address) > MAX_ADDRESS or not address.isprintable() \
                or " " in address:
            st["malformed"] += 1
            return
        st["messages"] += 1
        if address.startswith("/vj/") or address == "/vj":
            self._engine(address, args, t, source)
        else:
            self._signal(address, args, t)

    # --- any address -> osc.<address>
    def _signal(self, address: str, args, t: float) -> None:
        name = "osc." + address
        if name in self._channels:
            self._channels.move_to_end(name)
        else:
            # a full table forgets its stalest address: a controller plugged in late always works
            if len(self._channels) >= self.max_channels:
                stale, _ = self._channels.popitem(last=False)
                self.bus.forget(stale)
                self.stats["evicted"] += 1
            self._channels[name] = None
        nums = [x for x in map(_number, args) if x is not None]
        if nums:
            self.bus.set(name, nums[0] if len(nums) == 1 else np.asarray(nums, np.float32), t)
            return
        texts = [a for a in args if isinstance(a, str)]
        if texts and texts[-1] != "bang":
            self.bus.set(name, texts[-1], t)
            return
        self.bus.emit(name, 1.0, t)  # no argument, Impulse, nil, "bang": a trigger

    # --- the engine's namespace: validated and applied by the control plane's dispatcher
    def _engine(self, address: str, args, t: float, source: str) -> None:
        if self.control is None:
            self.stats["unknown"] += 1
            return
        self.control(address, args, t, source)


class OscIn(UdpReceiver):
    """The UDP receiver thread (``udp.py``). ``allow``: sender IP addresses accepted (None = any)."""

    thread_name = "osc-in"

    def __init__(self, bus, port: int = 9000, bind: str = "127.0.0.1", allow=None,
                 max_channels: int = 2048, duty: float = 0.2, control=None):
        super().__init__(port, bind, allow, duty)
        self.handler = OscHandler(bus, max_channels, control)

    @property
    def stats(self) -> Stats:
        return self.handler.stats

    def _datagram(self, data: bytes, t: float) -> None:
        self.handler.datagram(data, t)
