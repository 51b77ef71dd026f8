"""What the engine accepts at its edges: numbers finite and in range, the same for the command
line and set files, and values quoted short in error messages."""
from __future__ import annotations

import argparse
import json
import re


def shown(value, limit: int = 40) -> str:
    """A value as a person typed it (TOML's quoting for strings), cut short: error messages
    quote what was given without letting a hostile one flood the terminal."""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, dict):
        text = "a table"
    elif isinstance(value, list):
        text = "an array"
    else:
        text = str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."

# a patch parameter's name. \A..\Z, not ^..$: "$" also matches before a trailing newline,
# and "speed\n" is no name
NAME_RE = re.compile(r"\A[a-z0-9_][a-z0-9_.-]{0,63}\Z")


class Number:
    """A number the engine accepts at its edge: finite and within ``lo..hi``.

    The one check for the command line (an instance is an argparse ``type``, given the text)
    and for set files (``check``, given the value TOML parsed), so both refuse the same
    numbers with the same words, before anything runs."""

    def __init__(self, lo: float, hi: float, integer: bool = False):
        self.lo, self.hi, self.integer = lo, hi, integer

    def describe(self) -> str:
        if self.integer:
            return f"an integer in {self.lo}..{self.hi}"
        return f"a number in {self.lo:g}..{self.hi:g}"

    def check(self, value):
        """``value`` when it is such a number (a float when not ``integer``), else ValueError."""
        kinds = int if self.integer else (int, float)
        # bool is an int to Python, never a number to a person writing `fps = true`. The
        # finite bounds refuse nan and inf too; comparing, unlike float(), never overflows
        # on an integer of hundreds of digits.
        if isinstance(value, bool) or not isinstance(value, kinds) or not self.lo <= value <= self.hi:
            raise ValueError(f"expected {self.describe()}, got {shown(value)}")
        return value if self.integer else float(value)

    def __call__(self, text: str):
        try:
            return self.check(int(text) if self.integer else float(text))
        except ValueError:  # not a number at all, or out of range: one message for both
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {shown(text)}") from None


# What the engine can honour: the clock's tempo range (engine/signals/clock.py), frame
# rates a display or a render can use, UDP/TCP ports (0: any free one).
FPS = Number(1, 240)
BPM = Number(20, 400)
FRAMES = Number(1, 10 ** 9, integer=True)
PORT = Number(0, 65535, integer=True)
RATE = Number(0.01, 1000)                  # Hz: OSC out state updates
MONITOR = Number(0, 255, integer=True)
PSI = Number(-10, 10)                      # truncation; beyond a few units it is noise
CUTOFF = Number(0, 1024, integer=True)     # style layers
SEED = Number(0, 2 ** 32 - 1, integer=True)
SOAK_MINUTES = Number(0.1, 7 * 24 * 60)     # a week: the longest installation run worth rehearsing
WORKERS = Number(1, 1024, integer=True)    # vj render --workers
block_size = Number(32, 16384, integer=True)   # audio samples per analysis block


def parse_size(text: str) -> tuple[int, int]:
    """``WxH``, each side 16..8192 pixels: the frame sizes the generator, the shader chain and
    the encoder can all work with. Used by ``--size`` and by a set file's ``size``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:  # not two integers (``int`` also refuses inf, nan and 4300+ digits)
        w = h = 0
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        given = text if len(text) <= 40 else text[:37] + "..."
        raise argparse.ArgumentTypeError(f"must be WxH with each side 16..8192 (like 1280x720), got \"{given}\"")
    return w, h
