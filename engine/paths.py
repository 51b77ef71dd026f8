"""Where the engine finds its shaders, models and patches.

The engine runs from a checkout (``pip install -e .``); ``VJ_HOME`` points it at
another tree holding ``shaders/``, ``models/`` and ``patches/``.
"""
import os
from pathlib import Path

ROOT = Path(os.environ.get("VJ_HOME") or Path(__file__).resolve().parent.parent)
SHADERS = ROOT / "shaders"
MODELS = ROOT / "models"
PATCHES = ROOT / "patches"
SETS = ROOT / "sets"
