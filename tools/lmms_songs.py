"""LMMS's demo songs (Debian package ``lmms-common``) as beat-tracking material.

An LMMS project is XML (``.mmpz``: Qt's qCompress, a 4-byte length and zlib) whose head
holds the song's tempo and time signature; every note sits on its grid, and the song
starts at tick 0, so its beats are ``k * 60 / bpm`` s from the start of the render. A
project whose tempo is automated has no such grid and is left out.

``render`` writes the project with a chosen tempo (the same song faster or slower) and
renders it with the ``lmms`` CLI. Which songs may train a network is their licence
(``TRAINABLE``): permissive ones (Artistic-2.0, BSD-2-Clause) may; the GPL and CC-BY-SA
ones are only ever held out.
"""
from __future__ import annotations

import fnmatch
import os
import subprocess
import tempfile
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

PROJECTS = Path("/usr/share/lmms/projects")
COPYRIGHT = Path("/usr/share/doc/lmms-common/copyright")
# from lmms-common's copyright file: Artistic-2.0 and BSD-2-Clause songs (the rest are
# GPL-2+ or CC-BY-SA)
TRAINABLE = ("demos/CapDan/CapDan-ReggaeTry.*", "demos/CapDan/CapDan-ReggaetonTry.*",
             "demos/CapDan/CapDan-ZeroSumGame-*", "demos/EsoXLB-*", "demos/Impulslogik-*",
             "demos/Momo64-*", "demos/Oglsdl-*", "demos/Settel-*", "demos/Socceroos-*",
             "demos/TameAnderson-*", "demos/Thomasso-*", "shorties/Crunk*", "shorties/Greshz-*",
             "shorties/Surrender-*", "demos/Saber-*")
MAX_PROJECT = 16 << 20                  # bytes, decompressed


def read_project(path: Path) -> ET.Element:
    data = path.read_bytes()
    if path.suffix == ".mmpz":
        want = int.from_bytes(data[:4], "big")
        if want > MAX_PROJECT:
            raise ValueError(f"{path.name}: says it is {want} bytes unpacked")
        d = zlib.decompressobj()
        try:
            data = d.decompress(data[4:], MAX_PROJECT)
        except zlib.error as e:
            raise ValueError(f"{path.name}: not a packed project ({e})") from None
        if d.unconsumed_tail:
            raise ValueError(f"{path.name}: larger than {MAX_PROJECT} bytes unpacked")
    try:
        # expat (2.4 and later) refuses entity expansion bombs; ElementTree resolves no
        # external entities
        return ET.fromstring(data)
    except ET.ParseError as e:
        raise ValueError(f"{path.name}: not a project ({e})") from None


def _bpm_node(root: ET.Element) -> tuple[ET.Element, str]:
    """(the element holding the tempo, its attribute): ``<bpm value=..>`` under the head
    when the tempo has an id (automatable), else the head's ``bpm`` attribute."""
    head = root.find("head")
    node = head.find("bpm")
    return (node, "value") if node is not None else (head, "bpm")


def song_info(path: Path, root: ET.Element | None = None) -> dict | None:
    """bpm, beats per bar (None unless 3 or 4), trainable; None for a project whose
    tempo is automated or missing. ``root``: the project already read."""
    root = read_project(path) if root is None else root
    head = root.find("head")
    if head is None:
        return None
    node, attr = _bpm_node(root)
    try:
        bpm = float(node.get(attr))
    except (TypeError, ValueError):
        return None
    tempo_id = node.get("id")
    if tempo_id is not None:
        for pattern in root.iter("automationpattern"):
            if any(o.get("id") == tempo_id for o in pattern.iter("object")):
                return None
    num = int(head.get("timesig_numerator", 4))
    den = int(head.get("timesig_denominator", 4))
    rel = str(path.relative_to(PROJECTS)) if path.is_relative_to(PROJECTS) else path.name
    return {"bpm": bpm, "beats_per_bar": num if den == 4 and num in (3, 4) else None,
            "trainable": any(fnmatch.fnmatch(rel, p) for p in TRAINABLE)}


def set_tempo(root: ET.Element, bpm: float) -> None:
    node, attr = _bpm_node(root)
    node.set(attr, f"{bpm:g}")


def songs() -> list[Path]:
    """The demo and shorties projects (tutorials and templates are not songs)."""
    return sorted(p for sub in ("demos", "shorties") for p in (PROJECTS / sub).rglob("*.mmp*")
                  if p.suffix in (".mmp", ".mmpz"))


def render(path: Path, out_wav: Path, bpm: float | None = None, sr: int = 44100,
           timeout: float = 900.0) -> Path:
    """Render a project (at ``bpm`` when given) to a WAV at ``sr`` with the lmms CLI
    (headless)."""
    root = read_project(path)
    if bpm is not None:
        set_tempo(root, bpm)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    with tempfile.TemporaryDirectory() as d:
        # anywhere will do: LMMS finds a demo's samples in its own data folder
        proj = Path(d) / "song.mmp"
        ET.ElementTree(root).write(proj, encoding="utf-8", xml_declaration=True)
        cmd = ["lmms", "--allowroot", "-r", str(proj), "-o", str(out_wav), "-f", "wav", "-s", str(sr)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if res.returncode != 0 or not Path(out_wav).exists() or Path(out_wav).stat().st_size < 1000:
        raise RuntimeError(f"lmms failed on {path.name} ({res.returncode}): {res.stderr.strip()[-300:]}")
    return Path(out_wav)
