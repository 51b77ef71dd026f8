"""Loading, hot-reloading and isolating patches.

The render thread only ever calls ``PatchHost.frame(snapshot)``, which always returns
usable Controls. A watcher thread polls the patch file; when it changes, the new
source is compiled and its ``setup`` run off the render thread, then offered to the
render thread. A patch that fails to compile, fails in setup, raises in frame, or
returns NaN/inf is reported once and the last good patch keeps running; if even that
one fails on a frame, the last good Controls are drawn again. Frames never stop.

Patch code never runs on the render thread or the watcher thread: ``frame`` runs on a
worker thread and the render thread waits for it at most ``frame_budget``; loading (the
module body and ``setup``) runs on a thread of its own, waited for at most ``setup_budget``
(engine/patching/watchdog.py). A version that misses its frame budget is retired for good
and the last good version before it takes over on the next frame; one that misses its setup
budget is not loaded. Whatever patch code raises, ``KeyboardInterrupt`` and ``SystemExit``
too, is a patch error: only a real Ctrl-C, which arrives on the render thread, stops the loop.

A new version of the running file keeps the patch's state: when the render thread takes
it over, :func:`engine.patching.api.carry_state` gives it the running version's state
(docs/patches.md, "Live edits keep state"). A scene change (:meth:`PatchHost.switch`)
starts fresh.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.paths import file_stamp
from engine.patching.api import Controls, PatchContext, SignalWatch, as_controls, carry_state, setup_record
from engine.patching.params import ParamSet
from engine.patching.watchdog import Missed, PatchTimeout, Worker, bounded, nag
from engine.reporting import Once, Rate

log = logging.getLogger("vj.patch")


class PatchError(Exception):
    pass


@dataclass
class LoadedPatch:
    path: Path
    module: types.ModuleType
    ctx: PatchContext
    version: int
    proven: bool = False  # has produced at least one good frame
    retired: bool = False  # missed its frame budget: never run again
    setup_state: dict | None = None  # fingerprints of what setup(p) made (api.setup_record)
    carry: bool = False   # a new version of the running file: takes over its state
    source: str = ""      # the text it was compiled from (a show recording keeps it)
    signals: SignalWatch | None = None  # warns of signal names it reads that nothing publishes
    scene: str | None = None  # the scene change that loaded it ("" unnamed; None: first load or live edit)

    @property
    def name(self) -> str:
        return self.path.stem


def shown_path(path: Path) -> str:
    """``patches/pulse.py`` under the working folder, the whole path elsewhere."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def describe_exception(e: BaseException, path: Path) -> str:
    """``file:line: Type: message`` pointing at the innermost line of the patch file."""
    if isinstance(e, SyntaxError) and e.lineno:
        return f"{path.name}:{e.lineno}: SyntaxError: {e.msg}"
    where = ""
    for fr in traceback.extract_tb(e.__traceback__):
        if Path(fr.filename).resolve() == path.resolve():
            where = f"{path.name}:{fr.lineno}: "
    return f"{where or path.name + ': '}{type(e).__name__}: {e}"


def compile_patch(path: Path, model_info, version: int, report, params=None,
                  base: LoadedPatch | None = None, space=None, warn=None) -> LoadedPatch:
    """Read, compile, execute the module body and run setup(p) on a fresh context; raise
    PatchError with a one-line description on any failure. With ``base`` (the running
    version of the same file) the new context shares its frame clock and the result is
    marked to take over its state when it is swapped in (nothing of ``base`` is touched
    here: this runs off the render thread). ``space`` is the model's LatentSpace
    (engine/latent/space.py) for ``p.w``, ``p.direction`` and friends, or None. ``warn(text)``
    hears of signal names this version reads that nothing publishes (api.SignalWatch)."""
    path = Path(path).resolve()
    try:
        source = path.read_text()
        code = compile(source, str(path), "exec")
        module = types.ModuleType(f"vj_patch_{path.stem}_{version}")
        module.__file__ = str(path)
        exec(code, module.__dict__)
        if not callable(module.__dict__.get("frame")):
            raise PatchError(f"{path.name}: defines no frame(p, s) function")
        ctx = PatchContext(model_info, name=path.stem, report=report, params=params,
                           frame_time=base.ctx._ft if base is not None else None, space=space)
        setup = module.__dict__.get("setup")
        if callable(setup):
            setup(ctx)
        record = setup_record(ctx)
    except (PatchError, PatchTimeout):
        raise
    except BaseException as e:  # noqa: BLE001 - user code may raise anything, KeyboardInterrupt and SystemExit too
        raise PatchError(describe_exception(e, path)) from e
    return LoadedPatch(path=path, module=module, ctx=ctx, version=version, setup_state=record,
                       carry=base is not None, source=source,
                       signals=SignalWatch(path, warn if warn is not None else (lambda text: None)))


