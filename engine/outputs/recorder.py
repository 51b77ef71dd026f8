"""Record RGB frames (and optionally an audio file) to an H.264 MP4 with PyAV.

Crash safety
------------
A plain MP4 is unplayable until its trailer (the ``moov`` index) is written at
close, so a SIGKILL, a segfault or a power cut would lose the whole take.  We
write a *fragmented* MP4 instead (``frag_keyframe+empty_moov+default_base_moof``):
an empty index up front, then a self-describing ``moof``+``mdat`` fragment at
every keyframe.  With a keyframe every second (GOP = round(fps)) everything up
to the last finished fragment is playable whatever happens to the process.

Two details make that hold in practice:

* libavformat buffers output in a 32 KiB AVIO buffer and PyAV has no flush
  call, so a small or slow recording would sit in memory indefinitely.  The
  ``flush_packets=1`` container option makes libavformat flush to the OS after
  every packet; the mov muxer only emits bytes at fragment boundaries, so this
  costs one write() per fragment.  (Data in the OS page cache survives the
  process being killed; we do not fsync.)
* B-frames are disabled: a fragmented MP4 has no edit list to hide the
  reordering delay, so with B-frames every timestamp would be shifted by two
  frames.  It also trims encoder latency.

What a kill loses is therefore about one GOP (1 s) plus the encoder's
lookahead/threading delay plus the frames still in the queue.  Ctrl-C is a
plain KeyboardInterrupt: the writer thread keeps running, so the caller's
``finally: rec.close()`` drains the queue and finishes a complete file.  If the
interpreter exits without close(), the (non-daemon) writer notices the main
thread is gone and finishes the file itself rather than hanging the exit.

Replacing a file (``--overwrite``): the new take is written beside it as
``NAME.unfinished.mp4`` and moved over the old one only when it closes, so a run that
fails before that (a patch that cannot draw, a crash, a kill) leaves the old file whole
(and what was recorded, in the unfinished one). ``discard()`` drops a take nobody wants.

Frames are encoded on a background thread fed by a bounded queue: ``write``
blocks when the encoder falls behind (back-pressure: ``vj render`` loses nothing), or,
with ``wait=False`` (a live show), drops the frame and counts it rather than slowing the
show; a dropped frame leaves a gap on the timeline, so the video keeps real time.
An optional audio file is encoded to AAC alongside, kept just ahead of the
video packets so every fragment holds both and a cut-off file stays in sync.
At close the soundtrack ends with the video (the last frame's end time), not
with the file: a take of a long file holds what was played, and closing does
not wait for the rest to be encoded.
"""

from __future__ import annotations

import collections
import logging
import os
import pathlib
import queue
import threading
import time
from fractions import Fraction

import av
import numpy as np

log = logging.getLogger(__name__)

_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
# With audio, delay the moov until the first fragment is cut: only then can it
# carry the edit list that hides AAC's 1024-sample encoder priming.  Without it
# ffmpeg shifts the whole timeline by those ~23 ms (or, with shifting disabled,
# leaves the audio that much late).  Crash-wise it changes nothing: the first
# fragment is the first playable data either way.
_MOVFLAGS_AUDIO = _MOVFLAGS + "+delay_moov"
_CONTAINER_OPTIONS = {
    "flush_packets": "1",
    # If the audio ends before the video, don't hold video back in the
    # interleaving queue for ffmpeg's default 10 s.
    "max_interleave_delta": "1000000",
}
_AAC_RATES = {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}
_STOP = object()


class RecorderError(Exception):
    """The recording could not be opened or encoding failed."""


