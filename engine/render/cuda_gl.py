"""The generator's image from a CUDA tensor into the shader chain's texture: CUDA-GL
interop (``CudaGlSource``), and the CUDA fallback through pinned host memory and a
pixel-buffer object (``PinnedSource``). Both follow ``engine.render.frame_source``'s
``FrameSource`` interface (``name``, ``upload(image) -> texture``, ``release()``), plus an
optional ``ready`` event (below).

**UNMEASURED:** every CUDA code path here (interop registration, map/copy/unmap, the
pinned device-to-host copy, the ``cudaGLGetDevices`` check in ``interop_unavailable``) has
only been read and type-checked against the CUDA runtime's symbols (libcudart 12.9 and
13.x: the calls link and return the expected error without a driver); none of it has run
on a GPU yet, and neither its correctness on one (row order, synchronisation) nor its
speed is measured. ``tools/gpu_check.sh`` is the first run. Only ``PinnedSource`` with a
CPU tensor (the same PBO path) and the checks in ``interop_unavailable`` that precede any
CUDA call run in CI (EGL on llvmpipe).

Interop, once per size: ``cudaGraphicsGLRegisterImage`` on an RGBA8 ``GL_TEXTURE_2D``
(moderngl ``ctx.texture((w, h), 4)``; CUDA cannot register a 3-channel texture) with
``WriteDiscard``; each frame, on the render thread's current torch stream:
``cudaGraphicsMapResources`` -> ``cudaGraphicsSubResourceGetMappedArray`` ->
``cudaMemcpy2DToArrayAsync`` (device to device, pitch ``w*4``) -> ``cudaGraphicsUnmapResources``.
The runtime functions are called through ctypes on the libcudart that torch loaded
(``torch.cuda.cudart()`` exposes no graphics-interop functions). Mapping orders the copy
after earlier OpenGL work on the texture, unmapping orders later OpenGL work after the
copy, so the texture is safe for the shader chain once ``upload`` returns.

Synchronisation contract (both sources): ``upload(image, ready=None)``.
- ``ready``: a ``torch.cuda.Event`` the producer recorded on its own stream after it wrote
  ``image``. The copy is queued behind it (``stream.wait_event``: a GPU-side wait, the
  render thread does not block). Without it, ``image`` must have been written on the
  render thread's current stream, or already be complete (synchronised).
- ``done``: after ``upload`` returns, ``source.done`` is a ``torch.cuda.Event`` recorded
  after the copy out of ``image``. A producer that writes into the same tensor again (a
  CUDA graph's static output, a double buffer) must first make its stream wait on it
  (``producer_stream.wait_event(source.done)``, after the render thread has handed the
  tensor back). ``PinnedSource`` has already waited for its copy, so there it is complete.
- Call ``upload`` and ``release`` on the render thread, with the GL context current, and
  ``release`` before the GL context goes.

Row order: ``image`` is top row first, as the generator produces it, and row 0 is copied
to the texture's row 0 (the first row in GL memory), exactly as ``texture.write`` of a
NumPy ``[H, W, 3]`` array does for the CPU path; the chain's blit shader does the flip.

Importing this module imports neither torch nor ctypes, and initialises nothing.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import moderngl
    import torch

log = logging.getLogger(__name__)

GL_TEXTURE_2D = 0x0DE1
REGISTER_WRITE_DISCARD = 2     # cudaGraphicsRegisterFlagsWriteDiscard
MEMCPY_DEVICE_TO_DEVICE = 3    # cudaMemcpyDeviceToDevice
GL_DEVICE_LIST_ALL = 1         # cudaGLDeviceListAll
SUCCESS = 0                    # cudaSuccess

# The runtime functions used, each returning cudaError_t (an int), with their argument
# types in C; ``ctypes_signatures()`` turns the names into ctypes types.
SIGNATURES: dict[str, tuple[str, ...]] = {
    # (cudaGraphicsResource_t *resource, GLuint image, GLenum target, unsigned int flags)
    "cudaGraphicsGLRegisterImage": ("void**", "unsigned", "unsigned", "unsigned"),
    # (int count, cudaGraphicsResource_t *resources, cudaStream_t stream)
    "cudaGraphicsMapResources": ("int", "void**", "void*"),
    # (cudaArray_t *array, cudaGraphicsResource_t resource, unsigned int arrayIndex, unsigned int mipLevel)
    "cudaGraphicsSubResourceGetMappedArray": ("void**", "void*", "unsigned", "unsigned"),
    # (cudaArray_t dst, size_t wOffset, size_t hOffset, const void *src, size_t spitch,
    #  size_t width (bytes), size_t height (rows), enum cudaMemcpyKind kind, cudaStream_t stream)
    "cudaMemcpy2DToArrayAsync": ("void*", "size_t", "size_t", "void*", "size_t", "size_t", "size_t", "int",
                                 "void*"),
    # (int count, cudaGraphicsResource_t *resources, cudaStream_t stream)
    "cudaGraphicsUnmapResources": ("int", "void**", "void*"),
    # (cudaGraphicsResource_t resource)
    "cudaGraphicsUnregisterResource": ("void*",),
    # (unsigned int *pCudaDeviceCount, int *pCudaDevices, unsigned int cudaDeviceCount,
    #  enum cudaGLDeviceList deviceList)
    "cudaGLGetDevices": ("unsigned*", "int*", "unsigned", "int"),
}
# (cudaError_t error) -> const char *
ERROR_TEXT_FUNCTIONS = ("cudaGetErrorName", "cudaGetErrorString")

# What an error usually means here, by the runtime's error name.
HINTS = {
    "cudaErrorNotSupported": "the OpenGL context is probably not on the NVIDIA GPU",
    "cudaErrorInvalidResourceHandle": "CUDA and OpenGL on different contexts or threads, or a released texture",
    "cudaErrorInvalidGraphicsContext": "no current OpenGL context on this thread",
    "cudaErrorInsufficientDriver": "the NVIDIA driver is older than this CUDA runtime",
    "cudaErrorNoDevice": "no CUDA device (or none behind this OpenGL context)",
}


def ctypes_signatures() -> dict[str, tuple[type, list[type]]]:
    """``SIGNATURES`` as ctypes: name -> (restype, argtypes)."""
    import ctypes
    types = {"void*": ctypes.c_void_p, "void**": ctypes.POINTER(ctypes.c_void_p),
             "int": ctypes.c_int, "int*": ctypes.POINTER(ctypes.c_int),
             "unsigned": ctypes.c_uint, "unsigned*": ctypes.POINTER(ctypes.c_uint),
             "size_t": ctypes.c_size_t}
    out = {name: (ctypes.c_int, [types[a] for a in args]) for name, args in SIGNATURES.items()}
    out.update({name: (ctypes.c_char_p, [ctypes.c_int]) for name in ERROR_TEXT_FUNCTIONS})
    return out


class CudaGlError(RuntimeError):
    """A CUDA runtime call that failed (``call``, ``code``), or interop that cannot start."""

    def __init__(self, message: str, call: str | None = None, code: int | None = None):
        super().__init__(message)
        self.call = call
        self.code = code


def find_libcudart() -> str | None:
    """The CUDA runtime library torch uses: ``$VJ_LIBCUDART`` if set, else the one already
    loaded in this process (torch's CUDA build loads it), else one beside torch (its lib
    folder, pip's ``nvidia/cu13/lib`` or ``nvidia/cuda_runtime/lib``), else the system's."""
    env = os.environ.get("VJ_LIBCUDART")
    if env:
        return env if os.path.exists(env) else None
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split(maxsplit=5)[-1].strip()
                if os.path.basename(path).startswith("libcudart.so"):
                    return path
    except OSError:
        pass
    import glob
    candidates = []
    torch = sys.modules.get("torch")
    major = None
    if torch is not None:
        major = (getattr(torch.version, "cuda", None) or "").split(".")[0] or None
        candidates += glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libcudart.so*"))
    for entry in sys.path:
        candidates += sorted(glob.glob(os.path.join(entry, "nvidia", "*", "lib", "libcudart.so*")))
    if major:  # the runtime torch was built against first
        candidates.sort(key=lambda p: not p.endswith(f".so.{major}") and f".so.{major}." not in p)
    if candidates:
        return candidates[0]
    import ctypes.util
    return ctypes.util.find_library("cudart")


class CudaRuntime:
    """The runtime functions in ``SIGNATURES`` from one libcudart, bound through ctypes;
    ``call`` raises ``CudaGlError`` naming the call and the error."""

    def __init__(self, path: str):
        import ctypes
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            raise CudaGlError(f"cannot load the CUDA runtime {path}: {e}") from e
        sigs = ctypes_signatures()
        missing = [n for n in sigs if not hasattr(lib, n)]
        if missing:
            raise CudaGlError(f"the CUDA runtime {path} lacks {', '.join(missing)}")
        self.path = path
        self._fns = {}
        for name, (restype, argtypes) in sigs.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
            self._fns[name] = fn

    def error_name(self, code: int) -> str:
        return (self._fns["cudaGetErrorName"](code) or b"?").decode(errors="replace")

    def error(self, call: str, code: int) -> CudaGlError:
        name = self.error_name(code)
        text = (self._fns["cudaGetErrorString"](code) or b"").decode(errors="replace")
        hint = HINTS.get(name)
        return CudaGlError(f"{call} failed: {name} ({code}): {text}" + (f" ({hint})" if hint else ""),
                           call=call, code=code)

    def call(self, name: str, *args) -> None:
        code = self._fns[name](*args)
        if code != SUCCESS:
            raise self.error(name, code)

    def raw(self, name: str, *args) -> int:
        """The call's error code, unchecked."""
        return self._fns[name](*args)


_runtimes: dict[str, CudaRuntime] = {}


def load_runtime() -> CudaRuntime:
    path = find_libcudart()
    if path is None:
        raise CudaGlError("no CUDA runtime library (libcudart) found; set VJ_LIBCUDART to its path")
    rt = _runtimes.get(path)
    if rt is None:
        rt = _runtimes[path] = CudaRuntime(path)
    return rt


def _check_image(image, channels: int = 4) -> tuple[int, int]:
    import torch
    if not torch.is_tensor(image) or image.dtype != torch.uint8 or image.ndim != 3 \
            or image.shape[2] != channels or not image.is_contiguous():
        desc = (f"{tuple(image.shape)} {image.dtype}{'' if image.is_contiguous() else ' non-contiguous'}"
                if torch.is_tensor(image) else type(image).__name__)
        raise ValueError(f"expected a contiguous torch.uint8 tensor [H, W, {channels}], got {desc}")
    return int(image.shape[1]), int(image.shape[0])


def _new_texture(ctx: moderngl.Context, w: int, h: int) -> moderngl.Texture:
    import moderngl
    tex = ctx.texture((w, h), 4)  # GL_RGBA8: what CUDA can register (no 3-channel formats)
    tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
    tex.repeat_x = tex.repeat_y = False
    return tex


class CudaGlSource:
    """CUDA tensor -> OpenGL texture without leaving the GPU (UNMEASURED: see the module
    docstring). ``ctx`` must be on the NVIDIA GPU that holds the tensors
    (``interop_unavailable`` says whether it is)."""

    name = "cuda-gl"
    channels = 4       # what the generator hands over: RGBA (interop takes no 3-channel format)

    def __init__(self, ctx: moderngl.Context, device: torch.device | str | None = None,
                 runtime: CudaRuntime | None = None):
        import torch
        self.ctx = ctx
        self.device = torch.device(device if device is not None else "cuda")
        if self.device.type != "cuda":
            raise CudaGlError(f"CUDA-GL interop needs a CUDA device, not {self.device}")
        if not torch.cuda.is_available():
            raise CudaGlError("CUDA-GL interop needs CUDA, and torch has none here")
        self._rt = runtime or load_runtime()
        self.texture: moderngl.Texture | None = None
        self._resource = None   # ctypes.c_void_p: the registered texture
        self._size: tuple[int, int] | None = None
        self.done: torch.cuda.Event | None = None
        self._done = torch.cuda.Event()

    def upload(self, image: torch.Tensor, ready: torch.cuda.Event | None = None) -> moderngl.Texture:
        """Copy ``image`` (uint8 [H, W, 4], RGBA, top row first, contiguous, on the CUDA
        device) into the texture; returns it (the same object while the size is unchanged).
        ``ready``: the producer's event, recorded after it wrote ``image``."""
        import ctypes

        import torch
        w, h = _check_image(image)
        if not image.is_cuda:
            raise ValueError(f"CUDA-GL interop needs the image on a CUDA device, got it on {image.device}")
        with torch.cuda.device(image.device):
            if self._size != (w, h):
                self._register(w, h)
            stream = torch.cuda.current_stream(image.device)
            if ready is not None:
                stream.wait_event(ready)
            handle = ctypes.c_void_p(stream.cuda_stream)
            res = ctypes.byref(self._resource)
            self._rt.call("cudaGraphicsMapResources", 1, res, handle)
            try:
                array = ctypes.c_void_p()
                self._rt.call("cudaGraphicsSubResourceGetMappedArray", ctypes.byref(array), self._resource, 0, 0)
                # row 0 of the tensor (the top row) -> row 0 of the texture, as texture.write does
                self._rt.call("cudaMemcpy2DToArrayAsync", array, 0, 0, ctypes.c_void_p(image.data_ptr()),
                              w * 4, w * 4, h, MEMCPY_DEVICE_TO_DEVICE, handle)
            except BaseException:
                self._rt.raw("cudaGraphicsUnmapResources", 1, res, handle)  # the first error is the one to report
                raise
            self._rt.call("cudaGraphicsUnmapResources", 1, res, handle)
            image.record_stream(stream)  # the allocator must not reuse image's memory before the copy ran
            self._done.record(stream)
            self.done = self._done
        return self.texture

    def _register(self, w: int, h: int) -> None:
        import ctypes
        self.release()
        tex = _new_texture(self.ctx, w, h)
        resource = ctypes.c_void_p()
        try:
            self._rt.call("cudaGraphicsGLRegisterImage", ctypes.byref(resource), tex.glo, GL_TEXTURE_2D,
                          REGISTER_WRITE_DISCARD)
        except BaseException:
            tex.release()
            raise
        self.texture, self._resource, self._size = tex, resource, (w, h)
        log.debug("cuda-gl: registered a %dx%d RGBA8 texture (GL %d)", w, h, tex.glo)

    def release(self) -> None:
        """Unregister and free the texture (idempotent). The GL context must still be alive."""
        if self._resource is not None:
            code = self._rt.raw("cudaGraphicsUnregisterResource", self._resource)
            if code != SUCCESS:
                log.warning("%s", self._rt.error("cudaGraphicsUnregisterResource", code))
            self._resource = None
        if self.texture is not None:
            self.texture.release()
            self.texture = None
        self._size = None


class PinnedSource:
    """The CUDA fallback: device -> pinned host memory (asynchronous copy, then waited
    for) -> a pixel-buffer object, orphaned each frame so the driver never waits for the
    previous upload -> the texture. A CPU tensor skips the first step (the path CI runs).
    UNMEASURED on CUDA (see the module docstring)."""

    name = "pinned"
    channels = 4

    def __init__(self, ctx: moderngl.Context, device: torch.device | str | None = None):
        self.ctx = ctx
        self.device = device
        self.texture: moderngl.Texture | None = None
        self._buffer: moderngl.Buffer | None = None
        self._pinned: torch.Tensor | None = None
        self._size: tuple[int, int] | None = None
        self._event = None
        self.done: torch.cuda.Event | None = None

    def upload(self, image: torch.Tensor, ready: torch.cuda.Event | None = None) -> moderngl.Texture:
        """``image``: uint8 [H, W, 4], RGBA, top row first, contiguous, on a CUDA device (or
        the CPU). ``ready``: the producer's event, recorded after it wrote ``image``.
        Returns when the bytes are on their way to OpenGL: the image may be reused at once."""
        import torch
        w, h = _check_image(image)
        if self._size != (w, h) or (image.is_cuda and self._pinned is None):
            self._allocate(w, h, image.is_cuda)
        if image.is_cuda:
            with torch.cuda.device(image.device):
                stream = torch.cuda.current_stream(image.device)
                if ready is not None:
                    stream.wait_event(ready)
                with torch.cuda.stream(stream):
                    self._pinned.copy_(image, non_blocking=True)
                if self._event is None:
                    self._event = torch.cuda.Event()
                self._event.record(stream)
                self._event.synchronize()
                self.done = self._event
            host = self._pinned
        else:
            host = image
        self._buffer.orphan()
        self._buffer.write(host.numpy())
        self.texture.write(self._buffer)  # row 0 (top) -> texture row 0, as texture.write(array) does
        return self.texture

    def _allocate(self, w: int, h: int, pinned: bool) -> None:
        import torch
        self.release()
        self.texture = _new_texture(self.ctx, w, h)
        self._buffer = self.ctx.buffer(reserve=w * h * 4, dynamic=True)
        if pinned:
            self._pinned = torch.empty((h, w, 4), dtype=torch.uint8, pin_memory=True)
        self._size = (w, h)

    def release(self) -> None:
        """Free the texture, the buffer and the pinned memory (idempotent)."""
        for obj in (self.texture, self._buffer):
            if obj is not None:
                obj.release()
        self.texture = self._buffer = self._pinned = None
        self._size = None


def interop_unavailable(device, ctx) -> str | None:
    """None when CUDA-GL interop can work for ``device`` (a torch.device, a string such as
    "cuda:0", or anything with ``.type``/``.index``) and the OpenGL context ``ctx``, else a
    short reason. Checks, cheapest first: a CUDA device; an NVIDIA OpenGL renderer; CUDA in
    torch; a libcudart with the interop functions; and, with ``ctx`` current on this thread,
    that ``cudaGLGetDevices`` puts the context on that CUDA device. Never raises; touches
    CUDA only when the device is a CUDA one and the renderer is NVIDIA's."""
    try:
        kind = getattr(device, "type", None) or str(device).split(":")[0]
        if kind != "cuda":
            return f"no CUDA device (the generator runs on {device})"
        info = getattr(ctx, "info", None) or {}
        renderer = str(info.get("GL_RENDERER", "?"))
        vendor = str(info.get("GL_VENDOR", "?"))
        if "nvidia" not in f"{renderer} {vendor}".lower():
            return (f"OpenGL renderer {renderer} ({vendor}) is not the CUDA device's: "
                    "interop needs the OpenGL context on the NVIDIA driver")
        import torch
        if not torch.cuda.is_available():
            return f"torch {torch.__version__} has no usable CUDA device"
        try:
            rt = load_runtime()
        except CudaGlError as e:
            return str(e)
        index = getattr(device, "index", None)
        if index is None:
            index = torch.cuda.current_device()
        import ctypes
        count = ctypes.c_uint(0)
        devices = (ctypes.c_int * 16)()
        code = rt.raw("cudaGLGetDevices", ctypes.byref(count), devices, 16, GL_DEVICE_LIST_ALL)
        if code != SUCCESS:
            return str(rt.error("cudaGLGetDevices", code))
        found = list(devices[:min(count.value, 16)])
        if index not in found:
            return f"the OpenGL context is on CUDA device(s) {found}, not cuda:{index}"
        return None
    except Exception as e:  # noqa: BLE001 - a reason, never an exception
        return f"interop check failed: {type(e).__name__}: {e}"
