"""Bookmarks live: save the picture's place in latent space, recall it, morph to it and back.

``/vj/bookmark/*`` commands (OSC, the B key, MIDI notes bound in the mappings file) arrive as
``bookmark.*`` events. A save takes the latent the frame is drawn from (the incoming scene's
during a transition), as per-layer styles ``ws``, with the parameters' values, into the book
of that frame's model (engine/show/bookmarks.py; saved at once, off the render thread). A
recall sets the saved parameters and pulls the picture toward the bookmark over the given
time (eased), then **holds** it there while the patch keeps running underneath; a release
hands the latent back to the patch the same way. The hold is a blend weight on the frame's
top layer (``Layer.toward``: the generator mixes the two styles per layer), so a patch's
noise and shader settings still move while held. Time is the frame clock's, so an offline
replay morphs on the same frames.

A scene that names a ``bookmark`` starts held at it; entering any other scene releases the hold.
"""
from __future__ import annotations

import logging

import numpy as np

from engine.render.stages import Layer
from engine.show.bookmarks import BookmarkBook, BookmarkError, ease
from engine.show.state import model_key

log = logging.getLogger("vj")


def book_key(info) -> str:
    """The model's key for its bookmarks: its file's content (or its name for a built one)."""
    spec = info.extra.get("file") or info.name
    try:
        return model_key(spec)
    except OSError:
        return model_key(info.name)


class _Hold:
    def __init__(self, key: str, name: str, ws: np.ndarray, start: float, end: float, t0: float, seconds: float):
        self.key, self.name, self.ws = key, name, ws
        self.start, self.end, self.t0, self.seconds = start, end, t0, seconds

    def weight(self, t: float) -> float:
        if self.seconds <= 0:
            return self.end
        return self.start + (self.end - self.start) * ease((t - self.t0) / self.seconds)


class BookmarkStage:
    name = "bookmarks"

    def __init__(self, folder, writer, params, runner, report=None):
        self.folder, self.writer, self.params, self.runner = folder, writer, params, runner
        self._report = report or (lambda msg: log.error("%s", msg))
        self.books: dict[str, BookmarkBook] = {}
        self._keys: dict[int, str] = {}   # id(runner) -> its model's key (runners live as long as the show)
        self.hold: _Hold | None = None
        self._scene_entry: tuple[str | None] | None = None  # (bookmark or None) from the set, this frame
        self.saved: list[str] = []    # names saved this run, for the HUD and tests

    def book(self, runner) -> BookmarkBook:
        key = self._keys.get(id(runner))
        if key is None:  # hashing the weights' file once per model, not a stat() per frame
            key = self._keys[id(runner)] = book_key(runner.info)
        b = self.books.get(key)
        if b is None:
            info = runner.info
            b = self.books[key] = BookmarkBook(self.folder, key, (info.num_ws, info.w_dim), writer=self.writer)
            for problem in b.problems:
                self._report(f"bookmarks: {problem}")
        return b

    def entered_scene(self, bookmark: str | None) -> None:
        """The set entered a scene (on this frame): hold its bookmark, or let go."""
        self._scene_entry = (bookmark,)

    def _weight(self, t: float) -> float:
        h = self.hold
        return 0.0 if h is None else h.weight(t)

    def _recall(self, book: BookmarkBook, name, seconds: float, t: float) -> None:
        try:
            bm = book.get(name)
        except KeyError:
            self._report(f"bookmark {name!r}: no such bookmark of {book.model_key}")
            return
        self.params.apply(bm.params)
        self.hold = _Hold(book.model_key, bm.name, bm.ws, self._weight(t), 1.0, t, seconds)
        log.info("bookmark %s recalled%s", name, f" over {seconds:g} s" if seconds else "")

    def _events(self, snap, book: BookmarkBook, top: Layer) -> None:
        t = snap.time
        if self._scene_entry is not None:
            (name,), self._scene_entry = self._scene_entry, None
            if name is not None:
                self._recall(book, name, 0.0, t)
            else:
                self.hold = None
        for args in snap.events_of("bookmark.save"):
            ws = top.runner.styles(z=top.controls.z, w=top.controls.w, ws=top.controls.ws, psi=top.controls.psi,
                                   c=top.controls.c)[0].float().cpu().numpy()
            name = book.save(ws, self.params.targets(), name=args[0] if args else None)
            self.saved.append(name)
            log.info("bookmark %s saved (%d in %s)", name, len(book), book.path.name)
        for args in snap.events_of("bookmark.recall"):
            self._recall(book, args[0], float(args[1]) if len(args) > 1 else 0.0, t)
        for args in snap.events_of("bookmark.recall_beats"):
            self._recall(book, args[0], float(args[1]) * 60.0 / snap.bpm, t)
        for args in snap.events_of("bookmark.release"):
            if self.hold is not None:
                h = self.hold
                self.hold = _Hold(h.key, h.name, h.ws, h.weight(t), 0.0, t, float(args[0]) if args else 0.0)
        for args in snap.events_of("bookmark.rename"):
            book.rename(args[0], args[1])
        for args in snap.events_of("bookmark.delete"):
            book.delete(args[0])

    def run(self, frame) -> None:
        snap = frame.snap
        layers = frame.layers
        if layers is None:
            c = frame.controls
            layers = [Layer(self.runner, c, dict(c.post) if c is not None else {})]
        top = layers[-1]
        book = self.book(top.runner)
        try:
            self._events(snap, book, top)
        except (BookmarkError, KeyError, ValueError) as e:
            self._report(f"bookmarks: {e}")
        h = self.hold
        if h is not None and h.key != book.model_key:
            self.hold = h = None   # another model's place: nothing to hold on to
        weight = self._weight(snap.time)
        if h is not None and weight <= 0.0 and h.end == 0.0:
            self.hold = None       # released all the way
        elif h is not None and weight > 0.0 and top.toward is None and top.controls is not None:
            held = type(top.controls)(ws=h.ws, noise=top.controls.noise, transform=top.controls.transform)
            top.toward = (held, weight)
            frame.layers = layers
        frame.status.update(bookmarks=book.names(), bookmark_hold=weight)
