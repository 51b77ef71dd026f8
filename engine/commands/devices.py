"""``vj devices``: audio devices and monitors, or why there are none and the fix."""
from __future__ import annotations

from engine import diagnosis


def main(args) -> int:
    for title, check in (("audio devices", diagnosis.audio()), ("monitors", diagnosis.display())):
        if check.details:
            print(f"{title}:")
            for d in check.details:
                print(f"  {d}")
        else:
            print(f"{title}: none: {check.text}")
    return 0
