"""The on-screen HUD: fps, frame time, patch, dropped frames and the last error.

Text is drawn with Pillow's built-in font into a small RGBA image and uploaded only
when it changes (a few times a second), so the HUD costs one extra blended quad.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont


class HudText:
    def __init__(self, size: int = 16):
        self.font = ImageFont.load_default(size=size)
        self.line_h = size + 4
        self._last: tuple[str, ...] | None = None

    def render(self, lines: list[str]) -> np.ndarray | None:
        """RGBA uint8 image of the lines, top row first; None if unchanged since last call."""
        key = tuple(lines)
        if key == self._last:
            return None
        self._last = key
        h = self.line_h * max(1, len(lines)) + 8
        w = 12 + int(max(self.font.getlength(line) for line in lines)) if lines else 12
        img = Image.new("RGBA", (w, h), (0, 0, 0, 150))
        draw = ImageDraw.Draw(img)
        for i, line in enumerate(lines):
            colour = (255, 110, 90, 255) if line.startswith("!") else (235, 235, 235, 255)
            draw.text((6, 4 + i * self.line_h), line, font=self.font, fill=colour)
        return np.asarray(img)


def hud_lines(stats, patch_name: str, error: str | None, model: str, size, fps_target: float,
              note: str | None = None) -> list[str]:
    latency = f"  input {stats.latency_ms:4.0f} ms" if stats.latency_ms is not None else ""
    lines = [
        f"{stats.fps:5.1f} fps (target {fps_target:g})  frame {stats.frame_ms:5.1f} ms  "
        f"gen {stats.gen_ms:5.1f} ms  dropped {stats.dropped}{latency}",
        f"patch {patch_name}   model {model}   {size[0]}x{size[1]}",
    ]
    if note:
        lines.append(note[:120])
    if error:
        for chunk in [error[i:i + 90] for i in range(0, min(len(error), 270), 90)]:
            lines.append("! " + chunk)
    return lines
