"""The model registry: ``models/models.toml`` names model files.

```toml
default = "digiface64"            # the one line to change to swap the default model

[models.digiface64]
file = "dcgan_digiface64.safetensors"
architecture = "dcgan"
licence = "MIT"
notice = "dcgan_digiface64.NOTICE.md"
```
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from engine import paths


@dataclass
class ModelEntry:
    name: str
    file: Path
    architecture: str | None = None
    licence: str = ""
    notice: Path | None = None
    description: str = ""
    options: dict = field(default_factory=dict)


class Registry:
    def __init__(self, path: Path | None = None):
        self.path = Path(path or paths.MODELS / "models.toml")
        data = tomllib.loads(self.path.read_text()) if self.path.exists() else {}
        self.default = data.get("default")
        base = self.path.parent
        self.entries: dict[str, ModelEntry] = {}
        for name, spec in data.get("models", {}).items():
            spec = dict(spec)
            notice = spec.pop("notice", None)
            self.entries[name] = ModelEntry(
                name=name,
                file=(base / spec.pop("file")).resolve(),
                architecture=spec.pop("architecture", None),
                licence=spec.pop("licence", ""),
                notice=(base / notice) if notice else None,
                description=spec.pop("description", ""),
                options=spec,
            )

    def resolve(self, spec: str | None) -> ModelEntry:
        """A registry name, a file path, or None for the default."""
        if spec is None:
            if not self.default or self.default not in self.entries:
                raise KeyError(f"{self.path}: no default model is registered")
            return self.entries[self.default]
        if spec in self.entries:
            return self.entries[spec]
        known = ", ".join(sorted(self.entries)) or "none"
        shown = spec if len(spec) <= 80 else spec[:77] + "..."
        try:
            p = Path(spec).expanduser()
            if p.exists():
                return ModelEntry(name=p.stem, file=p.resolve())
        except (OSError, ValueError) as e:  # a name too long for the file system, a NUL in it
            raise KeyError(f"model {shown!r}: {type(e).__name__}: {e.strerror if isinstance(e, OSError) else e}") from e
        raise KeyError(f"no model named {shown!r} and no such file (registered: {known})")
