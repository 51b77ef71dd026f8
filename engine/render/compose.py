"""The last pass of a transition between two scenes: their finished pictures, crossfaded or
wiped (``shaders/mix.frag``), into a canvas-sized texture the outputs take."""
from __future__ import annotations

import moderngl

from engine.render.gl import GLWait

MODES = {"crossfade": 0.0, "wipe": 1.0}
WIPE_SOFTNESS = 0.08  # of the picture's width


class Compositor:
    def __init__(self, ctx: moderngl.Context, size: tuple[int, int], shader_dir=None):
        from engine.render.post import load_program
        self.ctx, self.size = ctx, tuple(size)
        self.program = load_program(ctx, "mix.frag", shader_dir)
        self.vao = ctx.vertex_array(self.program, [])
        self.texture = ctx.texture(self.size, 4)
        self.fbo = ctx.framebuffer(color_attachments=[self.texture])
        self.wait = GLWait(ctx)

    def render(self, a: moderngl.Texture, b: moderngl.Texture, amount: float, mode: str) -> moderngl.Texture:
        self.wait()  # both chains' outputs are this pass's inputs
        a.use(0)
        b.use(1)
        prog = self.program
        prog["u_a"].value, prog["u_b"].value = 0, 1
        prog["u_amount"].value = float(min(max(amount, 0.0), 1.0))
        prog["u_mode"].value = MODES[mode]
        prog["u_softness"].value = WIPE_SOFTNESS
        self.fbo.use()
        self.vao.render(moderngl.TRIANGLES, vertices=3)
        return self.texture

    def release(self) -> None:
        for obj in (self.vao, self.program, self.fbo, self.texture):
            obj.release()
