"""What works on this machine and, for each part that does not, why and the fix: one line a
part, for ``vj doctor`` (all of them) and ``vj devices`` (sound and display).

A check never raises and never lets a library print on its own: glfw reports errors through
Python's warnings, which would reach the console as a raw ``GLFWError`` line, so they are
caught here and said in the check's words. Package names are Debian/Ubuntu's.
"""
from __future__ import annotations

import ctypes.util
import os
import warnings
from dataclasses import dataclass, field

OK, WARN, FAIL = "ok", "warn", "fail"  # works; the show runs without it; the show cannot run


@dataclass
class Check:
    name: str
    status: str
    text: str
    details: list[str] = field(default_factory=list)  # one line each: devices, monitors

    @property
    def line(self) -> str:
        return f"{self.name:10s} {self.text}"


def _short(e: BaseException, n: int = 120) -> str:
    s = " ".join(str(e).split()) or type(e).__name__
    return s if len(s) <= n else s[:n - 3] + "..."


def missing(name: str, what: str, why: str, effect: str, fix: str, status: str = WARN) -> Check:
    return Check(name, status, f"MISSING {what} ({why}): {effect}; fix: {fix}")


# --- sound ------------------------------------------------------------------------------
def audio() -> Check:
    """PortAudio through sounddevice, and the devices it sees; no PortAudio is told apart
    from no sound hardware, since only the first has a package that fixes it."""
    try:
        import sounddevice as sd
    except ImportError as e:
        return missing("audio", "sounddevice", _short(e), "no sound in or out, the show runs silent",
                       "pip install sounddevice")
    except OSError as e:  # sounddevice found no PortAudio, or could not load the one it found
        return missing("audio", "PortAudio", _short(e), "no sound in or out, the show runs silent",
                       "sudo apt install libportaudio2")
    try:
        version = sd.get_portaudio_version()[1].split(",")[0]
        devices = list(sd.query_devices())
    except Exception as e:  # noqa: BLE001 - a PortAudio that loads but cannot start
        return Check("audio", WARN, f"PortAudio cannot start ({_short(e)}): the show runs silent; "
                                    "fix: check the sound system (ALSA/PulseAudio), then vj devices")
    details = [f"[{i}] {d.get('name')}  in {d.get('max_input_channels', 0)}  out {d.get('max_output_channels', 0)}"
               for i, d in enumerate(devices)]
    if not devices:
        why, fix = (("no /dev/snd: no sound hardware this process can see",
                     "a sound card (in a container: --device /dev/snd)") if not os.path.exists("/dev/snd")
                    else ("none this user may open", "sudo usermod -aG audio $USER, then log in again"))
        return Check("audio", WARN, f"{version}, 0 devices ({why}): --audio FILE is analysed silently, "
                                    f"--audio-in hears nothing; fix: {fix}")
    return Check("audio", OK, f"{version}, {len(devices)} device{'' if len(devices) == 1 else 's'}", details)


# --- OpenGL, window, video ---------------------------------------------------------------
def opengl() -> Check:
    """A headless OpenGL 3.3 context through EGL, which every mode needs."""
    if ctypes.util.find_library("EGL") is None:
        return missing("opengl", "libEGL", "no EGL library found", "nothing can be drawn, vj cannot run",
                       "sudo apt install libegl1 libgl1-mesa-dri", FAIL)
    try:
        from engine.render.gl import describe, headless_context
        ctx = headless_context()
        try:
            return Check("opengl", OK, f"{describe(ctx)} (headless EGL)")
        finally:
            ctx.release()
    except Exception as e:  # noqa: BLE001
        return Check("opengl", FAIL, f"FAILED: no OpenGL 3.3 context ({_short(e, 200)}): vj cannot run; "
                                     "fix: sudo apt install libegl1 libgl1-mesa-dri (or the GPU's own driver)")


def _glfw():
    """(the glfw module, None) or (None, a Check saying why there is none)."""
    try:
        import glfw
    except ModuleNotFoundError as e:
        return None, missing("window", "glfw", _short(e), "no window, --headless still runs", "pip install glfw")
    except ImportError as e:  # the package is there, its shared library is not
        return None, missing("window", "GLFW library", f"{_short(e)} the glfw wheel has none for this platform",
                             "no window, --headless still runs", "sudo apt install libglfw3")
    return glfw, None


def display() -> Check:
    """The window's display and its monitors (``details``), through glfw."""
    glfw, why = _glfw()
    if why is not None:
        return why
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return Check("window", WARN, "no display (DISPLAY is not set): a window needs one; "
                                     "fix: vj run --headless, or xvfb-run -a vj run for a virtual screen")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if not glfw.init():
                said = "; ".join(_glfw_words(w.message) for w in caught) or "glfw.init() failed"
                where = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                return Check("window", WARN, f"cannot open display {where} ({said}): no window; "
                                             "fix: start the display server or correct DISPLAY, "
                                             "or vj run --headless / xvfb-run -a vj run")
            try:
                details = []
                for i, m in enumerate(glfw.get_monitors() or []):
                    mode = glfw.get_video_mode(m)
                    details.append(f"[{i}] {glfw.get_monitor_name(m).decode(errors='replace')} "
                                   f"{mode.size.width}x{mode.size.height} @ {mode.refresh_rate} Hz")
            finally:
                glfw.terminate()
        except Exception as e:  # noqa: BLE001
            return Check("window", WARN, f"glfw failed ({_short(e)}): no window; fix: vj run --headless")
    where = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    n = len(details)
    return Check("window", OK, f"display {where}, {n} monitor{'' if n == 1 else 's'}", details)


def _glfw_words(message) -> str:
    """'(65550) b"X11: The DISPLAY environment variable is missing"' -> the sentence alone."""
    s = str(message)
    if ") b'" in s or ') b"' in s:
        s = s.split(") b", 1)[1].strip("'\"")
    return s


def video() -> Check:
    """PyAV (its wheels carry FFmpeg) and the H.264 encoder recordings and renders use."""
    try:
        import av
    except ImportError as e:
        return missing("video", "PyAV", _short(e), "no recording, no vj render, no compressed audio files",
                       "pip install av (its wheels carry FFmpeg)", FAIL)
    if "libx264" not in av.codecs_available:
        return Check("video", FAIL, f"PyAV {av.__version__} without libx264 (its FFmpeg was built without it): "
                                    "no recording, no vj render; fix: pip install --force-reinstall av "
                                    "(the PyPI wheels carry an FFmpeg with libx264)")
    return Check("video", OK, f"PyAV {av.__version__}, libx264 yes")


# --- control -----------------------------------------------------------------------------
def midi() -> Check:
    from engine.signals.midi import MidoBackend
    try:
        names = MidoBackend().get_input_names()
    except Exception as e:  # noqa: BLE001 - no ALSA sequencer, no rtmidi
        fix = ("sudo modprobe snd-seq" if not os.path.exists("/dev/snd/seq")
               else "pip install python-rtmidi")
        return Check("midi", WARN, f"unavailable ({_short(e, 80)}): vj run has no MIDI in; "
                                   f"fix: {fix}, or pass --no-midi")
    return Check("midi", OK, f"{len(names)} input{'' if len(names) == 1 else 's'}"
                             + (f": {', '.join(names)}" if names else ""))


def link() -> Check:
    try:
        import link  # noqa: F401  LinkPython-extern, optional
    except ImportError:
        from engine.control.link import INSTALL
        return Check("link", OK, f"not installed (optional, for --link): install with {INSTALL}")
    return Check("link", OK, "Ableton Link binding present (--link)")