class PatchHost:
    FRAME_BUDGET = 0.25   # s a frame waits for the patch's frame(p, s) (docs/patches.md)
    OFFLINE_FRAME_BUDGET = 10.0  # s, vj render and vj bench
    SETUP_BUDGET = 5.0    # s a load waits for the module body and setup(p)
    KEEP_GOOD = 4         # proven versions kept to fall back on

    def __init__(self, path, model_info, on_message=None, poll: float = 0.2, params=None,
                 frame_budget: float | None = None, setup_budget: float | None = None, space=None):
        self.path = Path(path).resolve()
        self.space = space  # the model's LatentSpace, handed to every version's p (None: no p.w, p.direction)
        # patch parameters live as long as the host, across reloads and scenes (engine/patching/params.py)
        self.params = params if params is not None else ParamSet()
        self.model_info = model_info
        self.poll = poll
        self._on_message = on_message
        self.frame_budget = frame_budget or self.FRAME_BUDGET
        self.setup_budget = setup_budget or self.SETUP_BUDGET
        self._reported = Once(256)
        self._rate = Rate(per_second=2.0, burst=10)
        self._report_lock = threading.Lock()
        self._worker: Worker | None = None
        self._good: list[LoadedPatch] = []  # proven versions, newest last
        self._frame_error: tuple[float, str] | None = None  # the last frame() failure (time, text)
        self.last_error: str | None = None
        self.last_message: tuple[float, str] | None = None  # (monotonic time, text) for the HUD
        self.active: LoadedPatch | None = None
        self.last_good: LoadedPatch | None = None
        self._pending: LoadedPatch | None = None
        self._lock = threading.Lock()
        self._version = 0
        self._mtime = None
        self._last_controls: Controls | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fresh = False  # a scene change is under way: its patch starts with no carried state
        self._scene: str | None = None  # ... and what the log calls it
        self.errors = 0
        self.reloads = 0
        self.carried: dict | None = None  # what the last live edit kept, replaced, dropped, carried

    # reporting
    def report(self, message: str, level=logging.ERROR) -> None:
        """Log a message once; a repeat of the same text is counted but not printed again. Only
        the latest 256 texts are remembered, and at most two lines a second (after a burst of
        ten) are printed: a text that changes every frame cannot flood the log or the memory."""
        with self._report_lock:  # patch code reports from its own thread (p.log)
            if level >= logging.ERROR:
                self.errors += 1
                self.last_error = message
            else:
                self.last_message = (time.monotonic(), message)
            if not self._reported.first(message) or not self._rate.allow():
                return
            held = self._rate.take_held()
        log.log(level, "%s%s", message, f" ({held} more not shown)" if held else "")
        if self._on_message:
            self._on_message(message, level)

    def clear_error(self, message: str) -> None:
        """The problem behind ``message`` is gone: stop showing it (and report it anew if it comes back)."""
        with self._report_lock:
            if self.last_error == message:
                self.last_error = None
            self._reported.discard(message)

    def _stat(self):
        return file_stamp(self.path)

    # loading
    def load(self) -> bool:
        """Compile the file now (also used for the first load); True on success. A new
        version of the running file will take over the running version's state; the
        first load and a scene change start fresh."""
        self._mtime = self._stat()
        self._version += 1
        self._reported.clear()  # "once" means once per save of the file
        running = self.active
        base = running if running is not None and running.path == self.path and not self._fresh else None
        scene = (self._scene or "") if self._fresh else None
        try:
            stamp = self._mtime
            patch = bounded(self.setup_budget, compile_patch, self.path, self.model_info, self._version,
                            lambda m: self.report(m, logging.INFO), self.params, base, self.space,
                            lambda m: self.report(m, logging.WARNING), path=self.path,
                            # a newer save while this one is stuck: stop waiting, load that instead
                            give_up=lambda: self._thread is not None and self._stat() not in (stamp, None))
        except Missed as e:
            self._not_loaded(f"{self.path.name}: loading (module body and setup) {e}")
            return False
        except PatchError as e:
            self._not_loaded(str(e))
            return False
        patch.scene = scene
        with self._lock:
            self._pending = patch
        return True

    def trial(self, snapshot) -> str | None:
        """Load a fresh copy of the file (its own context, parameters and state: nothing of the
        running version is touched, nothing is reported) and run its ``frame`` once on
        ``snapshot``, under the same budgets. None when it draws, else what went wrong, as the
        patch errors are written. ``vj render`` asks this before it analyses a whole song."""
        try:
            patch = bounded(self.setup_budget, compile_patch, self.path, self.model_info, 0, lambda m: None,
                            ParamSet(), None, self.space, name="patch-trial", path=self.path)
        except Missed as e:
            return f"{self.path.name}: loading (module body and setup) {e}"
        except PatchError as e:
            return str(e)
        try:
            ok, out = bounded(self.frame_budget, self._run, patch, snapshot, name="patch-trial", path=self.path)
        except Missed as e:
            return f"{self.path.name}: frame() {e}"
        if not ok:
            return describe_exception(out, patch.path)
        return None

    def _not_loaded(self, why: str) -> None:
        self.report(f"patch not loaded, {'keeping the last good one' if self.last_good else 'no patch running'}: {why}")

    def check(self) -> bool:
        """Reload if the file changed since the last look; True if a reload was attempted."""
        st = self._stat()
        if st is None or st == self._mtime:
            return False
        self.load()
        return True

    def switch(self, path, scene: str | None = None) -> None:
        """Run another patch file (a scene change; ``scene`` is what the log calls it, e.g.
        ``2 'drop'``). With the watcher running it compiles the file off the render thread
        within one poll; the current patch runs until then."""
        self.path = Path(path).resolve()
        self._scene = scene
        self._fresh = True  # a scene starts fresh, even when it is the same file
        self._mtime = None  # the current patch runs until the new one has loaded and drawn
        if self._thread is None:
            self.load()

    def start_watching(self) -> "PatchHost":
        def watch():
            while not self._stop.wait(self.poll):
                try:
                    self.check()
                except Exception as e:  # noqa: BLE001 - the watcher must outlive anything
                    self.report(f"patch watcher: {type(e).__name__}: {e}")
        self._thread = threading.Thread(target=watch, name="patch-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    @property
    def ready(self) -> bool:
        """A patch has loaded (it may not have drawn a frame yet)."""
        return self.active is not None or self._pending is not None

    @property
    def name(self) -> str:
        p = self.active or self.last_good
        return p.name if p else self.path.stem

    # per frame, render thread
    def _take_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            old = self.active
            if old is not None:
                self.reloads += 1
            if pending.carry:
                self._carry(old, pending)
            else:
                self._fresh = False  # the scene change has arrived
            self.active = pending

    def _carry(self, old: LoadedPatch | None, new: LoadedPatch) -> None:
        """A live edit: the new version takes over the running version's state."""
        if (old is None or old.path != new.path or old.ctx._ft is not new.ctx._ft
                or old.setup_state is None):
            return
        try:
            self.carried = carry_state(old.ctx, old.setup_state, new.ctx, new.setup_state)
        except Exception as e:  # noqa: BLE001 - never lose a frame over it: the new version starts fresh
            self.report(f"{new.path.name}: state not carried over ({type(e).__name__}: {e})", logging.WARNING)

    @staticmethod
    def _run(patch: LoadedPatch, snapshot):
        """On the worker thread: (True, Controls) or (False, what the patch raised)."""
        try:
            s = patch.signals.view(snapshot) if patch.signals is not None else snapshot
            patch.ctx._begin(s)
            controls = as_controls(patch.module.frame(patch.ctx, s))
            controls.check()
            return True, controls
        except PatchTimeout:
            raise
        except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt and SystemExit from a patch are its errors
            return False, e

    def frame(self, snapshot, fallback: Controls | None = None) -> Controls:
        nag()  # threads of patches left behind are asked again to stop (vj render has no watcher)
        self._take_pending()
        patch = self.active
        if patch is None:
            return self._fallback(fallback)
        if self._worker is None:
            self._worker = Worker("patch-frame")
        try:
            ok, out = self._worker.call(self.frame_budget, self._run, patch, snapshot, path=patch.path)
        except Missed as e:
            self._worker = None  # abandoned: the next frame runs on a fresh thread
            self._retire(patch, f"{patch.path.name}: frame() {e}")
            return self._fallback(fallback)
        if not ok:
            msg = describe_exception(out, patch.path)
            self._frame_error = (time.monotonic(), msg)
            if not patch.proven and self.last_good is not None and self.last_good is not patch:
                self.report(f"{msg}; back to the last good patch (v{self.last_good.version})")
                self.active = self.last_good
            else:
                self.report(msg)
            return self._fallback(fallback)
        if not patch.proven:
            patch.proven = True
            if self.last_good is not None and self.last_good is not patch:
                if patch.scene:
                    log.info("scene %s (%s)", patch.scene, shown_path(patch.path))
                elif patch.scene is not None:
                    log.info("scene change: patch %s", shown_path(patch.path))
                else:  # "reloaded" only ever means the file was saved again
                    log.info("patch %s reloaded (v%d)", patch.name, patch.version)
            self.last_good = patch
            self._good = [g for g in self._good if g is not patch][-(self.KEEP_GOOD - 1):] + [patch]
            self.last_error = None
        elif self._frame_error is not None and time.monotonic() - self._frame_error[0] > 1.0:
            # a second of good frames since the last failure: the HUD stops showing it
            with self._report_lock:
                if self.last_error == self._frame_error[1]:
                    self.last_error = None
            self._frame_error = None
        self._last_controls = controls = out
        return controls

    def _retire(self, patch: LoadedPatch, why: str) -> None:
        """``patch`` missed its frame budget: it never runs again; the newest good version
        before it takes over (or, if there is none, the last controls are held)."""
        patch.retired = True
        self._good = [g for g in self._good if not g.retired]
        back = self._good[-1] if self._good else None
        self.active = back
        self.last_good = back
        if back is not None:
            self.report(f"{why}; back to the last good patch (v{back.version})")
        else:
            self.report(f"{why}; holding the last picture until the patch is saved again")

    def _fallback(self, fallback: Controls | None) -> Controls:
        if self._last_controls is not None:
            return self._last_controls
        if fallback is None:
            fallback = Controls(z=np.zeros(self.model_info.z_dim, dtype=np.float32))
        return fallback
