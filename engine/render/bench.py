"""`vj bench`: frames per second of the whole headless loop and of the generator alone.

Every figure is measured in the same run as its baselines, so the ratios hold on any
machine: the generator alone is the baseline for the loop, and the shader chain
alone (no generator) shows what OpenGL costs at the output size.
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


def run_bench(model=None, size=(1280, 720), frames: int = 200, patch=None, device=None,
              precision: str = "auto") -> dict:
    from engine.cli import load_model
    from engine.patching.loader import PatchHost
    from engine.render.gl import describe, headless_context
    from engine.render.gpu import GeneratorRunner, device_description, share_cores_with_gl
    from engine.render.loop import Engine
    from engine.render.post import ShaderChain
    from engine.signals.bus import SignalBus
    from engine.signals.clock import VirtualClock

    runner = GeneratorRunner(load_model(model), device=device, precision=precision)
    ctx = headless_context()
    share_cores_with_gl(describe(ctx), runner.device)
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

    chain = ShaderChain(ctx, size)
    img = gen_only()

    def chain_only(post=None):
        chain.upload(img)
        chain.render(post)
        ctx.finish()

    gl_fps = _rate(chain_only, frames)
    gl_full_fps = _rate(lambda: chain_only(FULL_CHAIN), frames)

    patches = PatchHost(patch, runner.info)
    patches.load()
    engine = Engine(runner, patches, chain, SignalBus(), VirtualClock(30.0), fps=30.0)
    loop_fps = _rate(engine.render_frame, frames)

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
