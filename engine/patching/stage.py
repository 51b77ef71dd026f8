"""The parameter and patch stages of a frame (engine/render/loop.py runs them)."""
from __future__ import annotations


class ParamsStage:
    """``param.*`` events, learn and the mappings file's bindings -> the patch parameters."""

    name = "parameters"

    def __init__(self, params):
        self.params = params

    def run(self, frame) -> None:
        self.params.frame(frame.snap)


class PatchStage:
    """The user's ``frame(p, s)`` -> ``frame.controls`` (always usable: engine/patching/loader.py)."""

    name = "patch"

    def __init__(self, host):
        self.host = host

    def run(self, frame) -> None:
        frame.controls = self.host.frame(frame.snap)
