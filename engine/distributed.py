"""``vj render ... --workers N`` / ``--ray ADDRESS|auto``: one render spread over Ray workers.

The driver runs the patch alone over the whole render (cheap: no generator, no shaders) to
learn how long each chunk's feedback warm-up must be (engine/render/chunks.py), plans the
chunks, and hands each to a Ray task. A task builds the same session a single-process render
would, fast-forwards to its warm-up, warms up unrecorded, records its frames into a segment
in the render's work folder (``OUT.chunks/``) and leaves a marker beside it. The driver joins
the segments in order into ``OUT`` with the soundtrack muxed once
(engine/outputs/join.py).

Faults: Ray retries a task whose worker process died (``max_retries``); a segment is only
ever under its final name when it is complete, with its marker written last, so a render
stopped for any reason is resumed by running the same command again: finished chunks are
kept and reused (the work folder is tied to the render's settings and inputs by a hash, and
a folder of another render is never reused). The model file is not shipped per chunk:
local workers read it where it is, and on a cluster (``--ray ADDRESS``) it goes into Ray's
object store once and each node materialises it once.

Ray is an optional extra (``pip install -e '.[cluster]'``); without it these flags say so.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

from engine import atomic
from engine.render.chunks import Chunk, feedback_amount, plan

log = logging.getLogger("vj")

MAX_RETRIES = 3
INSTALL = "pip install -e '.[cluster]'  (Ray)"


class DistributedError(Exception):
    pass


def need_ray():
    """The ray module, or DistributedError saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise DistributedError(f"--workers and --ray need Ray, an optional extra: {INSTALL} ({e})") from None
    return ray


# --- one render's settings ---------------------------------------------------------------------

def options(spec: dict, record, prepared=None, **more):
    """The Session options of this render (the same for a single process and every chunk;
    ``more`` adds the single process's soundtrack and overwrite choice)."""
    from engine.session import Options
    common = dict(model=spec["model"], size=tuple(spec["size"]), fps=spec["fps"], bpm=spec["bpm"],
                  device=spec["device"], precision=spec["precision"], live=False,
                  record=Path(record) if record is not None else None, display_path=spec["display_path"],
                  pipeline=spec["pipeline"], overwrite=True, follow_audio_tempo=spec["follow_audio_tempo"],
                  lossless=spec.get("lossless", False))
    common.update(more)
    if prepared is not None:
        return Options(patch=prepared.patch, setlist=prepared.setlist, replay=prepared, state=prepared.state(),
                       **common)
    return Options(patch=Path(spec["patch"]), **common)


def _posts(frame) -> list[dict]:
    if frame.layers:
        return [layer.post for layer in frame.layers]
    return [frame.controls.post] if frame.controls is not None else []


def _feeder(session, features, fps: float):
    if features is None:
        return None
    from engine.signals.offline import FrameFeed
    feed = FrameFeed(features)
    return lambda k: feed(session.bus, k, k / fps)


def _at(feed, offset: int):
    return None if feed is None else (lambda k: feed(offset + k))


