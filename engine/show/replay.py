"""A live show recorded as its inputs (``vj run --record-signals FILE``) and played again offline
(``vj render --signals FILE``), frame-exact, at any size, frame rate or with another model.

Live, ``SignalRecordStage`` writes each frame's snapshot (engine/show/signal_file.py: every
channel and event the frame consumed: audio features, OSC, MIDI, hands, keys, cues, tempo)
with what the engine did that is not an input, as notes: a patch's source text on the first
frame that runs it (so a live edit replays on the frame it took over, with the state it
carried), and the mappings' bindings whenever they change (learn). The header says what was
played: the patch or set, the model, size, fps, the scene the set started in and the
parameter values it had kept.

Offline, the session's clock and bus are the recording's (``ReplayClock``, ``ReplayBus``),
the patches are compiled from the recorded texts, and ``ReplayStage`` (the first stage)
applies each frame's notes before the patch runs. Recorded patch texts are code: a replay
runs them only when each is the text of its file on disk now, or with ``--trust``.
"""
from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

log = logging.getLogger("vj")


class ReplayError(Exception):
    pass


class SignalNotesStage:
    """Last of the front stages: notes what ran (a patch version first run, bindings changed,
    parameter values the session set) beside the frame, for ``SignalRecordStage``."""

    name = "signal notes"

    def __init__(self, hosts: list, params, applied: list):
        self.hosts, self.params = hosts, params
        self.applied = applied    # ("params", values) the session set on entering a scene
        self._active = [None] * len(hosts)
        self._bindings = None

    def run(self, frame) -> None:
        notes = list(self.applied)
        self.applied.clear()
        for i, host in enumerate(self.hosts):
            patch = host.active
            if patch is not None and patch is not self._active[i]:
                self._active[i] = patch
                notes.append(("patch", {"scene": i, "path": str(host.path), "source": patch.source}))
        # a change of bindings (an edit, learn) replaces the whole list, never edits it in place:
        # holding the list noted last tells a change without serialising them every frame
        bindings = self.params.bindings
        if bindings is not self._bindings:
            self._bindings = bindings
            notes.append(("mappings", [b.saved() for b in bindings]))
        frame.notes = notes


class SignalRecordStage:
    """A back stage: the frame's snapshot and notes, once the frame is finished (a frame still
    in flight when the show stops is in neither the video nor the recording)."""

    name = "signal recording"

    def __init__(self, recorder, clock):
        self.recorder, self.clock = recorder, clock

    def run(self, frame) -> None:
        self.recorder.record(frame.snap, frame.notes, now=self.clock.input_now())


class ReplayStage:
    """First stage of a replayed frame: the recorded patch versions and bindings, on their frames."""

    name = "replay"

    def __init__(self, hosts: list, files: list[Path], params, report=None):
        self.hosts, self.files, self.params = hosts, files, params
        self._report = report or (lambda msg: log.error("%s", msg))

    def run(self, frame) -> None:
        for kind, data in frame.snap.extra.get("notes", ()):
            try:
                self._apply(kind, data, frame.snap.frame)
            except (TypeError, ValueError, KeyError, IndexError, AttributeError, OSError) as e:
                # a note vj did not write: said, skipped; the show goes on
                self._report(f"replay: frame {frame.snap.frame}: a {kind!r} note cannot be used "
                             f"({type(e).__name__}: {e})")

    def _apply(self, kind, data, k: int) -> None:
        from engine.patching.params import Binding
        if kind == "patch":
            i = data["scene"]
            if k == 0 and self.hosts[i].active is not None:
                return   # the version the session opened with
            self.files[i].write_text(data["source"])
            self.hosts[i].load()   # taken over by this frame's patch stage, state carried as live
        elif kind == "mappings":
            self.params.set_bindings([Binding(**b) for b in data])
        elif kind == "params" and k > 0:   # frame 0's were set before the show
            self.params.apply(dict(data))


