"""The projector window (glfw): resizable, fullscreen on a chosen monitor, key controls.

Keys: F fullscreen on/off, H HUD on/off, Space tap tempo, Right/Left (or Page Down/Up)
next/previous scene of a set, L MIDI/OSC learn for the next parameter, Esc quit.
The canvas is drawn aspect-correct into whatever size the window has."""
from __future__ import annotations

import logging

import moderngl
import numpy as np

from engine.render.gl import GLError
from engine.render.post import load_program

log = logging.getLogger(__name__)


class Window:
    def __init__(self, size: tuple[int, int], title: str = "vj", monitor: int = 0,
                 fullscreen: bool = False, vsync: bool = True):
        import glfw
        self.glfw = glfw
        glfw.ERROR_REPORTING = "ignore"  # our own messages say what to do instead
        if not glfw.init():
            raise GLError("glfw could not start: no display? Use --headless to run without a window.")
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        self.monitor_index = monitor
        self.windowed_size = size
        self.win = glfw.create_window(size[0], size[1], title, None, None)
        if not self.win:
            glfw.terminate()
            raise GLError("glfw could not open a window with OpenGL 3.3; use --headless")
        glfw.make_context_current(self.win)
        glfw.swap_interval(1 if vsync else 0)
        self.ctx = moderngl.create_context()
        self.show_hud = True
        self.taps = 0
        self.cues: list[str] = []  # "cue.next" / "cue.prev" events for the engine to publish
        self._prog = load_program(self.ctx, "present.frag")
        self._vao = self.ctx.vertex_array(self._prog, [])
        self._hud_tex: moderngl.Texture | None = None
        glfw.set_key_callback(self.win, self._on_key)
        if fullscreen:
            self.toggle_fullscreen()

    def _monitor(self):
        monitors = self.glfw.get_monitors() or []
        if not monitors:
            return None
        if self.monitor_index >= len(monitors):
            log.warning("monitor %d not found (%d connected); using the primary", self.monitor_index, len(monitors))
            return monitors[0]
        return monitors[self.monitor_index]

    def toggle_fullscreen(self) -> None:
        glfw = self.glfw
        if glfw.get_window_monitor(self.win):
            w, h = self.windowed_size
            glfw.set_window_monitor(self.win, None, 100, 100, w, h, 0)
            return
        mon = self._monitor()
        if mon is None:
            log.warning("no monitor found for fullscreen")
            return
        mode = glfw.get_video_mode(mon)
        glfw.set_window_monitor(self.win, mon, 0, 0, mode.size.width, mode.size.height, mode.refresh_rate)

    def _on_key(self, win, key, scancode, action, mods):
        glfw = self.glfw
        if action != glfw.PRESS:
            return
        if key == glfw.KEY_ESCAPE:
            glfw.set_window_should_close(win, True)
        elif key == glfw.KEY_F:
            self.toggle_fullscreen()
        elif key == glfw.KEY_H:
            self.show_hud = not self.show_hud
        elif key == glfw.KEY_SPACE:
            self.taps += 1
        elif key in (glfw.KEY_RIGHT, glfw.KEY_PAGE_DOWN):
            self.cues.append("cue.next")
        elif key in (glfw.KEY_LEFT, glfw.KEY_PAGE_UP):
            self.cues.append("cue.prev")
        elif key == glfw.KEY_L:
            self.cues.append("param.learn")  # arm learn for the next parameter in turn (engine/rig.py)

    @property
    def should_close(self) -> bool:
        return bool(self.glfw.window_should_close(self.win))

    def poll(self) -> None:
        self.glfw.poll_events()

    def set_hud(self, rgba: np.ndarray) -> None:
        h, w = rgba.shape[:2]
        if self._hud_tex is None or self._hud_tex.size != (w, h):
            if self._hud_tex is not None:
                self._hud_tex.release()
            self._hud_tex = self.ctx.texture((w, h), 4, alignment=1)
        self._hud_tex.write(np.ascontiguousarray(rgba))

    def present(self, canvas: moderngl.Texture) -> None:
        fw, fh = self.glfw.get_framebuffer_size(self.win)
        if fw == 0 or fh == 0:  # minimised
            return
        screen = self.ctx.screen
        screen.use()
        screen.viewport = (0, 0, fw, fh)
        screen.clear(0.0, 0.0, 0.0, 1.0)
        cw, ch = canvas.size
        scale = min(fw / cw, fh / ch)
        vw, vh = int(cw * scale), int(ch * scale)
        screen.viewport = ((fw - vw) // 2, (fh - vh) // 2, vw, vh)
        canvas.use(0)
        self._prog["u_src"].value = 0
        self._prog["u_alpha"].value = 1.0
        self._prog["u_flip_y"].value = 0.0
        self._vao.render(moderngl.TRIANGLES, vertices=3)
        if self.show_hud and self._hud_tex is not None:
            hw, hh = self._hud_tex.size
            screen.viewport = (0, fh - hh, hw, hh)  # native size; GL clips what overhangs
            self.ctx.enable(moderngl.BLEND)
            self.ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
            self._hud_tex.use(0)
            self._prog["u_flip_y"].value = 1.0
            self._vao.render(moderngl.TRIANGLES, vertices=3)
            self.ctx.disable(moderngl.BLEND)
        self.glfw.swap_buffers(self.win)

    def close(self) -> None:
        self.glfw.destroy_window(self.win)
        self.glfw.terminate()