def _files_digest(spec: dict) -> str:
    h = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode())
    for key in ("patch", "audio", "signals", "model"):
        p = spec.get(key)
        if isinstance(p, str) and Path(p).is_file():
            st = Path(p).stat()
            h.update(f"{key}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


# --- a chunk, on a worker ----------------------------------------------------------------------

class _Progress:
    """``update(n)`` from the render loop; the count goes to a file the driver reads."""

    def __init__(self, path: Path):
        self.path, self.done, self._at = path, 0, 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._at > 0.5:
            self._at = now
            self.path.write_text(str(self.done))


def render_chunk(spec: dict, chunk: Chunk, workdir: str, features=None, model_bytes=None,
                 signals_bytes=None, threads: int = 1) -> dict:
    """Render one chunk into ``workdir/<chunk>.mp4`` (a Ray task; also callable directly)."""
    import torch

    from engine.session import Session
    torch.set_num_threads(max(1, threads))
    work = Path(workdir)
    (work / f"{chunk.name}.pid").write_text(str(os.getpid()))
    local = Path(tempfile.mkdtemp(prefix="vj-chunk-"))
    prepared = None
    try:
        spec = dict(spec)
        if model_bytes is not None:   # shipped once through the object store (a cluster)
            model = local / Path(spec["model"]).name
            model.write_bytes(model_bytes)
            spec["model"] = str(model)
        if spec.get("signals"):
            from engine.show.replay import Prepared
            path = spec["signals"]
            if signals_bytes is not None:
                path = local / "show.vjsig.gz"
                path.write_bytes(signals_bytes)
            prepared = Prepared(path, trust=spec.get("trust", False))
        # one name per attempt: on a cluster, a stopped render's task may still be finishing
        # this chunk when the same command is run again
        part = work / f"{chunk.name}.{os.getpid()}.part.mp4"
        part.unlink(missing_ok=True)
        with Session(options(spec, part, prepared)) as s:
            feed = _feeder(s, features, spec["fps"])
            rec = s.recording.recorder
            s.recording.recorder = None              # fast-forward and warm-up are not recorded
            first = chunk.start - chunk.warmup
            s.engine.fast_forward(first, before_frame=_at(feed, 0))
            s.engine.run_offline(chunk.warmup, before_frame=_at(feed, first))
            s.recording.recorder = rec                # offline, its first frame is the segment's frame 0
            s.engine.run_offline(chunk.frames, before_frame=_at(feed, chunk.start),
                                 progress=_Progress(work / f"{chunk.name}.progress"))
        if rec.frames_written != chunk.frames:
            raise DistributedError(f"{chunk.name}: {rec.frames_written} frames written, {chunk.frames} expected")
        os.replace(part, work / f"{chunk.name}.mp4")
        marker = {"start": chunk.start, "end": chunk.end, "frames": chunk.frames, "warmup": chunk.warmup}
        atomic.replace(work / f"{chunk.name}.json", json.dumps(marker).encode())
        return marker
    finally:
        if prepared is not None:
            prepared.close()
        shutil.rmtree(local, ignore_errors=True)


def finished(work: Path, chunk: Chunk) -> bool:
    """A chunk left complete by this or an earlier run of the same render."""
    try:
        marker = json.loads((work / f"{chunk.name}.json").read_text())
    except (OSError, ValueError):
        return False
    return marker.get("frames") == chunk.frames and (work / f"{chunk.name}.mp4").is_file()


# --- the driver --------------------------------------------------------------------------------

def feedback_amounts(spec: dict, n_frames: int, features=None, prepared=None) -> list[float]:
    """Each frame's feedback amount, from a run of the patch alone (no generator, no shaders)."""
    from engine.session import Session
    amounts: list[float] = []
    with Session(options(spec, None, prepared)) as s:
        s.engine.fast_forward(n_frames, before_frame=_feeder(s, features, spec["fps"]),
                              each=lambda f: amounts.append(feedback_amount(_posts(f), f.dt)))
    return amounts


def _cluster(ray, workers: int | None, address: str | None, threads: int | None) -> tuple[int, int, float]:
    """Start or join Ray: (workers, torch threads each, GPUs each)."""
    quiet = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _start(ray, workers, address, threads, quiet)
    finally:
        # ray.init installs its own handlers (SIGTERM exits at once): ours unwind like Ctrl-C, so
        # the finished chunks are kept and the cluster is shut down
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _answers(address: str, timeout: float = 5.0) -> None:
    """DistributedError unless something listens at a HOST:PORT address (ray.init would
    keep retrying one where nothing does for minutes); other forms ("auto") go to Ray as they are."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "/" in host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise DistributedError(f"--ray {address}: nothing answers there ({e.strerror or e}); start the cluster "
                               "with `ray start --head` on that machine, or check the address") from None


def _start(ray, workers, address, threads, quiet) -> tuple[int, int, float]:
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as e:
            why = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise DistributedError(f"--ray {address}: could not join the Ray cluster ({why}); `ray status` on its "
                                   "head says whether it runs and where") from None
        res = ray.cluster_resources()
        gpus = int(res.get("GPU", 0))
        if gpus:
            return workers or gpus, 1, 1.0
        cpus = int(res.get("CPU", 1))
        n = workers or max(1, cpus // (threads or 2))
        return n, threads or max(1, cpus // n), 0.0
    cpus = os.cpu_count() or 1
    # "local": a Ray of its own even when a cluster runs on this machine (ray.init would join it)
    ray.init(address="local", num_cpus=workers, **quiet)
    return workers, threads or max(1, cpus // workers), 0.0


def render_chunked(spec: dict, out: Path, n_frames: int, workers: int | None, address: str | None,
                   features=None, audio: str | None = None, quiet: bool = False, overwrite: bool = False) -> dict:
    """The whole render over Ray workers, joined into ``out``; returns what it measured."""
    ray = need_ray()
    if address:
        _answers(address)        # before the planning run: a wrong address is said at once
    from engine.outputs.join import join_segments
    # Ray first: a cluster that will not have this driver is said before any planning
    n_workers, threads, gpus = _cluster(ray, workers, address, None)
    try:
        prepared = None
        if spec.get("signals"):
            from engine.show.replay import Prepared
            prepared = Prepared(spec["signals"], trust=spec.get("trust", False))
        t0 = time.perf_counter()
        try:
            amounts = feedback_amounts(spec, n_frames, features, prepared)
        finally:
            if prepared is not None:
                prepared.close()
        t_plan = time.perf_counter() - t0
        work = Path(f"{out}.chunks") / _files_digest(spec)
        work.mkdir(parents=True, exist_ok=True)
        chunks, overhead = plan(n_frames, n_workers, amounts, keyframes=max(1, round(spec["fps"])))
        todo = [c for c in chunks if not finished(work, c)]
        if len(todo) < len(chunks):
            log.info("resuming: %d of %d chunks already rendered in %s", len(chunks) - len(todo), len(chunks), work)
        log.info("render over %d worker(s) (%d threads each%s): %d chunks, warm-up %.1f%% of the frames",
                 n_workers, threads, ", 1 GPU each" if gpus else "", len(chunks), 100 * overhead)
        features_ref = ray.put(features) if features is not None else None
        model_bytes = signals_bytes = None
        if address and spec.get("model") and Path(spec["model"]).is_file():
            model_bytes = ray.put(Path(spec["model"]).read_bytes())   # once, whatever the number of chunks
        if address and spec.get("signals"):
            signals_bytes = ray.put(Path(spec["signals"]).read_bytes())
        task = ray.remote(render_chunk).options(num_cpus=0 if gpus else threads, num_gpus=gpus,
                                                max_retries=MAX_RETRIES)
        refs = {task.remote(spec, c, str(work), features_ref, model_bytes, signals_bytes, threads): c for c in todo}
        t1 = time.perf_counter()
        _wait(ray, refs, work, chunks, n_frames, quiet)
        took = time.perf_counter() - t1
    finally:
        ray.shutdown()
    result = join_segments([work / f"{c.name}.mp4" for c in chunks], out, spec["fps"], audio=audio,
                           overwrite=overwrite)
    shutil.rmtree(work, ignore_errors=True)
    try:
        work.parent.rmdir()
    except OSError:
        pass
    result.update(chunks=len(chunks), workers=n_workers, warmup_overhead=overhead, render_s=took, plan_s=t_plan)
    return result


def _wait(ray, refs: dict, work: Path, chunks: list[Chunk], n_frames: int, quiet: bool) -> None:
    from tqdm import tqdm
    done_before = sum(c.frames for c in chunks if c not in refs.values())
    pending = list(refs)
    with tqdm(total=n_frames, initial=done_before, unit="frame", desc="render", disable=quiet) as bar:
        while pending:
            ready, pending = ray.wait(pending, timeout=0.5)
            for r in ready:
                ray.get(r)   # a chunk that failed past its retries raises here, naming itself
            frames = done_before + sum(_progress(work, c) for c in refs.values())
            bar.update(max(0, frames - bar.n))
            bar.set_postfix_str(f"workers alive {_alive(work, refs.values())}, chunks left {len(pending)}")


def _progress(work: Path, c: Chunk) -> int:
    if finished(work, c):
        return c.frames
    try:
        return min(c.frames, int((work / f"{c.name}.progress").read_text() or 0))
    except (OSError, ValueError):
        return 0


def _alive(work: Path, chunks) -> int:
    n = 0
    for c in chunks:
        if finished(work, c):
            continue
        try:
            os.kill(int((work / f"{c.name}.pid").read_text()), 0)
            n += 1
        except (OSError, ValueError):
            pass
    return n
