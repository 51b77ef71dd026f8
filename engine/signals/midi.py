"""MIDI in: controllers, keyboards and clock, as signals on the bus (mido + python-rtmidi).

Signals (C = channel 1..16; the short names without ``chC`` follow any channel):

| signal | what |
|---|---|
| ``midi.cc.N``, ``midi.chC.cc.N`` | controller N, 0..1 (value / 127); also an event per message with the raw 0..127 value (relative encoders use it) |
| ``midi.cc14.N``, ``midi.chC.cc14.N`` | 14-bit controller pair N (MSB) + N+32 (LSB), 0..1 (value / 16383), once the device has sent an LSB |
| ``midi.note.K``, ``midi.chC.note.K`` | held: the velocity (0..1) while the key is down, 0 after; event on each press (value: velocity) |
| ``midi.note.K.off`` | event on release |
| ``midi.pitchbend``, ``midi.chC.pitchbend`` | -1..1 |
| ``midi.pressure``, ``midi.chC.pressure`` | channel aftertouch 0..1 |
| ``midi.program``, ``midi.chC.program`` | last program number; an event on each change |
| ``midi.clock.bpm`` | tempo from MIDI clock (24 per quarter note), smoothed over the last 48 ticks |
| ``midi.clock.beat`` | beats since the last Start (ticks / 24); its time is the last tick's |
| ``midi.clock.start`` / ``.stop`` / ``.continue`` | events; ``midi.clock.running`` 1/0 |

``MidiIn`` watches the ports (all, or those whose name contains one of ``names``): a device
plugged in later is opened within a second, one unplugged is reported and reopened when it
comes back. Without a MIDI system (no ALSA sequencer, as in CI) it says so once and keeps
looking. Each port has its own ``MidiDecoder``; ``feed_bytes`` takes raw bytes (mido parses
them), counting bytes that are not part of any message. Nothing here raises into the engine.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque

log = logging.getLogger("vj.midi")
_now = time.monotonic


class MidiDecoder:
    """mido messages -> bus signals for one port."""

    def __init__(self, bus, port: str = ""):
        self.bus = bus
        self.port = port
        self.stats = Counter()
        self._msb: dict[tuple[int, int], int] = {}
        self._is14: set[tuple[int, int]] = set()
        self._ticks: deque[float] = deque(maxlen=49)
        self._tick_count = -1
        self._running = False
        self._parser = None

    # --- raw bytes (tests, socket ports, anything that is not rtmidi)
    def feed_bytes(self, data, t: float | None = None) -> None:
        import mido
        if self._parser is None:
            self._parser = mido.Parser()
        try:
            data = bytes(data)
            self._parser.feed(data)
        except (TypeError, ValueError) as e:
            self.stats["bad_bytes"] += 1
            log.debug("MIDI bytes refused: %s", e)
            return
        used = 0
        for msg in self._parser:
            used += len(msg.bytes())
            self.message(msg, t)
        # realtime bytes inside a message and stray data bytes are dropped by the parser
        self.stats["ignored_bytes"] += max(0, len(data) - used)

    # --- messages
    def message(self, msg, t: float | None = None) -> None:
        t = _now() if t is None else t
        try:
            self._message(msg, t)
        except Exception as e:  # noqa: BLE001 - a strange message never stops input
            self.stats["errors"] += 1
            log.debug("MIDI message %r: %s", msg, e)

    def _message(self, msg, t: float) -> None:
        kind = msg.type
        self.stats["messages"] += 1
        if kind == "clock":
            return self._tick(t)
        if kind in ("start", "continue", "stop"):
            return self._transport(kind, t)
        if kind == "songpos":
            self._tick_count = msg.pos * 6 - 1  # sixteenths -> ticks; the next tick is at pos
            self._publish({"midi.clock.beat": msg.pos / 4.0}, (), t)
            return None
        ch = getattr(msg, "channel", None)
        if ch is None:
            return None
        c = f"midi.ch{ch + 1}."
        # each message's channels and events go on the bus in one atomic write
        if kind == "control_change":
            n, v = msg.control, msg.value
            u = v / 127.0
            values = {f"midi.cc.{n}": u, f"{c}cc.{n}": u}
            events = [(f"{c}cc.{n}", v), (f"midi.cc.{n}", v)]
            if n < 32:
                self._msb[(ch, n)] = v
                if (ch, n) in self._is14:  # a new MSB resets the LSB (MIDI 1.0 spec)
                    values.update(self._cc14(ch, n, v << 7))
            elif 32 <= n < 64 and (ch, n - 32) in self._msb:
                self._is14.add((ch, n - 32))
                values.update(self._cc14(ch, n - 32, (self._msb[(ch, n - 32)] << 7) | v))
            self._publish(values, events, t)
        elif kind == "note_on" and msg.velocity > 0:
            vel = msg.velocity / 127.0
            self._publish({f"midi.note.{msg.note}": vel, f"{c}note.{msg.note}": vel},
                          [(f"midi.note.{msg.note}", vel), (f"{c}note.{msg.note}", vel)], t)
        elif kind in ("note_off", "note_on"):
            self._publish({f"midi.note.{msg.note}": 0.0, f"{c}note.{msg.note}": 0.0},
                          [(f"midi.note.{msg.note}.off", 1.0), (f"{c}note.{msg.note}.off", 1.0)], t)
        elif kind == "pitchwheel":
            v = msg.pitch / (8192.0 if msg.pitch < 0 else 8191.0)
            self._publish({"midi.pitchbend": v, f"{c}pitchbend": v}, (), t)
        elif kind == "aftertouch":
            v = msg.value / 127.0
            self._publish({"midi.pressure": v, f"{c}pressure": v}, (), t)
        elif kind == "program_change":
            self._publish({"midi.program": float(msg.program), f"{c}program": float(msg.program)},
                          [("midi.program", msg.program), (f"{c}program", msg.program)], t)
        return None

    def _publish(self, values: dict, events, t: float) -> None:
        self.bus.publish(values, events, t=t, source="midi")

    @staticmethod
    def _cc14(ch: int, n: int, value: int) -> dict:
        u = value / 16383.0
        return {f"midi.cc14.{n}": u, f"midi.ch{ch + 1}.cc14.{n}": u}

    def _tick(self, t: float) -> None:
        ticks = self._ticks
        if ticks and t - ticks[-1] > 1.0:  # a pause: the old ticks say nothing about the tempo now
            ticks.clear()
        ticks.append(t)
        values = {}
        if self._running:
            self._tick_count += 1
            values["midi.clock.beat"] = self._tick_count / 24.0
        if len(ticks) >= 25:
            span = ticks[-1] - ticks[0]
            if span > 0:
                bpm = 60.0 * (len(ticks) - 1) / (24.0 * span)
                if 20.0 <= bpm <= 400.0:
                    values["midi.clock.bpm"] = bpm
        if values:
            self._publish(values, (), t)

    def _transport(self, kind: str, t: float) -> None:
        values = {}
        if kind == "start":
            self._tick_count = -1  # the first tick after Start is beat 0
            values["midi.clock.beat"] = 0.0
        self._running = kind != "stop"
        values["midi.clock.running"] = 1.0 if self._running else 0.0
        self._publish(values, [(f"midi.clock.{kind}", 1.0)], t)


class MidoBackend:
    """The real ports, through mido's default backend (python-rtmidi)."""

    def get_input_names(self) -> list[str]:
        import os
        import sys
        if sys.platform.startswith("linux") and not os.path.exists("/dev/snd/seq"):
            # asking rtmidi would only print ALSA errors to stderr on every look
            raise OSError("no ALSA sequencer (/dev/snd/seq)")
        import mido
        return list(mido.get_input_names())

    def open_input(self, name: str, callback):
        import mido
        return mido.open_input(name, callback=callback)


