"""The soak's fault injector: what a bad night does to a running engine, from another process.

Each fault is a method; ``Injector.step()`` picks one at random (seeded) and performs it.
Patch faults save a broken version of the running patch and, a moment later, a good one (the
performer fixing it). Learned bindings and recordings are remembered once the engine has
confirmed them (the binding appears on disk, the take is announced in the engine's log), so
the soak can check at the end that each of them survived.
"""
from __future__ import annotations

import os
import random
import socket
import struct
import time
from collections import Counter
from pathlib import Path

from pythonosc.osc_message_builder import OscMessageBuilder

GOOD = """# soak: good version {n}
def setup(p):
    p.keys = p.seeds([1, 2, 3, 4])

def frame(p, s):
    speed = p.param("speed", default=0.5, lo=0, hi=2)
    glow = p.param("glow", default=0.0)
    return p.controls(z=p.loop(p.keys, beats=8), brightness=0.2 * glow, zoom=1 + 0.05 * speed)
"""

BAD = {
    "patch_syntax": "def frame(p, s)\n    return p.controls(z=p.seed(1))\n",
    "patch_raise": "def frame(p, s):\n    raise ValueError(f'soak fault at {p.time:.3f}')\n",
    "patch_nan": "def frame(p, s):\n    return p.controls(z=p.seed(1) * float('nan'))\n",
    "patch_exit": "import sys\ndef frame(p, s):\n    raise KeyboardInterrupt\n",
    "hang_frame_loop": "def frame(p, s):\n    while True:\n        pass\n",
    "hang_frame_sleep": "import time\ndef frame(p, s):\n    time.sleep(5)\n    return p.controls(z=p.seed(1))\n",
    "hang_frame_block": "import threading\ndef frame(p, s):\n    threading.Event().wait()\n",
    "hang_setup_loop": "def setup(p):\n    while True:\n        pass\ndef frame(p, s):\n    return p.controls(z=p.seed(1))\n",
}
HANGS = ("hang_frame_loop", "hang_frame_sleep", "hang_frame_block", "hang_setup_loop")

# fault -> weight
WEIGHTS = {**{k: 2 for k in BAD}, "hang_frame_block": 1,
           "osc_garbage": 4, "osc_flood": 2, "set_cue": 3, "learn": 2, "record": 2, "midi_port": 2}


def osc(address: str, *args) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def garbage(rng: random.Random) -> list[bytes]:
    """Datagrams a broken or hostile sender makes."""
    out = [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))) for _ in range(20)]
    out += [
        b"/vj/tempo\0\0\0,f", b"#bundle\0" + b"\0" * 8 + struct.pack(">i", 1 << 30),
        b"/vj/tempo\0\0\0,X\0\0\0\0\0\0",
        osc("/vj/tempo", float("nan")), osc("/vj/tempo", float("inf")), osc("/vj/tempo", "fast"),
        osc("/vj/scene", 10 ** 6), osc("/vj/scene", "no such scene"), osc("/vj/param/nope", 0.5),
        osc("/vj/param/glow", float("-inf")), osc("/vj/learn", "glow\n"), osc("/vj/" + "x" * 4000, 1.0),
        osc("/vj/record/start", "../../etc/" + "a" * 300), osc("/vj/latent/seed", 2 ** 31 - 1),
        osc("/vj/frame", 3.0), osc("/sig/" + "y" * 500, "z" * 4000),
    ]
    nested = osc("/x", 1.0)
    for _ in range(40):
        nested = b"#bundle\0" + b"\0" * 8 + struct.pack(">i", len(nested)) + nested
    out.append(nested)
    return out


