"""Reading gzip'd JSON-lines files that may be hostile: the guarded line reader shared by the
hand recordings (``hand_record.py``) and the show's signal recordings (``show/signal_file.py``).

Every limit is checked before memory is spent: a line is read at most ``max_line`` bytes at a
time (a longer one is skipped in chunks, never held whole), the decompressed total is capped
(a gzip bomb is refused, not inflated), and a file cut short by a crash (no gzip trailer, a
half-written last line) ends the stream quietly with a count instead of an error. Nothing here
interprets the lines: the caller parses them with ``json.loads`` and nothing else.
"""
from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

_CHUNK = 64 * 1024


def utc_stamp() -> str:
    """The ``created`` field of a header: UTC, to the second (no local time zone in the file)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class GzipLines:
    """Lines of a gzip file, streamed: each at most ``max_line`` bytes (a longer one is skipped
    whole, counted in ``long_lines`` and yielded as None so the caller can count a bad line),
    decompressed total capped at ``max_bytes``, a missing trailer tolerated (``truncated``).
    Errors are raised as ``error`` (the caller's exception class) and name the file as ``what``."""

    def __init__(self, path, max_bytes: int, stats: Counter, max_line: int,
                 error: type[Exception] = ValueError, what: str = "JSON-lines"):
        self.path, self.max_bytes, self.stats = Path(path), max_bytes, stats
        self.max_line, self.error, self.what = max_line, error, what

    def _read(self, gz, size: int, total: int) -> bytes | None:
        """The next line (at most ``size`` bytes), or None at the end: a missing trailer (a recorder
        that crashed) is ``truncated``, damage after a good start ``corrupt``."""
        try:
            line = gz.readline(size)
        except EOFError:
            self.stats["truncated"] += 1
            return None
        except (gzip.BadGzipFile, zlib.error, OSError) as e:
            if total == 0:
                raise self.error(f"not a gzip {self.what} file ({e})") from None
            self.stats["corrupt"] += 1
            return None
        if total + len(line) > self.max_bytes:
            raise self.error(f"over {self.max_bytes} bytes decompressed")
        return line

    def __iter__(self):
        total = 0
        try:
            raw = open(self.path, "rb")
        except OSError as e:
            raise self.error(f"cannot open {self.path}: {e.strerror}") from None
        with raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            while True:
                line = self._read(gz, self.max_line + 1, total)
                if not line:
                    return
                total += len(line)
                if len(line) > self.max_line:
                    # skip the rest of this line without holding it
                    self.stats["long_lines"] += 1
                    while not line.endswith(b"\n"):
                        line = self._read(gz, _CHUNK, total)
                        if not line:
                            return
                        total += len(line)
                    yield None
                    continue
                if not line.endswith(b"\n"):
                    self.stats["truncated"] += 1   # the last line was cut short
                    return
                yield line


def check_header(line: bytes | None, fmt: str, version: int, error: type[Exception] = ValueError) -> dict:
    """The header line parsed and checked: a JSON object with ``format`` == ``fmt`` and ``version``
    == ``version`` (an int, not a bool), else ``error``."""
    try:
        head = json.loads(line) if line else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        head = None
    if not isinstance(head, dict) or head.get("format") != fmt:
        raise error(f"not a {fmt} file (bad header)")
    if head.get("version") != version or isinstance(head.get("version"), bool):
        raise error(f"unsupported {fmt} version {str(head.get('version'))[:20]}")
    return head
