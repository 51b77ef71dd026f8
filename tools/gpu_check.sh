#!/usr/bin/env bash
# The first GPU check of the generators and the display path (issue 10, item 6), on a
# machine with an H100/H200, from the repo root after `pip install -e .`:
#
#     bash tools/gpu_check.sh            # everything goes under $OUT (default ./gpu-check-out)
#     MODELS=sg2-1024 bash tools/gpu_check.sh     # one model only (sg2-1024, sg3t-1024): to split
#                                                 # the run where one command is limited to 10 minutes
#
# It follows shared/reference/gpu-path-review.md ("A first GPU check in one prepared
# script"): versions; a CUDA-GL and pinned round trip that checks the bytes and the row
# order; random-weight StyleGAN2-1024 (config F) and StyleGAN3-T-1024; the generator alone
# (fp32, fp16, fp16 + CUDA graph, batch 1); the whole loop at 1920x1080 through each
# display path; a summary against the goals. Each step logs to $OUT/<step>.log, and a
# step that fails is reported and the rest still run. Everything printed is also in
# $OUT/gpu-check.log.
#
# Look first at: (1) the "interop" lines: the headless EGL renderer must be NVIDIA's and
# interop_unavailable must say None, else every cuda-gl figure is void; (2) the round
# trip: "rows match" for cuda-gl and pinned (row order, synchronisation); (3) the summary
# table against the goals (StyleGAN2-1024 <= 4 ms, StyleGAN3-T-1024 <= 12 ms, 1080p loop
# >= 120 fps with p99 frame < 10 ms); (4) any FAILED step's log (a CUDA graph capture that
# fails shows in the gen-*.log files).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu-check-out}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu-check.log") 2>&1
STEP_TIMEOUT="${STEP_TIMEOUT:-240}"   # seconds per step
FAILED=()

# step NAME CMD...: runs CMD with its output in $OUT/NAME.log; never stops the script.
step() {
  local name=$1 t0=$SECONDS rc=0
  shift
  echo "== $name: $*"
  timeout "$STEP_TIMEOUT" "$@" >"$OUT/$name.log" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "   ok ($((SECONDS - t0)) s)"
  else
    echo "   FAILED $name (rc $rc, $((SECONDS - t0)) s; $OUT/$name.log):"
    tail -n 20 "$OUT/$name.log" | sed 's/^/   | /' || true
    FAILED+=("$name")
  fi
}

echo "== versions ($(date -u +%FT%TZ))"
nvidia-smi || echo "FAILED nvidia-smi"
python - <<'EOF' || echo "FAILED versions"
import platform, torch, moderngl
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version(), "| moderngl", moderngl.__version__)
print("cuda available:", torch.cuda.is_available(),
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no device")
EOF

echo "== interop"
python - <<'EOF' || echo "FAILED interop check"
import torch
from engine.render.gl import headless_context, describe
from engine.render.cuda_gl import find_libcudart, interop_unavailable
ctx = headless_context()
print("headless OpenGL:", describe(ctx), "| vendor", ctx.info.get("GL_VENDOR"))
print("libcudart:", find_libcudart())
print("interop_unavailable:", interop_unavailable(torch.device("cuda"), ctx))
EOF

# Bytes and row order through both CUDA sources: the texture read back must equal the
# tensor (row 0 of the tensor = row 0 of the texture), with the producer on a side stream.
step roundtrip python - <<'EOF'
import sys, time, traceback
import numpy as np, torch
from engine.render.gl import headless_context
from engine.render.cuda_gl import CudaGlSource, PinnedSource
ctx = headless_context()
h, w = 1080, 1920
failed = []
for cls in (CudaGlSource, PinnedSource):
  try:
    src = cls(ctx, "cuda")
    side = torch.cuda.Stream()
    for i in range(3):
        with torch.cuda.stream(side):
            img = torch.randint(0, 256, (h, w, 4), dtype=torch.uint8, device="cuda")
            img[0] = 255; img[-1] = 0                      # top row white, bottom row black
            ready = torch.cuda.Event(); ready.record(side)
        tex = src.upload(img, ready=ready)
        got = np.frombuffer(tex.read(), np.uint8).reshape(h, w, 4)
        ok = np.array_equal(got, img.cpu().numpy())
        print(f"{src.name} frame {i}: rows match: {ok}; first row {got[0, :2].tolist()}")
        assert ok, "texture differs from the tensor"
    t = []
    for i in range(200):
        t0 = time.perf_counter(); src.upload(img); ctx.finish(); t.append(time.perf_counter() - t0)
    print(f"{src.name}: 1080p upload + glFinish p50 {np.median(t) * 1e3:.3f} ms, p99 {np.percentile(t, 99) * 1e3:.3f} ms")
    src.release()
  except Exception:
    traceback.print_exc(); failed.append(cls.__name__)
if failed:
    sys.exit(f"round trip FAILED for {', '.join(failed)}")
EOF

read -r -a MODELS <<<"${MODELS:-sg2-1024 sg3t-1024}"
for m in "${MODELS[@]}"; do
  case "$m" in
    sg2-1024) step model-sg2-1024 python -m engine models random stylegan2 --resolution 1024 --out "$OUT/sg2-1024.safetensors" ;;
    sg3t-1024) step model-sg3t-1024 python -m engine models random stylegan3 --preset t --resolution 1024 --out "$OUT/sg3t-1024.safetensors" ;;
    *) echo "== unknown model $m (sg2-1024, sg3t-1024)" ;;
  esac