class _AudioFeed:
    """Decodes an audio file and encodes it to AAC on demand, up to a given time."""

    def __init__(self, container, path):
        try:
            self._src = av.open(str(path))
            src = self._src.streams.audio[0]
        except IndexError:
            self._src.close()
            raise RecorderError(f"no audio stream in {path}") from None
        except (OSError, av.FFmpegError) as e:
            raise RecorderError(f"cannot open audio {path}: {e}") from e
        self.rate = src.rate if src.rate in _AAC_RATES else 48000
        layout = "mono" if src.channels == 1 else "stereo"
        self.stream = container.add_stream("aac", rate=self.rate, layout=layout)
        self.stream.codec_context.bit_rate = 96_000 * (1 if layout == "mono" else 2)
        self.stream.time_base = Fraction(1, self.rate)
        self._layout = layout
        self._frames = self._src.decode(src)
        self._resampler = None
        # resampled frames wait here until the video reaches them, so the soundtrack
        # overshoots by less than one encoder frame, not by a whole decoded source frame
        self._pending: collections.deque = collections.deque()
        self._src_done = False
        self._samples = 0
        self.done = False

    def packets_until(self, t):
        """Encode source audio up to time ``t`` seconds (None: all of it, then the
        encoder's last packets); the last packet reaches less than one encoder frame
        (1024 samples) past ``t``."""
        if self._resampler is None:  # frame_size is only known once the encoder is open
            self._resampler = av.AudioResampler(
                format="fltp", layout=self._layout, rate=self.rate,
                frame_size=self.stream.codec_context.frame_size or None)
        limit = None if t is None else t * self.rate
        packets = []
        while not self.done and (limit is None or self._samples < limit):
            if not self._pending:
                if self._src_done:
                    packets += self.stream.encode(None)
                    self.done = True
                    break
                frame = next(self._frames, None)
                if frame is None:
                    self._src_done = True
                else:
                    frame.pts = None  # restamp from 0 below: the source may start late or have gaps
                self._pending.extend(self._resampler.resample(frame))
                continue
            f = self._pending.popleft()
            f.pts, f.time_base = self._samples, Fraction(1, self.rate)
            self._samples += f.samples
            packets += self.stream.encode(f)
        return packets

    def finish(self, t):
        """The packets up to time ``t`` (None: the whole file), then the encoder's
        last ones: the soundtrack ends there, however much of the file is left."""
        packets = self.packets_until(t)
        if not self.done:
            packets += self.stream.encode(None)
            self.done = True
        return packets

    def close(self):
        self._src.close()


