"""The shader chain: generator image -> upscale -> blit -> kaleidoscope -> feedback -> colour.

Each pass is one fragment shader from ``shaders/`` drawn into an output-sized
texture (the upscale pass into a texture a few times the image's size, and only when
the output is at least twice as large as the image). A pass whose settings are
neutral is skipped, so the plain chain is one or two draws. Feedback settings are
given per frame at 30 fps and scaled by the real frame time, so trails last as long
in seconds at 60 fps as at 30.

The image arrives as a texture from a frame source (``render/frame_source.py``, ``show``);
``upload`` takes a NumPy array through a pixel-buffer upload of the chain's own. On a
software renderer (llvmpipe) every draw that reads the previous pass's output would wait
for it inside moderngl, holding Python's GIL; the chain waits between passes through
``GLWait`` instead, which lets a generator on another thread run meanwhile. The blit is
one quad where the image lands with a one-fetch fragment shader; the bars around it are
cleared, not shaded (on llvmpipe at 1280x720 with a square model: 3 ms of CPU instead of 10).

The border is marked where it is made: the bars (and anything the picture has not reached
yet, such as a fresh feedback history) are cleared to alpha 0, the picture is drawn with
alpha 1, and every later pass carries alpha along with colour as premultiplied coverage. The
colour grade applies to the picture only (``colour.frag`` grades the colour under the
coverage and puts it back over black), so a brightness flash, a contrast below 1 or an
invert never turns a border grey, whatever the patch's fit, zoom, kaleidoscope or feedback.
The output's alpha is that coverage; what shows it (window, recorder) takes RGB only.

Settings come from the patch's Controls.post, by these names:
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import moderngl
import numpy as np

from engine import paths
from engine.render.gl import GLWait, is_software
from engine.reporting import Once

log = logging.getLogger(__name__)
vj_log = logging.getLogger("vj")

MAX_SHADER_BYTES = 256 * 1024
WATCH_INTERVAL = 0.25  # seconds between stat() rounds of the chain's shader files
PASSES = {  # program name -> (fragment shader, vertex shader)
    "upscale": ("upscale.frag", "fullscreen.vert"),
    "blit": ("blit.frag", "blit.vert"),
    "kaleido": ("kaleido.frag", "fullscreen.vert"),
    "feedback": ("feedback.frag", "fullscreen.vert"),
    "colour": ("colour.frag", "fullscreen.vert"),
}

POST_DEFAULTS = {
    "fit": 0.0,             # 0 = whole image with black bars, 1 = fill the canvas, cropping
    "zoom": 1.0,
    "kaleido": 0.0,         # mirrored segments; below 2 = off
    "kaleido_rotate": 0.0,  # turns
    "feedback": 0.0,        # 0..1 trail amount per 1/30 s; 0 = off
    "feedback_zoom": 1.0,   # >1 pushes trails outwards, per 1/30 s
    "feedback_rotate": 0.0,  # radians per 1/30 s
    "brightness": 0.0,
    "contrast": 1.0,
    "saturation": 1.0,
    "hue": 0.0,             # turns
    "invert": 0.0,
}


BORDER = (0.0, 0.0, 0.0, 0.0)  # black with no coverage: the colour grade leaves it black


class ShaderError(Exception):
    pass


def read_shader(path: Path) -> str:
    """A shader file's text; ShaderError naming the file if it is missing, unreadable,
    not UTF-8 or over MAX_SHADER_BYTES."""
    name = f"shaders/{path.name}"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ShaderError(f"{name} is missing") from None
    except OSError as e:
        raise ShaderError(f"{name} cannot be read: {e.strerror or e}") from None
    if len(data) > MAX_SHADER_BYTES:
        raise ShaderError(f"{name} is {len(data)} bytes, over the {MAX_SHADER_BYTES} byte limit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ShaderError(f"{name} is not UTF-8 text (byte {e.start})") from None


def _glsl_error(e: moderngl.Error, frag: str, vert: str) -> str:
    """One line naming the file at fault and the driver's first error line."""
    text = str(e)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if "vertex_shader" in lines and "fragment_shader" not in lines:
        where = f"shaders/{vert} does not compile"
    elif "fragment_shader" in lines and "vertex_shader" not in lines:
        where = f"shaders/{frag} does not compile"
    elif text.startswith("GLSL Linker failed"):
        where = f"shaders/{vert} + shaders/{frag} do not link"
    else:
        where = f"shaders/{vert} + shaders/{frag} do not compile"
    detail = next((ln for ln in lines if "error" in ln.lower() and not ln.startswith("GLSL ")),
                  next((ln for ln in lines if set(ln) - set("=")), text.strip()))
    return f"{where}: {detail}"


def load_program(ctx: moderngl.Context, frag: str, shader_dir: Path | None = None,
                 vert: str = "fullscreen.vert") -> moderngl.Program:
    d = Path(shader_dir or paths.SHADERS)
    vert_src = read_shader(d / vert)
    frag_src = read_shader(d / frag)
    try:
        return ctx.program(vertex_shader=vert_src, fragment_shader=frag_src)
    except moderngl.Error as e:
        raise ShaderError(_glsl_error(e, frag, vert)) from e


