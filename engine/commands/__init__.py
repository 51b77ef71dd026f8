"""One module per ``vj`` command, each a thin layer over a Session (engine/session.py).

Only the entry point (engine/cli.py) imports these. What several commands share lives here.
"""
from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

from engine import paths

log = logging.getLogger("vj")


def open_session(options):
    """A Session for these options, or None when it cannot be built (the reason is logged)."""
    from engine.session import Session, SessionError
    try:
        return Session(options)
    except SessionError as e:
        log.error("%s", e)
        return None


def resolve_patch(spec: str | None) -> Path:
    if spec is None:
        return paths.PATCHES / "drift.py"
    p = Path(spec)
    for candidate in (p, paths.PATCHES / p, paths.PATCHES / f"{spec}.py"):
        try:
            if candidate.is_file():
                return candidate.resolve()
        except (OSError, ValueError):  # a name too long for the file system, a NUL in it
            continue
    print(f"vj: patch not found: {spec if len(spec) <= 200 else spec[:197] + '...'}", file=sys.stderr)
    raise SystemExit(2)


def terminate_gracefully() -> None:
    # SIGTERM (a service manager, `kill`) unwinds like Ctrl-C so recordings are closed.
    # Ctrl-C itself is restored too: a shell starting us in the background sets it to ignored.
    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
