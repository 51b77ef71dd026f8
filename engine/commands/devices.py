"""``vj devices``: audio devices and monitors."""
from __future__ import annotations


def main(args) -> int:
    from engine.signals import audio
    devs = audio.list_devices()
    print("audio devices:" if devs else "audio devices: none found (PortAudio missing or no sound hardware)")
    for d in devs:
        print(f"  [{d.get('index')}] {d.get('name')}  in {d.get('max_input_channels', 0)}  "
              f"out {d.get('max_output_channels', 0)}")
    try:
        import glfw
        if glfw.init():
            mons = glfw.get_monitors() or []
            print("monitors:" if mons else "monitors: none (no display)")
            for i, m in enumerate(mons):
                mode = glfw.get_video_mode(m)
                print(f"  [{i}] {glfw.get_monitor_name(m).decode(errors='replace')} "
                      f"{mode.size.width}x{mode.size.height} @ {mode.refresh_rate} Hz")
            glfw.terminate()
        else:
            print("monitors: none (no display)")
    except Exception as e:  # noqa: BLE001
        print(f"monitors: unavailable ({e})")
    return 0