def _set(prog: moderngl.Program, **uniforms) -> None:
    for name, value in uniforms.items():
        if name in prog:
            prog[name].value = value


class ShaderChain:
    """``watch`` (on by default): shader files edited on disk are recompiled from ``render``
    and swapped in; one that fails keeps the last good program and is reported once per
    message through ``report(message)`` (else logged at ERROR on "vj")."""

    def __init__(self, ctx: moderngl.Context, size: tuple[int, int], shader_dir: Path | None = None,
                 report=None, watch: bool = True):
        self.ctx = ctx
        self.size = tuple(size)
        self.shader_dir = Path(shader_dir or paths.SHADERS)
        self.watch = watch
        self._report = report or (lambda msg: vj_log.error("%s", msg))
        self._reported = Once(64)
        self._errors: dict[str, set[str]] = {}  # program -> messages reported since it last compiled
        files = {f for pair in PASSES.values() for f in pair}
        # Stamped before reading, so a save landing during the first compile is seen next poll.
        self._stamps = {f: paths.file_stamp(self.shader_dir / f) for f in files}
        self._next_poll = time.monotonic() + WATCH_INTERVAL
        self.programs = {name: load_program(ctx, frag, self.shader_dir, vert)
                         for name, (frag, vert) in PASSES.items()}
        self.vaos = {name: ctx.vertex_array(prog, []) for name, prog in self.programs.items()}
        self.source: moderngl.Texture | None = None
        self._up: tuple | None = None  # (texture, framebuffer) of the pre-upscaled image
        self._canvas = [self._target() for _ in range(2)]
        self._history = [self._target() for _ in range(2)]
        self._hist_i = 0
        self._warned: set[str] = set()
        self.output: moderngl.Texture = self._canvas[0][0]
        self.wait = GLWait(ctx)
        self._between_passes = self.wait if is_software(ctx) else (lambda: None)
        self._bars: list = [None, None]  # per canvas: True while its bars are black (cleared, only blits since)
        self._pbo = None                 # upload()'s own frame source

    def _target(self, size=None):
        tex = self.ctx.texture(size or self.size, 4)
        tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        tex.repeat_x = tex.repeat_y = False
        fbo = self.ctx.framebuffer(color_attachments=[tex])
        fbo.clear(*BORDER)  # nothing drawn yet is border: feedback's first frames never flash it
        return tex, fbo

    def upload(self, rgb: np.ndarray) -> None:
        """The generator's frame, uint8 [H, W, 3 or 4], top row first."""
        if self._pbo is None:
            from engine.render.frame_source import PboSource
            self._pbo = PboSource(self.ctx)
        self.show(self._pbo.upload(rgb))

    def show(self, texture: moderngl.Texture) -> None:
        """Shade this texture (a frame source's) from the next ``render`` on; not owned."""
        if self.source is None or self.source.size != texture.size:
            self._make_upscale_target(*texture.size)
        self.source = texture

    def _make_upscale_target(self, w: int, h: int) -> None:
        # Bicubic to k times the source size, then one bilinear fetch per output pixel: nearly
        # the look of bicubic at full size for a fraction of the texture reads. k leaves the
        # bilinear step at most 3x: measured on the built-in model at 1280x720, k=4 against
        # k=8 differs by 3 levels at most (0.14 on average) for 40% less CPU on llvmpipe.
        if self._up is not None:
            self._up[1].release()
            self._up[0].release()
            self._up = None
        scale = min(self.size[0] / w, self.size[1] / h)
        if scale >= 2:
            k = min(8, max(2, math.ceil(scale / 3)))
            self._up = self._target((w * k, h * k))

    def settings(self, post: dict) -> dict:
        merged = dict(POST_DEFAULTS)
        for k, v in post.items():
            if k in POST_DEFAULTS:
                merged[k] = float(v)
            elif k not in self._warned:
                self._warned.add(k)
                log.warning("unknown post setting %r ignored (known: %s)", k, ", ".join(POST_DEFAULTS))
        return merged

    def reload_changed(self) -> list[str]:
        """Recompile the programs whose shader files changed on disk since last looked at and
        swap in those that compile; the names of the files reloaded. Must run on the thread
        that owns the GL context (``render`` calls it every WATCH_INTERVAL when watching)."""
        changed = []
        for f, old in self._stamps.items():
            stamp = paths.file_stamp(self.shader_dir / f)
            if stamp != old:
                self._stamps[f] = stamp
                changed.append(f)
        if not changed:
            return []
        ok = {}
        for name, (frag, vert) in PASSES.items():
            if frag in changed or vert in changed:
                ok[name] = self._recompile(name, frag, vert)
        reloaded = [f for f in changed if all(ok[n] for n, pair in PASSES.items() if f in pair)]
        for f in reloaded:
            vj_log.info("shader %s reloaded", f)
        return reloaded

    def _recompile(self, name: str, frag: str, vert: str) -> bool:
        try:
            prog = load_program(self.ctx, frag, self.shader_dir, vert)
        except ShaderError as e:
            msg = f"{e} (keeping the last good version)"
            self._errors.setdefault(name, set()).add(msg)
            if self._reported.first(msg):
                self._report(msg)
            return False
        for msg in self._errors.pop(name, ()):
            self._reported.discard(msg)  # the same mistake made again later is news again
        self.vaos[name].release()
        self.programs[name].release()
        self.programs[name] = prog
        self.vaos[name] = self.ctx.vertex_array(prog, [])
        return True

    def render(self, post: dict | None = None, dt: float = 1.0 / 30.0) -> moderngl.Texture:
        """Run the chain; returns the output texture (valid until the next render).
        ``dt`` is the frame's time step, which scales the feedback settings."""
        if self.source is None:
            raise RuntimeError("upload an image before rendering")
        if self.watch:
            now = time.monotonic()
            if now >= self._next_poll:
                self._next_poll = now + WATCH_INTERVAL
                self.reload_changed()
        s = self.settings(post or {})
        out_size = tuple(float(x) for x in self.size)
        flip = 0

        drawn = [0]

        def draw(name, inputs, target, **uniforms):
            if drawn[0]:
                self._between_passes()  # the previous pass is this one's input
            drawn[0] += 1
            prog = self.programs[name]
            for unit, (uname, tex) in enumerate(inputs.items()):
                tex.use(unit)
                _set(prog, **{uname: unit})
            _set(prog, u_out_size=out_size, **uniforms)
            target.use()
            if name == "blit":
                self.vaos[name].render(moderngl.TRIANGLE_STRIP, vertices=4)
            else:
                self.vaos[name].render(moderngl.TRIANGLES, vertices=3)
                for i in (0, 1):
                    if target is self._canvas[i][1]:
                        self._bars[i] = None  # a full-canvas pass drew over the bars

        image = self.source
        if self._up is not None:
            up_tex, up_fbo = self._up
            draw("upscale", {"u_src": self.source}, up_fbo)
            image = up_tex
        tex, fbo = self._canvas[flip]
        covered = self._covers_canvas(image.size, s["fit"], s["zoom"])
        if not covered and self._bars[flip] is None:
            fbo.clear(*BORDER)
            self._bars[flip] = True
        draw("blit", {"u_src": image}, fbo, u_fit=s["fit"], u_zoom=s["zoom"])
        current = tex

        if s["kaleido"] >= 2.0:
            flip ^= 1
            tex, fbo = self._canvas[flip]
            draw("kaleido", {"u_src": current}, fbo, u_segments=s["kaleido"], u_rotate=s["kaleido_rotate"])
            current = tex

        if s["feedback"] > 0.0:
            prev_tex = self._history[self._hist_i][0]
            self._hist_i ^= 1
            tex, fbo = self._history[self._hist_i]
            k = min(max(dt, 0.0), 0.5) * 30.0 or 1.0  # frames of 1/30 s this frame stands for
            amount = min(max(s["feedback"], 0.0), 0.999) ** k
            draw("feedback", {"u_src": current, "u_prev": prev_tex}, fbo, u_amount=amount,
                 u_zoom=max(s["feedback_zoom"], 1e-3) ** k, u_rotate=s["feedback_rotate"] * k)
            current = tex

        neutral = (s["brightness"] == 0.0 and s["contrast"] == 1.0 and s["saturation"] == 1.0
                   and s["hue"] % 1.0 == 0.0 and s["invert"] == 0.0)
        if not neutral:
            flip = 1 if current is self._canvas[0][0] else 0
            tex, fbo = self._canvas[flip]
            draw("colour", {"u_src": current}, fbo, u_brightness=s["brightness"], u_contrast=s["contrast"],
                 u_saturation=s["saturation"], u_hue=s["hue"], u_invert=s["invert"])
            current = tex
        self.output = current
        return current

    def _covers_canvas(self, src: tuple[int, int], fit: float, zoom: float) -> bool:
        """Whether the image's quad covers the whole canvas (blit.vert's arithmetic)."""
        w, h = self.size
        r = (w / h) / (src[0] / src[1])
        t = min(max(fit, 0.0), 1.0)
        z = max(zoom, 1e-3)
        sx = (max(r, 1.0) * (1 - t) + min(r, 1.0) * t) / z
        sy = (max(1 / r, 1.0) * (1 - t) + min(1 / r, 1.0) * t) / z
        return sx <= 1.0 and sy <= 1.0

    def finish(self) -> None:
        """Wait until the output is drawn, letting other threads run meanwhile."""
        self.wait()

    def read(self) -> np.ndarray:
        """The last output as uint8 [H, W, 3], top row first."""
        data = self.output.read(alignment=1)
        w, h = self.size
        return np.frombuffer(data, np.uint8).reshape(h, w, 4)[::-1, :, :3]

    def release(self) -> None:
        for tex, fbo in self._canvas + self._history + ([self._up] if self._up else []):
            fbo.release()
            tex.release()
        if self._pbo is not None:
            self._pbo.release()
        for vao in self.vaos.values():
            vao.release()
        for prog in self.programs.values():
            prog.release()
