"""Patch code runs on a thread the engine can stop waiting for.

Python cannot kill a thread, so a patch that loops or blocks cannot be stopped; it can only
be left behind. :class:`Worker` runs patch calls on its own daemon thread and the caller
waits at most a budget for each. When the budget runs out the caller abandons the worker
(its next call goes to a fresh one) and asks the stuck thread to stop by raising
:class:`PatchTimeout` in it: a pure-Python loop stops at once, a blocking call (a sleep, a
lock, a wait in C code) stops when it returns, and one that never returns stays parked,
costing nothing but its memory. Abandoned threads that are still running are asked again
once a second (:func:`nag`), so a patch that catches the first request still stops.

The hand-off uses ``queue.SimpleQueue``, whose ``put`` and ``get`` are C calls: the exception
raised in an abandoned thread can never leave a Python-level lock held that the render
thread would then wait on for ever.
"""
from __future__ import annotations

import ctypes
import itertools
import linecache
import os
import queue
import sys
import threading
import time
from pathlib import Path


class PatchTimeout(BaseException):
    """Raised in a patch thread the engine stopped waiting for. A BaseException, so that a
    patch's ``except Exception:`` does not swallow it."""


class Missed(Exception):
    """A call did not return within its budget; ``where`` is the patch line it was on."""

    def __init__(self, budget: float, where: str, superseded: bool = False):
        what = "was replaced by a newer save before it returned" if superseded else \
            f"did not return within {budget:g} s"
        super().__init__(what + (f" (stuck at {where})" if where else ""))
        self.budget, self.where, self.superseded = budget, where, superseded


_STOP = object()
STARVED_GRACE = 3.0  # a call starved of CPU may run this many budgets longer (0.25 s -> 1 s in all)
_abandoned: list[tuple[threading.Thread, list[float]]] = []
_abandoned_lock = threading.Lock()
_ids = itertools.count(1)


def _lower_priority(thread: threading.Thread) -> None:
    """The lowest CPU priority for this thread (Linux: each thread has its own nice value): on a
    machine with two cores, a patch that spins would otherwise take half of it from the frames."""
    try:
        if thread.native_id is not None:
            os.setpriority(os.PRIO_PROCESS, thread.native_id, 19)
    except (AttributeError, OSError):
        pass  # not Linux, or not allowed: the budget still bounds it


def _raise_in(thread: threading.Thread) -> None:
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(PatchTimeout))


def where(thread: threading.Thread, path: Path | None) -> str:
    """``file:line`` of the innermost frame of ``thread`` in the patch file (else its innermost
    frame): what the one-line report names."""
    frame = sys._current_frames().get(thread.ident or -1)
    found = inner = None
    while frame is not None:
        inner = inner or frame
        if path is not None and found is None and Path(frame.f_code.co_filename) == path:
            found = frame
        frame = frame.f_back
    hit = found or inner
    if hit is None:
        return ""
    text = linecache.getline(hit.f_code.co_filename, hit.f_lineno).strip()
    return f"{Path(hit.f_code.co_filename).name}:{hit.f_lineno}" + (f" `{text[:60]}`" if text else "")


def _cpu_seconds(thread: threading.Thread) -> float | None:
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    except (AttributeError, OSError, TypeError, OverflowError):  # not Linux, or the thread is gone
        return None


def _runnable(thread: threading.Thread) -> bool:
    """Whether the thread is running or waiting for a CPU (Linux: its state in /proc is R), as
    opposed to sleeping or blocked."""
    try:
        with open(f"/proc/self/task/{thread.native_id}/stat") as f:
            stat = f.read()
        return stat[stat.rindex(")") + 2] == "R"
    except (OSError, ValueError, IndexError):
        return False


def starved(thread: threading.Thread, cpu_before: float | None, budget: float) -> bool:
    """The call missed its budget because the machine gave it no CPU, not because it hangs:
    the thread is ready to run yet has used under half its budget of CPU time."""
    if cpu_before is None or not _runnable(thread):
        return False
    used = _cpu_seconds(thread)
    return used is not None and used - cpu_before < budget / 2


def nag() -> int:
    """Ask every abandoned thread that is still running to stop, at most once a second each;
    the number still running."""
    now = time.monotonic()
    with _abandoned_lock:
        _abandoned[:] = [(t, last) for t, last in _abandoned if t.is_alive()]
        for t, last in _abandoned:
            if now - last[0] >= 1.0:
                last[0] = now
                _raise_in(t)
        return len(_abandoned)


class Worker:
    """One daemon thread running calls one at a time; ``call`` waits at most ``budget``."""

    def __init__(self, name: str = "patch", background: bool = False):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._seq = 0
        self.thread = threading.Thread(target=self._loop, name=f"{name}-{next(_ids)}", daemon=True)
        self.thread.start()
        if background:  # a load: it may take its time, the frames may not
            _lower_priority(self.thread)

    def _loop(self) -> None:
        try:
            while (job := self._jobs.get()) is not _STOP:
                seq, fn, args = job
                try:
                    out = (seq, True, fn(*args))
                except BaseException as e:  # noqa: BLE001 - patch code may raise anything, SystemExit too
                    out = (seq, False, e)
                self._done.put(out)
        except PatchTimeout:
            pass  # abandoned and told to stop

    def call(self, budget: float, fn, *args, path: Path | None = None, give_up=None):
        """``fn(*args)``'s result; re-raises what it raised; raises :class:`Missed` (and
        abandons this worker) if it has not returned after ``budget`` seconds, or as soon as
        ``give_up()`` (asked every 0.1 s) is true."""
        self._seq += 1
        cpu_before = _cpu_seconds(self.thread)
        self._jobs.put((self._seq, fn, args))
        deadline = time.monotonic() + budget
        grace = STARVED_GRACE * budget
        while True:
            left = deadline - time.monotonic()
            try:
                seq, ok, value = self._done.get(timeout=max(0.0, min(left, 0.1) if give_up else left))
            except queue.Empty:
                gave_up = give_up is not None and give_up()
                if not gave_up and time.monotonic() < deadline:
                    continue
                if not gave_up and grace and starved(self.thread, cpu_before, budget):
                    # an overloaded machine is no reason to retire a good patch: once, a little longer
                    deadline, grace = deadline + grace, 0.0
                    continue
                stuck_at = where(self.thread, path)
                self.abandon()
                raise Missed(budget, stuck_at, superseded=gave_up) from None
            if seq == self._seq:
                break  # (an older result is one whose wait a Ctrl-C cut short)
        if not ok:
            raise value
        return value

    def abandon(self) -> None:
        self._jobs.put(_STOP)
        _lower_priority(self.thread)
        _raise_in(self.thread)
        with _abandoned_lock:
            _abandoned.append((self.thread, [time.monotonic()]))

    def close(self) -> None:
        self._jobs.put(_STOP)


LOAD_SWITCH_INTERVAL = 0.0001  # s; see bounded()


def bounded(budget: float, fn, *args, name: str = "patch-load", path: Path | None = None, give_up=None):
    """Run ``fn(*args)`` on a thread of its own and wait at most ``budget`` for it (a load or a
    reload: rare enough that a thread each is cheap).

    While it runs, the interpreter switches threads more often: a setup that spins in Python
    holds the GIL for a whole switch interval each time the render thread lets go of it (every
    GL call, every torch op), and at the default 5 ms that slows frames several-fold."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, LOAD_SWITCH_INTERVAL))
    w = Worker(name, background=True)
    try:
        return w.call(budget, fn, *args, path=path, give_up=give_up)
    finally:
        w.close()
        sys.setswitchinterval(before)
