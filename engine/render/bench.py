"""`vj bench`: frames per second of the whole headless loop and of the generator alone.

Every figure is measured in the same run as its baselines, so the ratios hold on any
machine: the generator alone is the baseline for the loop, and the shader chain
alone (no generator) shows what OpenGL costs at the output size. The whole loop runs
serial and pipelined in turns (``render/loop.py``), each with fps, frame-time p50/p99,
generator ms and latency: OSC messages are sent to the engine over loopback during the
run, and each frame's newest input is followed to its generated image (input->frame) and
to the finished frame (input->shown). The display path (``render/frame_source.py``) is named.

`vj bench --generator-only`: the generator (mapping + synthesis, output left on the
device) at batch 1 and 4, for each way it can run here: fp32 eager; on CUDA also fp16
eager and fp16 replayed from a CUDA graph (and with ``--compile``, fp16 through
torch.compile in a CUDA graph). No OpenGL involved.
"""
from __future__ import annotations

import logging
import os
import platform
import time

import numpy as np
import torch

log = logging.getLogger("vj")

FULL_CHAIN = {"kaleido": 6.0, "feedback": 0.6, "feedback_zoom": 1.01, "hue": 0.1, "saturation": 1.2}


def _rate(fn, frames: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(frames):
        fn()
    return frames / (time.perf_counter() - t0)


class _OscSender:
    """Sends OSC messages to the engine over loopback at random moments (every 2-6 ms) while
    the loop runs, so each frame's newest input has a capture time to measure latency from."""

    def __init__(self, port: int):
        import threading
        from pythonosc.udp_client import SimpleUDPClient
        self._client = SimpleUDPClient("127.0.0.1", port)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-osc", daemon=True)

    def _run(self) -> None:
        rng = np.random.default_rng(1)
        n = 0
        while not self._halt.wait(float(rng.uniform(0.002, 0.006))):
            n += 1
            self._client.send_message("/bench/input", float(n))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._halt.set()
        self._thread.join(timeout=2)


def _pct(values, q):
    return round(float(np.percentile(values, q)), 2) if len(values) else None


def _loop_run(engine, frames: int, warmup: int = 10) -> dict:
    """The whole loop for ``frames`` finished frames: wall time, and per frame the frame
    time, generator ms and latencies (only frames that used an input newer than the last)."""
    done = 0
    while done < warmup:
        done += engine.render_frame() is not None
    frame_ms, gen_ms, to_frame, to_ready, hands_frame, hands_ready = [], [], [], [], [], []
    last_input = last_hand = None
    t0 = time.perf_counter()
    t_prev = t0
    n = 0
    while n < frames:
        f = engine.render_frame()
        if f is None:
            continue
        now = time.perf_counter()
        frame_ms.append((now - t_prev) * 1000)
        t_prev = now
        n += 1
        gen_ms.append(f.gen_ms)
        st = f.stamps
        if st.get("input") is not None and st["input"] != last_input:
            last_input = st["input"]
            if "gen_end" in st:
                to_frame.append((st["gen_end"] - st["input"]) * 1000)
            to_ready.append((st["ready"] - st["input"]) * 1000)
        if st.get("hands") is not None and st["hands"] != last_hand:  # --hands: hand to frame
            last_hand = st["hands"]
            if "gen_end" in st:
                hands_frame.append((st["gen_end"] - st["hands"]) * 1000)
            hands_ready.append((st["ready"] - st["hands"]) * 1000)
    return {"seconds": time.perf_counter() - t0, "frames": frames, "frame_ms": frame_ms, "gen_ms": gen_ms,
            "to_frame": to_frame, "to_ready": to_ready, "hands_frame": hands_frame, "hands_ready": hands_ready}


def _loop_figures(runs: list[dict]) -> dict:
    seconds = sum(r["seconds"] for r in runs)
    frames = sum(r["frames"] for r in runs)
    cat = {k: [x for r in runs for x in r[k]]
           for k in ("frame_ms", "gen_ms", "to_frame", "to_ready", "hands_frame", "hands_ready")}
    return {"fps": round(frames / seconds, 1), "frame_ms_p50": _pct(cat["frame_ms"], 50),
            "frame_ms_p99": _pct(cat["frame_ms"], 99), "gen_ms": _pct(cat["gen_ms"], 50),
            "gen_ms_p99": _pct(cat["gen_ms"], 99),
            "input_to_frame_ms_p50": _pct(cat["to_frame"], 50), "input_to_frame_ms_p99": _pct(cat["to_frame"], 99),
            "input_to_ready_ms_p50": _pct(cat["to_ready"], 50), "input_to_ready_ms_p99": _pct(cat["to_ready"], 99),
            "latency_samples": len(cat["to_frame"]),
            "hands_to_frame_ms_p50": _pct(cat["hands_frame"], 50), "hands_to_frame_ms_p99": _pct(cat["hands_frame"], 99),
            "hands_to_ready_ms_p50": _pct(cat["hands_ready"], 50), "hands_to_ready_ms_p99": _pct(cat["hands_ready"], 99),
            "hand_samples": len(cat["hands_ready"])}


def run_bench(session, frames: int = 200) -> dict:
    """The figures for one Session (headless, virtual clock): its generator, its shader chain,
    and its whole loop, serial and pipelined, in turns, in this one run."""
    from engine.render.gl import describe
    from engine.render.gpu import device_description

    runner, ctx, chain, size = session.runner, session.ctx, session.chain, session.options.size
    rng = np.random.default_rng(0)
    zs = rng.standard_normal((16, runner.info.z_dim)).astype(np.float32)
    i = [0]

    def gen_only():
        i[0] += 1
        img = runner.image(runner.styles(z=zs[i[0] % 16]))
        if runner.device.type == "cuda":
            torch.cuda.synchronize()
        return img

    generator_fps = _rate(gen_only, frames)

    img = gen_only()

    def chain_only(post=None):
        chain.upload(img)
        chain.render(post)
        chain.finish()

    gl_fps = _rate(chain_only, frames)
    gl_full_fps = _rate(lambda: chain_only(FULL_CHAIN), frames)

    patches, engine = session.patches, session.engine
    runs: dict[bool, list] = {False: [], True: []}
    osc = getattr(session, "osc_in", None)
    sender = _OscSender(osc.port) if osc is not None else None
    try:
        if sender is not None:
            sender.__enter__()
        # serial and pipelined in turns, half the frames each time: a machine that slows down
        # or speeds up during the run weighs on both alike
        for pipelined in (False, True, False, True):
            engine.set_pipeline(pipelined)
            runs[pipelined].append(_loop_run(engine, max(1, frames // 2)))
        engine.set_pipeline(True)
    finally:
        if sender is not None:
            sender.__exit__(None, None, None)
    serial, piped = _loop_figures(runs[False]), _loop_figures(runs[True])
    display = f"{session.frame_source.name}" + (f" ({session.display_note})" if session.display_note else "")
    result = {
        "device": device_description(runner.device),
        "precision": runner.precision,
        "model": runner.info.name,
        "resolution": runner.info.resolution,
        "size": f"{size[0]}x{size[1]}",
        "frames": frames,
        "patch": patches.name,
        "gl": describe(ctx),
        "machine": f"{platform.machine()}, {platform.system()} {platform.release()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "display_path": session.frame_source.name,
        "generator_fps": round(generator_fps, 1),
        "gl_fps": round(gl_fps, 1),
        "gl_full_chain_fps": round(gl_full_fps, 1),
        "loop_fps": piped["fps"],
        "loop_fps_serial": serial["fps"],
        "pipelined_vs_serial": round(piped["fps"] / serial["fps"], 3),
        "loop_vs_generator": round(piped["fps"] / generator_fps, 3),
    }
    for key in ("frame_ms_p50", "frame_ms_p99", "gen_ms", "gen_ms_p99", "input_to_frame_ms_p50",
                "input_to_frame_ms_p99", "input_to_ready_ms_p50", "input_to_ready_ms_p99", "latency_samples",
                "hands_to_frame_ms_p50", "hands_to_frame_ms_p99", "hands_to_ready_ms_p50", "hands_to_ready_ms_p99",
                "hand_samples"):
        result[key] = piped[key]
        result[key + "_serial"] = serial[key]
    # the latency goal: input -> frame ready within one frame period plus the generator's time (p99 each)
    bound = piped["frame_ms_p99"] + piped["gen_ms_p99"] if piped["latency_samples"] else None
    result["latency_bound_ms"] = None if bound is None else round(bound, 2)
    print(f"vj bench  {result['model']} ({result['resolution']}px) -> {result['size']}, {frames} frames")
    print(f"  device    {result['device']}, {result['precision']}")
    print(f"  machine   {result['machine']}")
    print(f"  opengl    {result['gl']}")
    print(f"  display   {display}")
    print(f"  {'stage':32s} {'fps':>8s} {'ms/frame':>9s} {'vs generator':>13s}")
    for label, fps in (("generator alone (baseline)", generator_fps),
                       ("shader chain alone, plain", gl_fps),
                       ("shader chain alone, all effects", gl_full_fps),
                       (f"whole loop, serial ({patches.name})", serial["fps"]),
                       (f"whole loop, pipelined ({patches.name})", piped["fps"])):
        print(f"  {label:32s} {fps:8.1f} {1000 / fps:9.2f} {fps / generator_fps:12.2f}x")
    print(f"  pipelined / serial: {result['pipelined_vs_serial']:.2f}x")
    print(f"  {'whole loop':12s} {'fps':>7s} {'frame p50':>10s} {'p99':>7s} {'gen ms':>7s} "
          f"{'input->frame p50':>17s} {'p99':>7s} {'input->shown p50':>17s} {'p99':>7s}")
    for label, r in (("serial", serial), ("pipelined", piped)):
        print(f"  {label:12s} {r['fps']:7.1f} {r['frame_ms_p50']:10.2f} {r['frame_ms_p99']:7.2f} {r['gen_ms']:7.2f} "
              f"{_ms(r['input_to_frame_ms_p50']):>17s} {_ms(r['input_to_frame_ms_p99']):>7s} "
              f"{_ms(r['input_to_ready_ms_p50']):>17s} {_ms(r['input_to_ready_ms_p99']):>7s}")
    if bound is not None:
        ok = piped["input_to_frame_ms_p99"] <= bound
        print(f"  latency: input->frame p99 {piped['input_to_frame_ms_p99']:.2f} ms "
              f"{'<=' if ok else '>'} frame p99 + generator p99 = {bound:.2f} ms ({piped['latency_samples']} inputs)")
    else:
        print("  latency: no OSC input (the session has no OSC in)")
    if piped["hand_samples"]:
        for label, r in (("serial", serial), ("pipelined", piped)):
            print(f"  hands {label:10s} hand->frame p50 {_ms(r['hands_to_frame_ms_p50'])} p99 "
                  f"{_ms(r['hands_to_frame_ms_p99'])} ms, hand->shown p50 {_ms(r['hands_to_ready_ms_p50'])} p99 "
                  f"{_ms(r['hands_to_ready_ms_p99'])} ms ({r['hand_samples']} hand frames)")
    return result


def _ms(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def _timed(fn, frames: int, warmup: int, max_seconds: float) -> tuple[float, int]:
    """Seconds per call over up to ``frames`` calls (stopping after ``max_seconds``)."""
    for _ in range(warmup):
        fn()
    n, t0 = 0, time.perf_counter()
    while n < frames:
        fn()
        n += 1
        if n >= 3 and time.perf_counter() - t0 > max_seconds:
            break
    return (time.perf_counter() - t0) / n, n


def generator_modes(device: torch.device, compile: bool = False) -> list[tuple[str, dict]]:
    """(label, GeneratorRunner options) for every mode worth timing on ``device``."""
    modes = [("fp32 eager", dict(precision="fp32", cuda_graph=False))]
    if device.type == "cuda":
        modes += [("fp16 eager", dict(precision="fp16", cuda_graph=False)),
                  ("fp16 + CUDA graph", dict(precision="fp16", cuda_graph=True))]
        if compile:
            modes.append(("fp16 + compile + CUDA graph", dict(precision="fp16", cuda_graph=True, compile=True)))
    elif compile:
        modes.append(("fp32 + compile", dict(precision="fp32", cuda_graph=False, compile=True)))
    return modes


def run_generator_bench(g, device=None, frames: int = 100, batches=(1, 4), compile: bool = False,
                        max_seconds: float = 10.0) -> dict:
    """The generator ``g`` alone, in every mode this device offers."""
    from engine.render.gpu import GeneratorRunner, device_description, pick_device

    dev = pick_device(device)
    info = g.info
    rows = []
    rng = np.random.default_rng(0)
    for label, opts in generator_modes(dev, compile):
        runner = GeneratorRunner(g, device=str(dev), **opts)
        for batch in batches:
            zs = [torch.from_numpy(rng.standard_normal((batch, info.z_dim)).astype(np.float32)).to(dev)
                  for _ in range(8)]
            i = [0]

            def step():
                i[0] += 1
                out = runner.images(runner.styles(z=zs[i[0] % 8]), noise="const")
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                return out

            sec, n = _timed(step, frames, warmup=5 if dev.type == "cuda" else 2, max_seconds=max_seconds)
            rows.append({"mode": label, "batch": batch, "frames": n * batch,
                         "ms_per_batch": round(sec * 1000, 3), "ms_per_frame": round(sec * 1000 / batch, 3),
                         "fps": round(batch / sec, 1)})
        del runner
    result = {"device": device_description(dev), "model": info.name, "architecture": info.architecture,
              "resolution": info.resolution, "parameters": g.parameter_count(), "torch": torch.__version__,
              "machine": f"{platform.machine()}, {platform.system()} {platform.release()}", "generator": rows}
    print(f"vj bench --generator-only  {info.name} ({info.architecture}, {info.resolution}px)")
    print(f"  device    {result['device']}")
    print(f"  {'mode':28s} {'batch':>5s} {'ms/frame':>9s} {'fps':>8s} {'ms/batch':>9s}")
    for r in rows:
        print(f"  {r['mode']:28s} {r['batch']:5d} {r['ms_per_frame']:9.2f} {r['fps']:8.1f} {r['ms_per_batch']:9.2f}")
    if dev.type != "cuda":
        print("  (fp16 and CUDA graph modes need a CUDA device)")
    return result
