"""Will a set's models fit? Every model a set names stays loaded for the whole show (a
crossfade between two models has both generating), so the sum of what they need must fit
the device before the show starts, or the set is refused with the figures.

What a model needs is estimated once it is read (on the CPU, before anything goes to the
device): its weights at the show's precision, plus the working memory of one frame (about
four of the largest activations, 64 channels at full resolution). A rough figure, on the
safe side for the StyleGAN family; it is printed, so a performer can compare it with what
the device reports.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("vj")

MIB = 1024 * 1024


class ModelsDoNotFit(Exception):
    pass


@dataclass
class Need:
    generator: object
    name: str
    weights: int
    working: int

    @property
    def total(self) -> int:
        return self.weights + self.working


def need(generator, precision: str) -> Need:
    """The estimate for one model, loaded (on the CPU) but not yet on its device."""
    half = precision == "fp16"
    weights = sum(t.numel() * (2 if half and t.is_floating_point() else t.element_size())
                  for t in generator.state_dict().values())
    info = generator.info
    working = 4 * info.resolution ** 2 * 64 * (2 if half else 4)
    return Need(generator, info.name, weights, working)


def available(device, limit_mb: float | None = None) -> tuple[int, str]:
    """Bytes free for models on ``device`` (a torch.device), and where the figure comes from."""
    import torch
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        have, where = int(free), f"free on {torch.cuda.get_device_name(device)}"
    else:
        have, where = _mem_available(), "available memory"
    if limit_mb is not None and limit_mb * MIB < have:
        return int(limit_mb * MIB), "the set's memory_limit"
    return have, where


def _mem_available() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 62  # not Linux: nothing to go by, so nothing is refused


def check_fit(generators: list, device, precision: str, limit_mb: float | None = None) -> list[Need]:
    """The needs of ``generators``; ModelsDoNotFit, naming each model's figure, if their sum is
    more than there is."""
    needs = [need(g, precision) for g in generators]
    total = sum(n.total for n in needs)
    have, where = available(device, limit_mb)
    lines = [f"{n.name}: about {n.total / MIB:.0f} MiB ({n.weights / MIB:.0f} weights + "
             f"{n.working / MIB:.0f} working)" for n in needs]
    if total > have:
        raise ModelsDoNotFit(f"the set's {len(needs)} models need about {total / MIB:.0f} MiB together "
                             f"but only {have / MIB:.0f} MiB is {where}: " + "; ".join(lines))
    log.info("models of the set: %s; together about %.0f MiB of %.0f MiB %s", "; ".join(lines), total / MIB,
             have / MIB, where)
    return needs