def header(options, recorder_fps: float) -> dict:
    """What a recording says about the show it holds."""
    o = options
    return {"fps": recorder_fps, "size": list(o.size), "model": o.model if isinstance(o.model, str) else None,
            "patch": str(o.patch), "set": str(o.setlist.path) if o.setlist is not None else None,
            "scene": o.setlist.index if o.setlist is not None else None, "bpm": o.bpm,
            "state": str(o.state) if o.state is not None else None}


class Prepared:
    """A recording made ready to render: the replay, the patch files to compile (the recorded
    texts, in a folder of their own), the set list, and what the header says."""

    def __init__(self, path, trust: bool = False):
        from engine.show.signal_file import SignalReplay, read_signal_file
        self.file = read_signal_file(path)
        if not self.file.frames:
            raise ReplayError(f"{path}: no frames recorded")
        h = self.header = self.file.header
        self.replay = SignalReplay(self.file)
        self.folder = Path(tempfile.mkdtemp(prefix="vj-replay-"))
        firsts: dict[int, dict] = {}
        changed = []
        for fr in self.file.frames:
            for kind, data in fr.notes:
                if kind != "patch" or not isinstance(data, dict):
                    continue
                if not isinstance(data.get("scene"), int) or not isinstance(data.get("source"), str) \
                        or not isinstance(data.get("path"), str):
                    raise ReplayError(f"{path}: a patch note of frame {fr.frame} is not one vj writes")
                firsts.setdefault(data["scene"], data)
                if not _same_as_disk(data):
                    changed.append(f"{Path(data['path']).name} (frame {fr.frame})")
        if not firsts:
            raise ReplayError(f"{path}: no patch recorded")
        if changed and not trust:
            raise ReplayError(f"{path} holds patch code that differs from the files on disk now: "
                              f"{', '.join(sorted(set(changed))[:6])}. It runs only with --trust (a recording "
                              "is code, like a patch: trust it as you would its author's patches)")
        self.start_params = {}
        for kind, data in self.file.frames[0].notes:
            if kind == "params" and isinstance(data, dict):
                self.start_params.update(data)
        self.setlist = None
        if h.get("set"):
            from engine.show.sets import SetList
            self.setlist = SetList(h["set"])
            if isinstance(h.get("scene"), int) and 0 <= h["scene"] < len(self.setlist.scenes):
                self.setlist.index = h["scene"]
        n = len(self.setlist.scenes) if self.setlist is not None else 1
        self.files = []
        for i in range(n):
            data = firsts.get(i)
            if data is None:
                raise ReplayError(f"{path}: no patch recorded for scene {i + 1}")
            d = self.folder / str(i)
            d.mkdir()
            f = d / Path(data["path"]).name
            f.write_text(data["source"])
            self.files.append(f)
            if self.setlist is not None:
                self.setlist.scenes[i].patch = f

    def state(self) -> Path | None:
        """A state folder for the replay: a copy of the recorded show's bookmarks (recalls replay;
        saves go to the copy, never to the user's)."""
        import shutil
        src = self.header.get("state")
        if not isinstance(src, str) or not (Path(src) / "bookmarks").is_dir():
            return None
        dst = self.folder / "state"
        shutil.copytree(Path(src) / "bookmarks", dst / "bookmarks")
        return dst

    @property
    def patch(self) -> Path:
        return self.files[self.setlist.index if self.setlist is not None else 0]

    def close(self) -> None:
        import shutil
        shutil.rmtree(self.folder, ignore_errors=True)


def _same_as_disk(note: dict) -> bool:
    try:
        return Path(note["path"]).read_text() == note["source"]
    except (OSError, UnicodeDecodeError, ValueError):
        return False


def describe(prepared: Prepared) -> str:
    h = prepared.header
    return json.dumps({k: h.get(k) for k in ("created", "fps", "size", "model", "patch", "set")})
