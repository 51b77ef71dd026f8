"""The projector window (glfw): resizable, fullscreen on a chosen monitor, key controls.

Keys: F fullscreen on/off, H HUD on/off, Esc quit belong to the window. The others are
commands of the engine's namespace, sent through the control plane's dispatcher like any
controller's (source ``keys``): Space ``/vj/tap``, Right/Left (or Page Down/Up)
``/vj/cue/next`` / ``/vj/cue/prev``, 1..9 ``/vj/cue/goto n`` (a set's scene n), L ``/vj/learn``
(the next parameter in turn), B ``/vj/bookmark/save``.
The canvas is drawn aspect-correct into whatever size the window has. ``WindowStage`` is
the window's stage of a frame: present, keys, HUD.

The HUD is on in a window and off fullscreen (a fullscreen window is the audience's
projector). ``H`` toggles it for the mode the window is in, and each mode keeps its own
choice: going fullscreen with ``F`` hides the HUD unless ``H`` turned it on while fullscreen
before, and going back to a window shows it as it was there."""
from __future__ import annotations

import logging
import time

import moderngl
import numpy as np

from engine.render.gl import GLError
from engine.render.post import load_program

log = logging.getLogger(__name__)


def _keys() -> dict:
    """key -> (address, arguments)"""
    import glfw
    keys = {glfw.KEY_SPACE: "/vj/tap", glfw.KEY_RIGHT: "/vj/cue/next", glfw.KEY_PAGE_DOWN: "/vj/cue/next",
            glfw.KEY_LEFT: "/vj/cue/prev", glfw.KEY_PAGE_UP: "/vj/cue/prev", glfw.KEY_L: "/vj/learn",
            glfw.KEY_B: "/vj/bookmark/save"}
    out = {k: (a, ()) for k, a in keys.items()}
    out.update({getattr(glfw, f"KEY_{n}"): ("/vj/cue/goto", (n,)) for n in range(1, 10)})
    return out


class HudShown:
    """Whether the HUD shows, kept apart for a window and fullscreen."""

    def __init__(self, window: bool = True, fullscreen: bool = False):
        self.by_mode = {False: window, True: fullscreen}
        self.fullscreen = False

    @property
    def shown(self) -> bool:
        return self.by_mode[self.fullscreen]

    def toggle(self) -> None:
        self.by_mode[self.fullscreen] = not self.shown


class Window:
    def __init__(self, size: tuple[int, int], title: str = "vj", monitor: int = 0,
                 fullscreen: bool = False, vsync: bool = True):
        import glfw
        self.glfw = glfw
        self.keys = _keys()
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
        self.hud = HudShown()
        self.hud_dots: list = []   # hud.py beat_dots: squares drawn over the HUD every frame
        self.commands: list[str] = []  # namespace addresses the keys sent, for the dispatcher
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
            self.hud.fullscreen = False
            return
        mon = self._monitor()
        if mon is None:
            log.warning("no monitor found for fullscreen")
            return
        mode = glfw.get_video_mode(mon)
        glfw.set_window_monitor(self.win, mon, 0, 0, mode.size.width, mode.size.height, mode.refresh_rate)
        self.hud.fullscreen = True

    @property
    def show_hud(self) -> bool:
        return self.hud.shown

    def _on_key(self, win, key, scancode, action, mods):
        glfw = self.glfw
        if action != glfw.PRESS:
            return
        if key == glfw.KEY_ESCAPE:
            glfw.set_window_should_close(win, True)
        elif key == glfw.KEY_F:
            self.toggle_fullscreen()
        elif key == glfw.KEY_H:
            self.hud.toggle()
        elif key in self.keys:
            self.commands.append(self.keys[key])

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
            for x, y, size, rgb in self.hud_dots:   # a scissored clear: no texture, no program
                screen.clear(*rgb, 1.0, viewport=(x, fh - y - size, size, size))
        self.glfw.swap_buffers(self.win)

    def close(self) -> None:
        for obj in (self._hud_tex, self._vao, self._prog):
            if obj is not None:
                obj.release()
        self._hud_tex = None
        self.glfw.destroy_window(self.win)
        self.glfw.terminate()


class WindowStage:
    """The last stage of a live frame: show the canvas, hand key commands to the dispatcher,
    move the beat dots every frame, refresh the HUD text four times a second and on each new
    beat (``lines(beat)`` composes it), and ask the loop to stop when the window is closed."""

    name = "window"
    TEXT_EVERY = 0.25   # seconds between HUD text refreshes ...
    TEXT_BEAT = 0.08    # ... or this soon after the last one when a new beat starts

    def __init__(self, window: Window, dispatch, hud=None, lines=None):
        self.window, self.dispatch, self.hud, self.lines = window, dispatch, hud, lines
        self._hud_at = 0.0
        self._last_beat: float | None = None
        self._shown_bar: tuple[int, int] | None = None
        self._hud_error = ""

    def run(self, frame) -> None:
        w = self.window
        if self.hud is not None and self.lines is not None:
            try:
                self._hud(frame)
            except Exception as e:  # noqa: BLE001 - a HUD that cannot say something never stops the picture or the keys
                msg = f"HUD: {type(e).__name__}: {e}"
                if msg != self._hud_error:
                    self._hud_error = msg
                    log.error("%s", msg)
        try:
            if frame.texture is not None:
                w.present(frame.texture)
        finally:  # the keys (Esc too) keep working whatever presenting did
            w.poll()
        while w.commands:
            address, args = w.commands.pop(0)
            self.dispatch(address, args, None, source="keys")
        if w.should_close:
            frame.quit = True

    def _hud(self, frame) -> None:
        from engine.render.hud import beat_dots, beat_of, dots_lead
        w = self.window
        # a beat that does not move is a stopped transport (MIDI Stop), not a slow frame
        running = self._last_beat is None or frame.snap.beat != self._last_beat
        self._last_beat = frame.snap.beat
        if not w.show_hud:
            return
        beat = beat_of(frame, running)
        w.hud_dots = beat_dots(beat, self.hud.line_h)
        now = time.monotonic()
        bar = beat.bar()
        since = now - self._hud_at
        if since >= self.TEXT_EVERY or (bar != self._shown_bar and since >= self.TEXT_BEAT):
            self._hud_at, self._shown_bar = now, bar
            img = self.hud.render(self.lines(beat), lead=dots_lead(beat))
            if img is not None:
                w.set_hud(img)
