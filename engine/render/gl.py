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
