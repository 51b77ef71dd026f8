"""OpenGL contexts: a standalone EGL context for headless work, or a glfw window.

Headless runs need no display: EGL on Mesa's llvmpipe in CI, on the NVIDIA driver
on a GPU server."""
from __future__ import annotations

import logging

import moderngl

log = logging.getLogger(__name__)


class GLError(Exception):
    pass


def headless_context() -> moderngl.Context:
    errors = []
    for kwargs in ({"backend": "egl"}, {}):
        try:
            return moderngl.create_standalone_context(require=330, **kwargs)
        except Exception as e:  # noqa: BLE001 - try the next backend, report all at the end
            errors.append(f"{kwargs.get('backend', 'default')}: {e}")
    raise GLError("no headless OpenGL 3.3 context could be made (" + "; ".join(errors) +
                  "). On Debian/Ubuntu install libegl1 and libgl1-mesa-dri.")


def describe(ctx: moderngl.Context) -> str:
    info = ctx.info
    return f"{info.get('GL_RENDERER', '?')} / OpenGL {info.get('GL_VERSION', '?')}"


def _finish_without_gil():
    """glFinish through ctypes, which lets go of Python's GIL while it waits; moderngl's own
    ``finish`` (and every moderngl call) holds it, so while a software renderer draws, a
    generator on another thread could not run a line of Python. None if no GL library is
    found (the caller falls back to ``ctx.finish``)."""
    import ctypes
    for name in ("libOpenGL.so.0", "libGL.so.1", "libGL.so"):
        try:
            fn = ctypes.CDLL(name).glFinish
        except (OSError, AttributeError):
            continue
        fn.restype, fn.argtypes = None, []
        return fn
    return None


class GLWait:
    """Waits until the current context's commands are done, without holding the GIL.

    It acts on the context current on the calling thread (GLVND dispatches by the current
    context), which is the render thread's: the only thread that touches OpenGL."""

    def __init__(self, ctx: moderngl.Context):
        self.ctx = ctx
        self._fn = _finish_without_gil()

    @property
    def releases_gil(self) -> bool:
        return self._fn is not None

    def __call__(self) -> None:
        if self._fn is not None:
            self._fn()
        else:
            self.ctx.finish()


def is_software(ctx: moderngl.Context) -> bool:
    """A renderer that draws on the CPU (Mesa llvmpipe, softpipe, swrast)."""
    renderer = str(ctx.info.get("GL_RENDERER", "")).lower()
    return any(s in renderer for s in ("llvmpipe", "softpipe", "swrast"))