class Injector:
    def __init__(self, patch: Path, osc_port: int, mappings: Path, log_path: Path, seed: int = 1,
                 kinds: list[str] | None = None):
        self.patch, self.mappings, self.log_path = patch, mappings, log_path
        unknown = set(kinds or ()) - set(WEIGHTS)
        if unknown:
            raise ValueError(f"no such fault: {', '.join(sorted(unknown))} (known: {', '.join(WEIGHTS)})")
        self.weights = {k: w for k, w in WEIGHTS.items() if not kinds or k in kinds}
        self.rng = random.Random(seed)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.dest = ("127.0.0.1", osc_port)
        self.counts: Counter = Counter()
        self.saves = 0
        self.learned: list[str] = []      # sources the engine wrote to the mappings file
        self.learn_missed = 0             # learn armed, control moved, nothing written in time
        self.faders = 0
        self.midi_unavailable: str | None = None
        self.timeline: list[tuple[float, str]] = []  # (monotonic time, fault) as each began

    # --- helpers
    def send(self, *datagrams: bytes) -> None:
        for d in datagrams:
            try:
                self.sock.sendto(d, self.dest)
            except OSError:
                self.counts["send_errors"] += 1

    def save(self, text: str) -> None:
        """As an editor does: a whole new file, renamed over the old one."""
        tmp = self.patch.with_name(f".{self.patch.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, self.patch)
        self.saves += 1

    def save_good(self) -> None:
        self.save(GOOD.format(n=self.saves))

    def step(self) -> str:
        kinds = list(self.weights)
        kind = self.rng.choices(kinds, weights=[self.weights[k] for k in kinds])[0]
        if kind == "midi_port" and self.midi_unavailable and len(kinds) > 1:
            kind = self.rng.choice([k for k in kinds if k != "midi_port"])
        self.timeline.append((time.monotonic(), kind))
        getattr(self, kind if kind in dir(self) else "patch_fault")(kind)
        self.counts[kind] += 1
        return kind

    # --- faults
    def patch_fault(self, kind: str) -> None:
        self.save(BAD[kind])
        time.sleep(self.rng.uniform(1.0, 3.0))
        self.save_good()

    def osc_garbage(self, kind: str) -> None:
        self.send(*garbage(self.rng))

    def osc_flood(self, kind: str) -> None:
        base = self.rng.randrange(1 << 30)
        msgs = [osc(f"/flood/{base + i}", float(i)) for i in range(3000)]
        msgs += [osc("/vj/param/speed", self.rng.random()) for _ in range(200)]
        self.send(*msgs)

    def set_cue(self, kind: str) -> None:
        choice = self.rng.choice([("/vj/cue/next",), ("/vj/cue/prev",), ("/vj/scene", "one"), ("/vj/scene", "two")])
        self.send(osc(*choice))

    def learn(self, kind: str) -> None:
        self.faders += 1
        address = f"/soak/fader/{self.faders}"
        source = f"osc.{address}"
        self.send(osc("/vj/learn", self.rng.choice(["glow", "speed"])))
        time.sleep(0.3)
        self.send(osc(address, 0.2))
        time.sleep(0.1)
        self.send(osc(address, 0.7))
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            if source in self.bound_sources():
                self.learned.append(source)
                return
            time.sleep(0.1)
        self.learn_missed += 1
        self.send(osc("/vj/learn/cancel"))

    def record(self, kind: str) -> None:
        self.send(osc("/vj/record/start", "soak"))
        time.sleep(self.rng.uniform(1.0, 4.0))
        self.send(osc("/vj/record/stop"))

    def midi_port(self, kind: str) -> None:
        try:
            import mido
            port = mido.open_output(f"soak {self.counts[kind]}", virtual=True)
        except Exception as e:  # noqa: BLE001 - no ALSA sequencer on this machine, no backend
            self.midi_unavailable = f"{type(e).__name__}: {e}"
            return
        try:
            time.sleep(self.rng.uniform(1.2, 2.5))  # the engine looks for new ports once a second
            for v in range(0, 128, 8):
                port.send(mido.Message("control_change", control=7, value=v))
                time.sleep(0.01)
        finally:
            port.close()

    # --- what survived
    def bound_sources(self) -> set[str]:
        """Every source bound in the mappings file and its learned companion (parsed the way a
        user would check them: as TOML)."""
        import tomllib
        out = set()
        for path in (self.mappings, self.mappings.with_name(self.mappings.name.replace(".toml", ".learned.toml"))):
            try:
                doc = tomllib.loads(path.read_text())
            except (OSError, ValueError):
                continue
            for b in doc.get("binding", []):
                if isinstance(b, dict) and isinstance(b.get("source"), str):
                    out.add(b["source"])
        return out

    def takes_announced(self) -> list[Path]:
        """The takes the engine said it was recording to."""
        out = []
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return out
        for line in text.splitlines():
            if "recording to " in line and line.rstrip().endswith(".mp4"):
                out.append(Path(line.split("recording to ", 1)[1].strip()))
        return out
