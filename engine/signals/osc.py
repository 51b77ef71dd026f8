"""OSC in: every address becomes a signal; the /vj/... namespace controls the engine.

A plain UDP socket on its own thread receives datagrams; python-osc's ``OscMessage`` parses
each message, and bundles are unpacked here (depth-limited, each element on its own, the
timetag ignored: TouchDesigner's timetags are not wall-clock, and nothing here ever waits).
Each message is written to the signal bus and nothing else happens on this thread:

- ``/any/address 0.5``          -> channel ``osc./any/address`` = 0.5   (TouchDesigner: one value per address)
- ``/max/list 1 2 3``           -> channel ``osc./max/list`` = float32 vector [1, 2, 3]  (Max lists)
- ``/label "intro"``            -> channel ``osc./label`` = "intro"      (strings kept as the last value)
- ``/go`` (no argument, Impulse, or the string "bang") -> event ``osc./go``
- ``/vj/...``                   -> engine control events (cue.*, clock.*, param.*, latent.*, record.*)

Robustness: a packet that is not OSC, a truncated or oversized one, a wrong argument type on
a /vj/ address, an unknown /vj/ address, a sender outside the allow-list, or a new address
once ``max_channels`` exist, is counted (``OscIn.stats``) and dropped, never raised. The
receiver sheds load instead of starving the render thread (it shares the GIL): it spends at
most ``duty`` of each 2 ms of its CPU time on receiving and parsing, and sleeps the rest of a window it has used up, so a
flood fills the kernel's socket buffer and the kernel drops the excess (counted through
``SO_RXQ_OVFL`` on Linux).
"""
from __future__ import annotations

import logging
import math
import socket
import struct
import threading
import time
from collections import Counter

import numpy as np
from pythonosc.osc_message import OscMessage

log = logging.getLogger("vj.osc")

MAX_DATAGRAM = 65536
MAX_BUNDLE_DEPTH = 8
MAX_ADDRESS = 256
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)  # Linux
_WINDOW = 0.002  # short windows: the render thread never waits long for the GIL
_KNOWN_TAGS = b"ihfdsbrmtTFNI[]"  # what python-osc parses, plus Impulse
_F32_MAX = 3.4028234e38
_now = time.monotonic


class Stats(Counter):
    """Counts by kind: datagrams, messages, bundles, malformed, bad_args, unknown, refused,
    oversize, channels_full, kernel_drops."""

    PROBLEMS = ("malformed", "bad_args", "unknown", "refused", "oversize", "channels_full", "kernel_drops")

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


class OscHandler:
    """Datagram -> bus. Shared by the UDP receiver and the OSCQuery WebSocket (binary frames)."""

    def __init__(self, bus, max_channels: int = 2048):
        self.bus = bus
        self.max_channels = max_channels
        self.stats = Stats()
        self._channels: set[str] = set()

    # --- packets
    def datagram(self, data: bytes, t: float | None = None) -> None:
        st = self.stats
        st["datagrams"] += 1
        if len(data) > MAX_DATAGRAM:
            st["oversize"] += 1
            return
        t = _now() if t is None else t
        if data[:8] == b"#bundle\0":
            self._bundle(data, t, 0)
        elif data[:1] == b"/" and len(data) % 4 == 0:
            self._message(data, t)
        else:
            st["malformed"] += 1

    def _bundle(self, data: bytes, t: float, depth: int) -> None:
        st = self.stats
        if depth >= MAX_BUNDLE_DEPTH or len(data) < 16 or len(data) % 4:
            st["malformed"] += 1
            return
        st["bundles"] += 1
        i, n = 16, len(data)  # "#bundle\0" + 8-byte timetag, ignored on purpose
        while i < n:
            if i + 4 > n:
                st["malformed"] += 1
                return
            size = struct.unpack_from(">i", data, i)[0]
            i += 4
            if size <= 0 or size % 4 or i + size > n:
                st["malformed"] += 1
                return
            part = data[i:i + size]
            i += size
            if part[:8] == b"#bundle\0":
                self._bundle(part, t, depth + 1)
            elif part[:1] == b"/":
                self._message(part, t)
            else:
                st["malformed"] += 1

    def _message(self, data: bytes, t: float) -> None:
        st = self.stats
        # check the type tags before python-osc sees them: it logs (root logger) on every tag it
        # does not know, which a flood would turn into a torrent; Impulse (I) is read as Nil
        end = data.find(b"\0")
        start = (end + 4) & ~3
        if end < 0 or start > len(data):
            st["malformed"] += 1
            return
        if start < len(data):
            tag_end = data.find(b"\0", start)
            tags = data[start:tag_end]
            if tag_end < 0 or tags[:1] != b"," or tags.translate(None, _KNOWN_TAGS) != b",":
                st["malformed"] += 1
                return
            if b"I" in tags:
                data = data[:start] + tags.replace(b"I", b"N") + data[tag_end:]
        try:
            msg = OscMessage(data)
            address, args = msg.address, msg.params
        except Exception:  # noqa: BLE001 - python-osc raises ParseError, struct.error, UnicodeDecodeError...
            st["malformed"] += 1
            return
        if not address.startswith("/") or len(address) > MAX_ADDRESS or not address.isprintable() \
                or " " in address:
            st["malformed"] += 1
            return
        st["messages"] += 1
        if address.startswith("/vj/") or address == "/vj":
            self._engine(address, args, t)
        else:
            self._signal(address, args, t)

    # --- any address -> osc.<address>
    def _signal(self, address: str, args, t: float) -> None:
        name = "osc." + address
        if name not in self._channels:
            if len(self._channels) >= self.max_channels:
                self.stats["channels_full"] += 1
                return
            self._channels.add(name)
        nums = [x for x in map(_number, args) if x is not None]
        if nums:
            self.bus.set(name, nums[0] if len(nums) == 1 else np.asarray(nums, np.float32), t)
            return
        texts = [a for a in args if isinstance(a, str)]
        if texts and texts[-1] != "bang":
            self.bus.set(name, texts[-1], t)
            return
        self.bus.emit(name, 1.0, t)  # no argument, Impulse, nil, "bang": a trigger

    # --- the engine's namespace
    def _bad(self, address: str) -> None:
        self.stats["bad_args"] += 1

    def _engine(self, address: str, args, t: float) -> None:
        bus, parts = self.bus, address[4:].split("/")
        head = parts[0]
        if head == "cue" and len(parts) == 2 and parts[1] in ("next", "prev"):
            bus.emit(f"cue.{parts[1]}", 1.0, t)
        elif (head == "scene" and len(parts) == 1) or (head == "cue" and parts[1:] == ["goto"]):
            if len(args) != 1 or not isinstance(args[0], (int, float, str)) or isinstance(args[0], bool):
                return self._bad(address)
            v = args[0]
            bus.emit("cue.goto", int(v) if isinstance(v, float) and v.is_integer() else v, t)
        elif head == "tempo" and len(parts) == 1:
            v = _number(args[0]) if len(args) == 1 else None
            if v is None or not 20.0 <= v <= 400.0:
                return self._bad(address)
            bus.emit("clock.tempo", v, t)
        elif head == "tap" and len(parts) == 1:
            bus.emit("clock.tap", 1.0, t)
        elif head == "param" and len(parts) in (2, 3) and parts[1] and parts[2:] in ([], ["raw"]):
            v = _number(args[0]) if len(args) == 1 else None
            if v is None:
                return self._bad(address)
            bus.emit("param.set", (parts[1], v, "raw" if len(parts) == 3 else "norm"), t)
        elif head == "learn" and len(parts) == 1:
            if not args or not all(isinstance(a, str) for a in args):
                return self._bad(address)
            bus.emit("param.learn", tuple(args[:2]), t)
        elif head == "learn" and parts[1:] == ["cancel"]:
            bus.emit("param.learn", None, t)
        elif head == "latent" and len(parts) == 2 and parts[1] in ("key", "seed", "position"):
            v = _number(args[0]) if len(args) == 1 else None
            if v is None:
                return self._bad(address)
            v = v if parts[1] == "position" else int(v)
            bus.set(f"latent.{parts[1]}", float(v), t)
            bus.emit(f"latent.{parts[1]}", v, t)
        elif head == "record" and len(parts) == 2 and parts[1] in ("start", "stop"):
            if parts[1] == "start" and args and not isinstance(args[0], str):
                return self._bad(address)
            bus.emit(f"record.{parts[1]}", args[0] if args else None, t)
        else:
            self.stats["unknown"] += 1