class MidiIn:
    def __init__(self, bus, names=None, backend=None, poll: float = 1.0):
        self.bus = bus
        self.names = [n for n in (names or []) if n]
        self.backend = backend or MidoBackend()
        self.poll = poll
        self.ports: dict[str, object] = {}
        self.decoders: dict[str, MidiDecoder] = {}
        self.unavailable: str | None = None
        self.events: list[str] = []  # "connected X" / "disconnected X", for the HUD and log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wanted(self, name: str) -> bool:
        if not self.names:
            return "Midi Through" not in name  # ALSA's loopback port is never a controller
        return any(n.lower() in name.lower() for n in self.names)

    def start(self) -> "MidiIn":
        self.scan()
        self._thread = threading.Thread(target=self._run, name="midi-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=3)
        for name in list(self.ports):
            self._close(name)

    def _run(self) -> None:
        while not self._stop.wait(self.poll if self.unavailable is None else 5 * self.poll):
            try:
                self.scan()
            except Exception as e:  # noqa: BLE001 - the watcher must outlive anything
                log.error("MIDI watcher: %s", e)

    def _note(self, msg: str, level=logging.INFO) -> None:
        log.log(level, "%s", msg)
        self.events.append(msg)
        del self.events[:-8]

    def scan(self) -> None:
        """Open new ports, close and report vanished ones (hot-plug)."""
        try:
            present = [n for n in self.backend.get_input_names() if self.wanted(n)]
        except Exception as e:  # noqa: BLE001 - no ALSA sequencer, no CoreMIDI...
            if self.unavailable is None:
                self.unavailable = f"{type(e).__name__}: {e}"
                fix = "sudo modprobe snd-seq" if "ALSA sequencer" in str(e) else "vj doctor says more"
                self._note(f"MIDI unavailable ({self.unavailable}): running without MIDI in, looking again "
                           f"every few seconds; fix: {fix}, or pass --no-midi", logging.WARNING)
            return
        if self.unavailable is not None:
            self.unavailable = None
            self._note("MIDI available")
        for name in list(self.ports):
            if name not in present:
                self._close(name)
                self._note(f"MIDI device disconnected: {name} (reconnects when it is back)", logging.WARNING)
        for name in present:
            if name not in self.ports:
                dec = self.decoders.setdefault(name, MidiDecoder(self.bus, name))
                try:
                    self.ports[name] = self.backend.open_input(name, callback=dec.message)
                except Exception as e:  # noqa: BLE001
                    self._note(f"MIDI device {name} cannot be opened: {e}", logging.WARNING)
                    continue
                self._note(f"MIDI device connected: {name}")

    def _close(self, name: str) -> None:
        port = self.ports.pop(name, None)
        try:
            if port is not None:
                port.close()
        except Exception:  # noqa: BLE001 - a device already gone
            pass

    def summary(self) -> str:
        if self.unavailable:
            return "midi unavailable"
        msgs = sum(d.stats["messages"] for d in self.decoders.values())
        return f"midi {len(self.ports)} port{'' if len(self.ports) == 1 else 's'}, {msgs} msgs"