class Recorder:
    """H.264/yuv420p fragmented-MP4 recorder; see the module docstring.

    ``write(rgb, index)`` takes a (height, width, 3) uint8 array, top row
    first (any strides).  ``index`` is the frame's slot on the 1/fps timeline,
    so dropped frames leave gaps and the video keeps real time; None means
    the slot after the previous frame.  yuv420p needs even dimensions, so an
    odd width/height is padded by repeating the last column/row: the file is
    then one pixel wider/taller than requested.

    ``frames_written`` counts frames the writer thread has handed to the
    encoder; after ``close()`` it is the number of frames in the file.
    """

    def __init__(self, path, width: int, height: int, fps: float, *, audio: str | None = None,
                 crf: int = 18, preset: str = "veryfast", queue_frames: int = 8, x264: dict | None = None):
        if width <= 0 or height <= 0 or fps <= 0:
            raise ValueError(f"bad recording geometry {width}x{height} @ {fps} fps")
        self.path = pathlib.Path(path)
        # an existing file stays whole until the new take is finished (see the module doc)
        self._file = self.path if not self.path.exists() else \
            self.path.with_name(f"{self.path.stem}.unfinished{self.path.suffix}")
        self.width, self.height = int(width), int(height)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.frames_written = 0
        self.dropped = 0                # frames write(wait=False) could not queue
        self._time_base = 1 / self.fps
        self._last_index = -1
        self._video_end = Fraction(0)   # s: the end of the last frame handed to the encoder
        self._closed = False
        self._error: BaseException | None = None
        self._audio = None
        self._container = None
        self._thread = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            movflags = _MOVFLAGS if audio is None else _MOVFLAGS_AUDIO
            self._container = av.open(str(self._file), "w", format="mp4", container_options={
                **_CONTAINER_OPTIONS, "movflags": movflags})
            v = self._container.add_stream("libx264", rate=self.fps)
            v.width, v.height = self.width + self.width % 2, self.height + self.height % 2
            v.pix_fmt = "yuv420p"
            v.time_base = self._time_base
            cc = v.codec_context
            cc.time_base = self._time_base
            cc.gop_size = max(1, round(self.fps))
            cc.max_b_frames = 0
            # Tag what we convert with, so players don't guess 601 vs 709.
            cc.colorspace = cc.color_primaries = cc.color_trc = 1  # BT.709
            cc.color_range = 1  # limited ("mpeg")
            rate = {} if x264 and "qp" in x264 else {"crf": str(crf)}   # libx264 takes crf over qp
            cc.options = {**rate, "preset": preset, **(x264 or {})}
            self._video = v
            if audio is not None:
                self._audio = _AudioFeed(self._container, audio)
            # Writes the header now, so an unwritable path fails here, not in the thread.
            self._container.start_encoding()
        except RecorderError:
            self._abort(opening=True)
            raise
        except (OSError, av.FFmpegError, ValueError) as e:
            self._abort(opening=True)
            raise RecorderError(f"cannot open recording {self.path}: {e}") from e
        # A C-level queue and two counters instead of queue.Queue: the caller (the render
        # thread, where Ctrl-C lands) then never holds a Python lock that a KeyboardInterrupt
        # could leave locked for ever, which used to hang close() now and then (CPython's
        # with-statement is not signal-safe).
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._capacity = max(1, queue_frames)
        self._queued = 0      # frames put (caller side only)
        self._taken = 0       # frames taken (writer side only)
        self._thread = threading.Thread(target=self._run, name=f"Recorder[{self.path.name}]")
        self._thread.start()

    # -- caller side -------------------------------------------------------

    def write(self, rgb, index: int | None = None, *, wait: bool = True, owned: bool = False) -> bool:
        """Queue one frame for the encoder. ``wait=False`` (a live show): if the encoder is
        behind and the queue is full, the frame is dropped and counted (``dropped``) instead
        of holding up the caller; returns whether it was queued. ``owned``: the caller will
        not touch ``rgb`` again (a fresh read-back), so it is not copied here: the encoder
        thread makes it contiguous (flip, alpha) in its one copy."""
        self._raise_pending()
        if self._closed:
            raise RecorderError(f"write() on closed recorder {self.path}")
        if index is None:
            index = self._last_index + 1
        elif index <= self._last_index:
            log.warning("recorder %s: frame index %d is not after %d; frame ignored",
                        self.path.name, index, self._last_index)
            return False
        rgb = np.asarray(rgb)
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"expected uint8 ({self.height}, {self.width}, 3), "
                             f"got {rgb.dtype} {rgb.shape}")
        # Copy what the caller may reuse while it waits in the queue.
        frame = rgb if owned else rgb.copy()
        if wait:
            self._wait_for_room()
        elif self._queued - self._taken >= self._capacity:
            self.dropped += 1
            return False
        self._queued += 1
        self._queue.put((int(index), frame))
        self._last_index = int(index)
        return True

    def close(self, keep: bool = True) -> None:
        """Drain the queue, flush the encoder and finish the file (``keep=False``: and delete
        it, leaving a file it was to replace as it was).  Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)  # unbounded: the stop never waits for room
        self._thread.join()
        if not keep:
            self._file.unlink(missing_ok=True)
            return
        self._raise_pending()
        if self._file != self.path:
            os.replace(self._file, self.path)

    def discard(self) -> None:
        """Close and delete this take; a file it was to replace is left as it was."""
        self.close(keep=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _wait_for_room(self):
        # Poll rather than block forever: the writer may die while we wait.
        while self._queued - self._taken >= self._capacity:
            self._raise_pending()
            if not self._thread.is_alive():
                raise RecorderError(f"recorder thread for {self.path} is gone")
            time.sleep(0.002)

    def _raise_pending(self):
        err, self._error = self._error, None
        if err is not None:
            raise RecorderError(f"recording {self.path} failed: {type(err).__name__}: {err}") from err

    # -- writer thread -----------------------------------------------------

    def _run(self):
        try:
            while (item := self._next()) is not _STOP:
                self._taken += 1
                index, rgb = item
                pad = ((0, self.height % 2), (0, self.width % 2), (0, 0))
                rgb = np.pad(rgb, pad, mode="edge") if any(p[1] for p in pad) else np.ascontiguousarray(rgb)
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709",
                                       dst_color_range="MPEG")
                frame.pts, frame.time_base = index, self._time_base
                self._mux_video(self._video.encode(frame))
                self._video_end = (index + 1) * self._time_base
                self.frames_written += 1
            self._mux_video(self._video.encode(None))
            if self._audio is not None:
                # Only what the video covers: a live take of a long file stops where the
                # show stopped, instead of encoding the rest of the file at close.
                self._container.mux(self._audio.finish(self._video_end))
            self._container.close()
        except Exception as e:
            log.exception("recorder %s: encoding failed", self.path)
            self._error = e
        finally:
            self._abort()

    def _next(self):
        while True:
            try:
                return self._queue.get(timeout=0.25)
            except queue.Empty:
                if not threading.main_thread().is_alive():
                    log.warning("recorder %s: interpreter exiting without close(); finishing file",
                                self.path.name)
                    return _STOP

    def _mux_video(self, packets):
        for p in packets:
            end = (p.pts + 1) * p.time_base  # before mux(), which rebases the packet
            self._container.mux(p)
            if self._audio is not None:
                self._container.mux(self._audio.packets_until(end))

    def _abort(self, opening: bool = False):
        for closeable in (self._container, self._audio):
            if closeable is not None:
                try:
                    closeable.close()
                except Exception:
                    log.exception("recorder %s: error while closing", self.path)
        if opening and self._file != self.path:     # nothing was recorded: no stray file
            self._file.unlink(missing_ok=True)
