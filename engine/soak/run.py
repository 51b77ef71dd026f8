"""Run the soak: start ``vj run`` on a two-scene set in a child process, inject faults for the
given minutes, stop it with Ctrl-C, then check what survived and print the report."""
from __future__ import annotations

import json
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from engine.soak.faults import BAD, GOOD, HANGS, Injector
from engine.soak.monitor import FrameMonitor, rss_mb

log = logging.getLogger("vj")

SET = """title = "soak"
[[scene]]
name = "one"
patch = "live.py"

[[scene]]
name = "two"
patch = "live.py"
"""
MAPPINGS = """# soak: a mappings file a user wrote, with a comment that must survive
[[binding]]
source = "osc./user/knob"
param = "speed"
"""


def _free_port(kind) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _decodes(path: Path) -> int:
    """Frames in a recording (0 if it does not open)."""
    try:
        import av
        with av.open(str(path)) as c:
            return sum(1 for _ in c.decode(video=0))
    except Exception:  # noqa: BLE001 - a broken file is what we are looking for
        return 0


def soak(minutes: float, size: str = "160x90", fps: float = 30.0, seed: int = 1, workdir: str | None = None,
         model: str | None = None, kinds: list[str] | None = None) -> dict:
    work = Path(workdir or tempfile.mkdtemp(prefix="vj-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    patch, setfile, mappings = work / "live.py", work / "soak.toml", work / "soak.mappings.toml"
    patch.write_text(GOOD.format(n=0))
    setfile.write_text(SET)
    mappings.write_text(MAPPINGS)
    takes, log_path = work / "takes", work / "engine.log"
    monitor = FrameMonitor().start()
    osc_port, oq_port = _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_STREAM)
    cmd = [sys.executable, "-m", "engine", "run", str(setfile), "--headless", "--size", size, "--fps", str(fps),
           "--osc-port", str(osc_port), "--oscquery-port", str(oq_port), "--osc-out", f"127.0.0.1:{monitor.port}",
           "--osc-out-bundle", "--mappings", str(mappings), "--record-dir", str(takes), "--midi-in", "soak",
           "--state", str(work / "state")]   # a rehearsal's bookmarks and scenes are not the user's
    if model:
        cmd += ["--model", model]
    log.info("soak: %g min in %s; engine log in %s", minutes, work, log_path)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "w") as logf:
        engine = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
    inj = Injector(patch, osc_port, mappings, log_path, seed=seed, kinds=kinds)
    rss: list[tuple[float, float]] = []
    try:
        deadline = time.monotonic() + 120
        while not monitor.arrivals and time.monotonic() < deadline and engine.poll() is None:
            time.sleep(0.1)
        if not monitor.arrivals:
            raise RuntimeError(f"the engine did not start (see {log_path})")
        t0 = time.monotonic()
        end = t0 + minutes * 60
        next_rss = t0
        while time.monotonic() < end and engine.poll() is None:
            now = time.monotonic()
            if now >= next_rss:
                r = rss_mb(engine.pid)
                if r is not None:
                    rss.append((now - t0, r))
                next_rss = now + 2.0
            inj.step()
            time.sleep(inj.rng.uniform(0.3, 1.5))
        inj.save_good()
        time.sleep(2.0)
        r = rss_mb(engine.pid)
        if r is not None:
            rss.append((time.monotonic() - t0, r))
        alive = engine.poll() is None
    finally:
        if engine.poll() is None:
            engine.send_signal(signal.SIGINT)
        try:
            code = engine.wait(timeout=60)
        except subprocess.TimeoutExpired:
            engine.kill()
            code = engine.wait()
        monitor.stop()
    timed = monitor.gaps(since=t0)
    gaps = [g for _, g in timed]
    period = 1.0 / fps
    causes: Counter = Counter()  # each long gap, by the fault that began last within 6 s before it
    long_gaps = []
    for at, g in timed:
        if g > 2 * period:
            recent = [(round(at - t, 2), k) for t, k in inj.timeline if at - 6.0 <= t <= at]
            causes[recent[-1][1] if recent else "none"] += 1
            long_gaps.append({"at_s": round(at - t0, 2), "gap_s": round(g, 3), "faults_before": recent[-3:]})
    hangs = sum(inj.counts[k] for k in HANGS)
    after_1min = [r for t, r in rss if t >= 60] or [r for _, r in rss]
    announced = inj.takes_announced()
    survived_takes = [p for p in announced if p.exists() and _decodes(p) > 0]
    bound = inj.bound_sources()
    lost_bindings = [s for s in inj.learned + ["osc./user/knob"] if s not in bound]
    report = {
        "minutes": minutes, "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "size": size, "fps": fps, "engine_alive_at_end": alive, "engine_exit_code": code,
        "frames": monitor.frames, "longest_gap_s": round(max(gaps, default=0.0), 3),
        "gaps_over_2_periods": sum(g > 2 * period for g in gaps), "hangs_injected": hangs,
        "long_gaps_by_last_fault": dict(causes.most_common()), "long_gaps": long_gaps,
        "rss_start_mb": round(rss[0][1], 1) if rss else None,
        "rss_after_1min_mb": round(after_1min[0], 1) if after_1min else None,
        "rss_end_mb": round(rss[-1][1], 1) if rss else None,
        "faults": dict(sorted(inj.counts.items())), "patch_saves": inj.saves,
        "learned_bindings": len(inj.learned), "learn_not_taken": inj.learn_missed,
        "lost_bindings": lost_bindings, "user_comment_kept": mappings.read_text().startswith("# soak:"),
        "takes_recorded": len(announced), "lost_takes": [str(p) for p in announced if p not in survived_takes],
        "midi": inj.midi_unavailable and f"skipped: {inj.midi_unavailable}" or "virtual ports opened and closed",
        "engine_log_kb": round(log_path.stat().st_size / 1024, 1), "workdir": str(work),
        "rss_mb_every_2s": [(round(t, 1), round(r, 1)) for t, r in rss],
    }
    growth = (report["rss_end_mb"] or 0) - (report["rss_after_1min_mb"] or 0)
    report["rss_growth_after_1min_mb"] = round(growth, 1)
    report["goals"] = {
        "no gap over 1 s": report["longest_gap_s"] <= 1.0,
        "at most one gap over 2 frame periods per hang": report["gaps_over_2_periods"] <= hangs,
        "RSS growth under 20 MB after the first minute": growth < 20,
        "no lost mappings or recordings": not lost_bindings and not report["lost_takes"],
        "the engine ran to the end and exited cleanly": alive and code == 0,
    }
    return report


def print_report(report: dict) -> None:
    print(f"soak: {report['minutes']:g} min on {report['machine']}, {report['size']} at {report['fps']:g} fps")
    for key in ("frames", "longest_gap_s", "gaps_over_2_periods", "long_gaps_by_last_fault", "hangs_injected",
                "rss_start_mb",
                "rss_after_1min_mb", "rss_end_mb", "rss_growth_after_1min_mb", "patch_saves", "learned_bindings",
                "learn_not_taken", "lost_bindings", "user_comment_kept", "takes_recorded", "lost_takes", "midi",
                "engine_exit_code", "engine_log_kb"):
        print(f"  {key.replace('_', ' ')}: {report[key]}")
    print("  faults: " + ", ".join(f"{k} {v}" for k, v in report["faults"].items()))
    for goal, ok in report["goals"].items():
        print(f"  [{'ok' if ok else 'MISSED'}] {goal}")


def main(minutes: float, json_path: str | None = None, **kw) -> int:
    report = soak(minutes, **kw)
    print_report(report)
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(report["goals"].values()) else 1


__all__ = ["soak", "main", "print_report", "BAD"]