class OscIn:
    """The UDP receiver thread. ``allow``: sender IP addresses accepted (None = any)."""

    def __init__(self, bus, port: int = 9000, bind: str = "127.0.0.1", allow=None,
                 max_channels: int = 2048, duty: float = 0.2):
        self.handler = OscHandler(bus, max_channels)
        self.port, self.bind = int(port), bind
        self.allow = set(allow) if allow else None
        self.duty = float(duty)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ovfl = False
        self.crashed: str | None = None

    @property
    def stats(self) -> Stats:
        return self.handler.stats

    def start(self) -> "OscIn":
        """Bind now (so a port in use is a clear error at start) and start the thread."""
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
        self._thread = threading.Thread(target=self._run, name=f"osc-in:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            try:  # wake the receiver now rather than at its next 0.1 s timeout
                host = "127.0.0.1" if self.bind in ("0.0.0.0", "") else ("::1" if self.bind == "::" else self.bind)
                with socket.socket(self._sock.family, socket.SOCK_DGRAM) as s:
                    s.sendto(b"", (host, self.port))
            except OSError:
                pass
            self._thread.join(timeout=2)
        if self._sock:
            self._sock.close()

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as e:  # noqa: BLE001 - reported, never raised into the engine
            self.crashed = f"{type(e).__name__}: {e}"
            log.error("OSC receiver stopped: %s", self.crashed)

    def _loop(self) -> None:
        sock, handler, stats, allow = self._sock, self.handler, self.handler.stats, self.allow
        anc = socket.CMSG_SPACE(4) if self._ovfl else 0
        perf, cpu = time.perf_counter, time.thread_time  # thread CPU time: receiving, parsing, writing
        window, cpu0, budget = perf(), cpu(), self.duty * _WINDOW
        while not self._stop.is_set():
            try:
                if anc:
                    data, cmsgs, _flags, addr = sock.recvmsg(MAX_DATAGRAM + 1, anc)
                    for level, kind, payload in cmsgs:
                        if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(payload) >= 4:
                            stats["kernel_drops"] = struct.unpack("=I", payload[:4])[0]
                else:
                    data, addr = sock.recvfrom(MAX_DATAGRAM + 1)
            except (TimeoutError, socket.timeout):
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
                handler.datagram(data, _now())
            t1 = perf()
            if t1 - window >= _WINDOW:
                window, cpu0 = t1, cpu()
            elif cpu() - cpu0 > budget:
                # used this window's share: let the render thread run, the kernel buffers or drops
                stats["throttled"] += 1
                time.sleep(max(0.0, window + _WINDOW - t1))
                window, cpu0 = perf(), cpu()
