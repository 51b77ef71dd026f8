"""`vj bench`: frames per second of the whole headless loop and of the generator alone.

Every figure is measured in the same run as its baselines, so the ratios hold on any
machine: the generator alone is the baseline for the loop, and the shader chain
alone (no generator) shows what OpenGL costs at the output size.

`vj bench --generator-only`: the generator (mapping + synthesis, output left on the
device) at batch 1 and 4, for each way it can run here: fp32 eager; on CUDA also fp16
eager and fp16 replayed from a CUDA graph (and with ``--compile``, fp16 through
torch.compile in a CUDA graph). No OpenGL involved.
"""
from __future__ import annotations

import logging
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


def run_bench(session, frames: int = 200) -> dict:
    """The figures for one Session (headless, virtual clock): its generator, its shader chain,
    and its whole loop."""
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
        ctx.finish()

    gl_fps = _rate(chain_only, frames)
    gl_full_fps = _rate(lambda: chain_only(FULL_CHAIN), frames)

    patches = session.patches
    loop_fps = _rate(session.engine.render_frame, frames)

    result = {
        "device": device_description(runner.device),
        "precision": runner.precision,
        "model": runner.info.name,
        "resolution": runner.info.resolution,
        "size": f"{size[0]}x{size[1]}",
        "frames": frames,
        "patch": patches.name,
        "gl": describe(ctx),
        "machine": f"{platform.machine()}, {platform.system()} {platform.release()}",
        "torch": torch.__version__,
        "generator_fps": round(generator_fps, 1),
        "gl_fps": round(gl_fps, 1),
        "gl_full_chain_fps": round(gl_full_fps, 1),
        "loop_fps": round(loop_fps, 1),
        "loop_vs_generator": round(loop_fps / generator_fps, 3),
    }
    print(f"vj bench  {result['model']} ({result['resolution']}px) -> {result['size']}, {frames} frames")
    print(f"  device    {result['device']}, {result['precision']}")
    print(f"  opengl    {result['gl']}")
    print(f"  {'stage':32s} {'fps':>8s} {'ms/frame':>9s} {'vs generator':>13s}")
    for label, fps in (("generator alone (baseline)", generator_fps),
                       ("shader chain alone, plain", gl_fps),
                       ("shader chain alone, all effects", gl_full_fps),
                       (f"whole loop ({patches.name})", loop_fps)):
        print(f"  {label:32s} {fps:8.1f} {1000 / fps:9.2f} {fps / generator_fps:12.2f}x")
    return result


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
