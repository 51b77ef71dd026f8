"""Join MP4 segments written by the Recorder into one file, frame-exact, without re-encoding.

A chunked render writes each chunk with its own ``Recorder`` (frame k of a chunk at
k/fps).  Here their H.264 packets are copied, in order, into one fragmented MP4 with the
Recorder's muxer settings, restamped so that frame n of the whole video sits at n/fps:
decoding the joined file gives bit for bit the frames each segment decodes to.  This only
works because every segment starts on an IDR frame and the Recorder never uses B-frames,
so a segment decodes on its own and decode order is presentation order.

Segments are checked before anything is written: the same codec, size, pixel format, time
base and codec headers (SPS/PPS, which a copied stream keeps only from the first segment),
and a finished file (an ``mfro`` box at its end: a chunk whose worker was killed would
otherwise join silently short).  A segment whose timestamps are not k/fps, k = 0, 1, 2 ...
(gaps, another frame rate) is refused while copying.

The result is written beside ``out`` under a temporary name and renamed when complete, so
an interrupted or refused join never leaves a partial file under the final name.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av

from engine.outputs.recorder import (_CONTAINER_OPTIONS, _MOVFLAGS, _MOVFLAGS_AUDIO,
                                     RecorderError, _AudioFeed)
from engine.paths import unused_path

log = logging.getLogger(__name__)


def join_segments(segments: list[Path], out: Path, fps: float, audio: str | None = None,
                  overwrite: bool = False) -> dict:
    """Remux ``segments`` (in order) into one MP4 at ``out``, with ``audio`` encoded to AAC
    alongside and cut at the video's end.  An existing ``out`` is kept (the result goes
    to the first free ``NAME-2.mp4`` ...) unless ``overwrite``.  Raises ValueError naming
    the file for a segment that cannot be opened, is unfinished or does not match the
    first.  Returns {"path", "frames", "duration" (s), "segments"}."""
    segments = [Path(s) for s in segments]
    if not segments:
        raise ValueError("no segments to join")
    if fps <= 0:
        raise ValueError(f"bad frame rate {fps}")
    # The Recorder's own rounding, so "30000/1001" style rates meet its time bases exactly.
    fps = Fraction(fps).limit_denominator(1001)
    template = _check_segments(segments)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        out = unused_path(out)
    tmp = out.with_name(f".{out.stem}.joining-{os.getpid()}{out.suffix or '.mp4'}")
    frames = 0
    try:
        frames = _write(segments, template, tmp, fps, audio)
        _fsync(tmp)
        if not overwrite:
            out = unused_path(out)  # someone may have taken the name during a long join
        os.replace(tmp, out)
        _fsync(out.parent)
    except BaseException:
        # KeyboardInterrupt included: the half-written file must not outlive the join.
        tmp.unlink(missing_ok=True)
        raise
    return {"path": out, "frames": frames, "duration": float(frames / fps), "segments": len(segments)}


def _open(path: Path):
    try:
        c = av.open(str(path))
    except (OSError, av.FFmpegError) as e:
        raise ValueError(f"cannot open segment {path}: {e}") from e
    if not c.streams.video:
        c.close()
        raise ValueError(f"segment {path} has no video stream")
    return c


def _facts(stream) -> dict:
    cc = stream.codec_context
    return {"codec": cc.name, "size": (cc.width, cc.height), "pixel format": cc.pix_fmt,
            "time base": stream.time_base}


def _finished(path: Path) -> bool:
    """Whether the file ends with the ``mfro`` box the mp4 muxer writes last when it closes a
    fragmented file: without it the writer died, and the segment ends early."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() < 16:
                return False
            f.seek(-16, os.SEEK_END)
            tail = f.read(16)
    except OSError:
        return False
    return tail[:8] == b"\x00\x00\x00\x10mfro"


def _check_segments(segments: list[Path]) -> dict:
    """Check every segment against the first; returns the first's facts and extradata."""
    first = None
    for path in segments:
        with _open(path) as c:
            v = c.streams.video[0]
            facts = _facts(v)
            extradata = v.codec_context.extradata
        if not _finished(path):
            raise ValueError(f"segment {path} is unfinished (its writer did not close it)")
        if first is None:
            first = {"facts": facts, "extradata": extradata, "path": path}
            continue
        for key, want in first["facts"].items():
            if facts[key] != want:
                raise ValueError(f"segment {path}: {key} {facts[key]} differs from {want} "
                                 f"in {first['path']}")
        if extradata != first["extradata"]:
            raise ValueError(f"segment {path}: H.264 headers differ from {first['path']} "
                             "(other encoder settings)")
    return first


def _write(segments: list[Path], template: dict, tmp: Path, fps: Fraction, audio: str | None) -> int:
    container = av.open(str(tmp), "w", format="mp4", container_options={
        **_CONTAINER_OPTIONS, "movflags": _MOVFLAGS if audio is None else _MOVFLAGS_AUDIO})
    feed = None
    try:
        with _open(segments[0]) as first:
            src = first.streams.video[0]
            video = container.add_stream_from_template(src)
            video.time_base = src.time_base
        if audio is not None:
            try:
                feed = _AudioFeed(container, audio)
            except RecorderError as e:
                raise ValueError(str(e)) from e
        container.start_encoding()
        start = 0
        for path in segments:
            start += _copy_segment(container, video, feed, path, start, fps)
        if feed is not None:
            container.mux(feed.finish(start / fps))
        container.close()
        return start
    finally:
        for closeable in (container, feed):
            if closeable is not None:
                try:
                    closeable.close()
                except Exception:
                    log.exception("join %s: error while closing", tmp)


def _copy_segment(container, video, feed, path: Path, start: int, fps: Fraction) -> int:
    """Copy one segment's packets as frames ``start``, ``start`` + 1 ...; returns how many."""
    n = 0
    with _open(path) as c:
        src = c.streams.video[0]
        tb = src.time_base
        for packet in c.demux(src):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            # Within one tick of k/fps: the Recorder's timestamps, rounded into the file's time base.
            if packet.pts is None or abs(packet.pts * tb - n / fps) > tb:
                got = "none" if packet.pts is None else f"{float(packet.pts * tb):.6f} s"
                raise ValueError(f"segment {path}: frame {n} at {got}, expected {float(n / fps):.6f} s "
                                 f"(a gap, or not {float(fps):g} fps)")
            ts = round((start + n) / fps / tb)
            packet.pts = packet.dts = ts
            packet.duration = round((start + n + 1) / fps / tb) - ts
            packet.stream = video
            container.mux(packet)
            n += 1
            if feed is not None:
                container.mux(feed.packets_until((start + n) / fps))
    if n == 0:
        raise ValueError(f"segment {path} holds no frames")
    return n


def _fsync(path: Path) -> None:
    """Flush to disk before the rename, so a power cut cannot leave an empty file under the
    final name."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