done

for m in "${MODELS[@]}"; do
  f="$OUT/$m.safetensors"
  if [ ! -f "$f" ]; then echo "== skipping $m: no $f"; continue; fi
  step "gen-$m" python -m engine bench --generator-only --model "$f" --json "$OUT/gen-$m.json"
  for path in cuda-gl pinned; do
    step "loop-$m-$path" python -m engine bench --model "$f" --size 1920x1080 --display-path "$path" \
      --json "$OUT/loop-$m-$path.json"
  done
done

echo "== summary"
python - "$OUT" <<'EOF' || echo "FAILED summary"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
GOAL_MS = {"sg2-1024": 4.0, "sg3t-1024": 12.0}
GOAL_FPS, GOAL_P99 = 120.0, 10.0
lines = []
verdicts = {}  # every goal, MISS until a figure meets it
for m, goal in GOAL_MS.items():
    verdicts[f"{m} synthesis <= {goal} ms"] = False
    for path in ("cuda-gl", "pinned"):
        verdicts[f"{m} {path} loop >= {GOAL_FPS:.0f} fps, p99 < {GOAL_P99} ms"] = False

def load(name):
    p = out / name
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as e:
        lines.append(f"  {name}: missing ({type(e).__name__})")
        return None

def num(d, k):
    v = d.get(k)
    return f"{v:.2f}" if isinstance(v, (int, float)) else "-"

for m, goal in GOAL_MS.items():
    lines.append(f"{m}: generator, batch 1 (goal <= {goal} ms)")
    g = load(f"gen-{m}.json")
    if g:
        rows = [r for r in g.get("generator", []) if r.get("batch") == 1]
        for r in rows:
            lines.append(f"  {r.get('mode', '?'):30s} {r.get('ms_per_frame', float('nan')):8.2f} ms/frame")
        best = min((r["ms_per_frame"] for r in rows if isinstance(r.get("ms_per_frame"), (int, float))), default=None)
        verdicts[f"{m} synthesis <= {goal} ms"] = best is not None and best <= goal
    lines.append(f"{m}: whole loop at 1920x1080 (goal >= {GOAL_FPS:.0f} fps, p99 frame < {GOAL_P99} ms)")
    lines.append(f"  {'path':8s} {'fps':>8s} {'serial':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'in->frame p50':>14s} {'p99':>8s}")
    for path in ("cuda-gl", "pinned"):
        d = load(f"loop-{m}-{path}.json")
        if not d:
            continue
        lines.append(f"  {str(d.get('display_path', path)):8s} {num(d, 'loop_fps'):>8s} {num(d, 'loop_fps_serial'):>8s} "
                     f"{num(d, 'frame_ms_p50'):>8s} {num(d, 'frame_ms_p99'):>8s} "
                     f"{num(d, 'input_to_frame_ms_p50'):>14s} {num(d, 'input_to_frame_ms_p99'):>8s}")
        if d.get("display_path", path) != path:
            lines.append(f"  (asked for {path}, ran {d.get('display_path')})")
        fps, p99 = d.get("loop_fps"), d.get("frame_ms_p99")
        verdicts[f"{m} {path} loop >= {GOAL_FPS:.0f} fps, p99 < {GOAL_P99} ms"] = \
            isinstance(fps, (int, float)) and isinstance(p99, (int, float)) and fps >= GOAL_FPS and p99 < GOAL_P99
lines.append("goals:")
lines += [f"  {'MET ' if ok else 'MISS'} {k}" for k, ok in verdicts.items()]
text = "\n".join(lines)
print(text)
(out / "summary.txt").write_text(text + "\n")
(out / "summary.json").write_text(json.dumps(verdicts, indent=2) + "\n")
EOF

if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "== failed steps: ${FAILED[*]}"
else
  echo "== all steps ran"
fi
echo "== everything is under $OUT"
