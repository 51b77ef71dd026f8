"""engine/render/cuda_gl.py without a GPU: the reasons interop_unavailable gives, that importing
the module initialises nothing, the ctypes signatures, the pinned source's PBO path with a
CPU tensor on a real headless context, and the GPU check script's syntax. The CUDA paths
themselves run only in tools/gpu_check.sh, on a GPU."""
import ast
import ctypes
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine.render import cuda_gl
from engine.render.cuda_gl import (SIGNATURES, CudaGlError, CudaGlSource, CudaRuntime, PinnedSource,
                                   ctypes_signatures, interop_unavailable)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ctx():
    from engine.render.gl import headless_context
    c = headless_context()
    yield c
    c.release()


def test_a_cpu_device_has_a_reason(ctx):
    reason = interop_unavailable(torch.device("cpu"), ctx)
    assert reason and "no CUDA device" in reason
    assert interop_unavailable("cpu", ctx)
    assert not torch.cuda.is_initialized()


def test_a_cuda_device_on_a_software_renderer_has_a_reason(ctx):
    renderer = ctx.info["GL_RENDERER"]
    if "nvidia" in (renderer + ctx.info["GL_VENDOR"]).lower():
        pytest.skip("this OpenGL context is on the NVIDIA driver")
    for device in (SimpleNamespace(type="cuda", index=0), "cuda:0"):
        reason = interop_unavailable(device, ctx)
        assert reason and renderer in reason and "not the CUDA device's" in reason, reason
        if "llvmpipe" in renderer:
            assert "llvmpipe" in reason


def test_interop_unavailable_never_raises(ctx, monkeypatch):
    class Odd:
        @property
        def type(self):
            raise RuntimeError("device lost")
    reason = interop_unavailable(Odd(), ctx)
    assert reason and "device lost" in reason


def test_no_runtime_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("VJ_LIBCUDART", str(tmp_path / "libcudart.so.99"))
    assert cuda_gl.find_libcudart() is None
    with pytest.raises(CudaGlError, match="libcudart"):
        cuda_gl.load_runtime()


def test_importing_the_module_initialises_nothing():
    code = ("import sys; import engine.render.cuda_gl as m; "
            "print('torch' in sys.modules, 'ctypes' in sys.modules); "
            "import torch; print(torch.cuda.is_initialized())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout.split()
    assert out == ["False", "False", "False"], out
    # and nothing at the module's top level but the standard library's light modules
    tree = ast.parse((ROOT / "engine/render/cuda_gl.py").read_text())
    top = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert top <= {"__future__", "logging", "os", "sys", "typing"}, top


# the C prototypes' arities (CUDA runtime API, cuda_runtime_api.h / cuda_gl_interop.h)
ARITY = {"cudaGraphicsGLRegisterImage": 4, "cudaGraphicsMapResources": 3,
         "cudaGraphicsSubResourceGetMappedArray": 4, "cudaMemcpy2DToArrayAsync": 9,
         "cudaGraphicsUnmapResources": 3, "cudaGraphicsUnregisterResource": 1, "cudaGLGetDevices": 4}


def test_the_signature_table_is_well_formed():
    assert {n: len(a) for n, a in SIGNATURES.items()} == ARITY
    sigs = ctypes_signatures()
    assert set(sigs) == set(SIGNATURES) | {"cudaGetErrorName", "cudaGetErrorString"}
    for name, (restype, argtypes) in sigs.items():
        assert name.startswith("cuda")
        assert restype in (ctypes.c_int, ctypes.c_char_p)
        for t in argtypes:
            assert isinstance(t, type) and issubclass(t, ctypes._SimpleCData | ctypes._Pointer), (name, t)
    # pointers where the API hands back handles, size_t for byte counts, the stream last
    assert sigs["cudaGraphicsGLRegisterImage"][1][0] is ctypes.POINTER(ctypes.c_void_p)
    assert sigs["cudaMemcpy2DToArrayAsync"][1][4:7] == [ctypes.c_size_t] * 3
    assert sigs["cudaGraphicsMapResources"][1][-1] is ctypes.c_void_p


def test_a_failed_call_names_the_call():
    e = CudaGlError("cudaGraphicsMapResources failed: cudaErrorInvalidResourceHandle (400)",
                    call="cudaGraphicsMapResources", code=400)
    assert e.call == "cudaGraphicsMapResources" and e.code == 400 and "cudaGraphicsMapResources" in str(e)


@pytest.mark.skipif(not os.environ.get("VJ_LIBCUDART"), reason="set VJ_LIBCUDART to a libcudart to check it")
def test_a_real_libcudart_binds_and_reports_errors():
    """With any libcudart (no driver needed): every symbol binds, and a call that fails
    raises an error naming the call and the runtime's error name."""
    rt = CudaRuntime(os.environ["VJ_LIBCUDART"])
    assert rt.error_name(100) == "cudaErrorNoDevice"
    if torch.cuda.is_available():
        pytest.skip("a driver is present: registering texture 1 might not fail")
    with pytest.raises(CudaGlError) as info:
        rt.call("cudaGraphicsGLRegisterImage", ctypes.byref(ctypes.c_void_p()), 1, cuda_gl.GL_TEXTURE_2D,
                cuda_gl.REGISTER_WRITE_DISCARD)
    assert info.value.call == "cudaGraphicsGLRegisterImage" and info.value.code
    assert str(info.value).startswith("cudaGraphicsGLRegisterImage failed: cudaError")


def test_the_interop_source_needs_cuda(ctx):
    with pytest.raises(CudaGlError, match="CUDA"):
        CudaGlSource(ctx, "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(CudaGlError, match="CUDA"):
            CudaGlSource(ctx, "cuda")


def test_the_pinned_source_uploads_a_cpu_tensor_through_a_pbo(ctx):
    src = PinnedSource(ctx)
    assert src.name == "pinned"
    rng = np.random.default_rng(1)
    frames = [torch.from_numpy(rng.integers(0, 256, (48, 64, 4), dtype=np.uint8)) for _ in range(3)]
    tex = src.upload(frames[0])
    assert tex.size == (64, 48) and tex.components == 4
    for f in frames:
        assert src.upload(f) is tex                      # same texture while the size stays
        got = np.frombuffer(tex.read(), np.uint8).reshape(48, 64, 4)
        assert np.array_equal(got, f.numpy())           # row 0 (top) is the texture's row 0
    # the same convention as the CPU path: texture.write of the array
    ref = ctx.texture((64, 48), 4)
    ref.write(frames[-1].numpy())
    assert ref.read() == tex.read()
    ref.release()
    small = torch.zeros((16, 32, 4), dtype=torch.uint8)
    tex2 = src.upload(small)
    assert tex2 is not tex and tex2.size == (32, 16)
    with pytest.raises(ValueError, match=r"\[H, W, 4\]"):
        src.upload(torch.zeros((16, 32, 3), dtype=torch.uint8))
    with pytest.raises(ValueError, match="non-contiguous"):
        src.upload(torch.zeros((32, 16, 4), dtype=torch.uint8).transpose(0, 1))
    src.release()
    src.release()
    assert src.texture is None


def test_the_gpu_check_script_parses():
    script = ROOT / "tools/gpu_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert "set -euo pipefail" in text
    for needle in ("models random stylegan2 --resolution 1024", "--preset t --resolution 1024",
                   "--generator-only", "--display-path \"$path\"", "nvidia-smi"):
        assert needle in text
