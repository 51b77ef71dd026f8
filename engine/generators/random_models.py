"""``vj models random ARCH``: a generator with random weights in an official layout, so that
real-size benchmarks run anywhere without downloading a model.

The file is a ``.safetensors`` like ``vj models convert`` writes: the tensors under the
official names (StyleGAN2/3: NVIDIA's ``G_ema.state_dict()``; BigGAN-deep: the
pytorch-pretrained-BigGAN port's; DCGAN: the built-in model's ``main.<i>.*``) and the
config as JSON in the metadata (``engine.config``), so ``load_generator``, ``vj models
info``, ``vj run --model`` and the registry load it unchanged. The config says
``"random_weights": true`` (and how it was made, under ``"random"``); the metadata also
carries a plain note (``engine.note``). ``vj models info`` prints that the weights are random.

Architectures (``ARCHS``):

- ``stylegan2``: config F (``--preset f``, the only one): 8 mapping layers, channel_base
  32768, channel_max 512, skip synthesis, conv clamp 256, 4 fp16 blocks. Official sizes
  256, 512, 1024 (30.0 / 30.3 / 30.4 M parameters); any power of two 16..1024.
- ``stylegan3`` (``--preset t``, default, or ``r``; ``stylegan3-t`` / ``stylegan3-r`` say
  the preset in the name): the stylegan3 repository's configs, R with 1x1 convolutions,
  radial filters and doubled channel_base / channel_max. 1024 by default (22.3 M / 15.1 M
  parameters); any power of two 16..1024.
- ``biggan-deep`` (or ``biggan``): the released 128, 256 and 512 px layouts (50.4 / 55.9 /
  56.2 M parameters), 1000 classes.
- ``dcgan``: the built-in model's layout (z 100, ngf 64), 64 px by default; 16..256.

``channel_divisor`` (``--channel-divisor N``, a power of two up to 32) divides the
synthesis channel widths: the same layer names at a fraction of the size, for tests and
quick checks, not for real-size benchmarks; the config records it.

Weights: drawn as the official code initialises them (unit normals under the equalised
learning rate gains for StyleGAN, spectrally normalised normals for BigGAN, N(0, 0.02)
for DCGAN), seeded (``seed``, default 0; the same seed gives the same file), float32, one
tensor at a time. What truncation and inference need is computed at creation, not at
load: StyleGAN's ``mapping.w_avg`` is the mean w of 4096 seeded z, DCGAN's batch-norm
statistics are those of a batch of 64 z. StyleGAN2's ToRGB weights are scaled by
1/sqrt(number of RGB outputs summed) so that the images stay about in [-1, 1].

Only the standard library is imported at module level (the command line reads ``ARCHS``
for its help); torch and the generators load when a model is made.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from engine.limits import shown

RANDOM_KEY = "random_weights"      # config key: true in every file made here
NOTE_KEY = "engine.note"           # safetensors metadata key of the plain-words note
NOTE = "random weights, not a trained model: for benchmarks"
W_AVG_SAMPLES = 4096
MAX_CHANNEL_DIVISOR = 32


class RandomModelError(ValueError):
    """An argument ``vj models random`` cannot honour (exit 2, nothing written)."""


@dataclass(frozen=True)
class Arch:
    name: str
    title: str
    presets: tuple[str, ...]          # () = no presets; the first is the default
    resolutions: tuple[int, ...]      # every size allowed
    default_resolution: int
    official: tuple[int, ...]         # the sizes the official models come in
    aliases: dict = field(default_factory=dict)   # other ARCH names -> preset they imply


def _powers(lo: int, hi: int) -> tuple[int, ...]:
    return tuple(2 ** i for i in range(int(math.log2(lo)), int(math.log2(hi)) + 1))


ARCHS = {
    "stylegan2": Arch("stylegan2", "StyleGAN2", ("f",), _powers(16, 1024), 1024, (256, 512, 1024)),
    "stylegan3": Arch("stylegan3", "StyleGAN3", ("t", "r"), _powers(16, 1024), 1024, (256, 512, 1024),
                      aliases={"stylegan3-t": "t", "stylegan3-r": "r"}),
    "biggan-deep": Arch("biggan-deep", "BigGAN-deep", (), (128, 256, 512), 128, (128, 256, 512),
                        aliases={"biggan": None}),
    "dcgan": Arch("dcgan", "DCGAN", (), _powers(16, 256), 64, (64,)),
}
ALIASES = {alias: (a.name, preset) for a in ARCHS.values() for alias, preset in a.aliases.items()}
ARCH_NAMES = tuple(ARCHS) + tuple(ALIASES)


def arch_help() -> str:
    """The architectures, one line each, for ``vj models --help``."""
    def sizes(a: Arch) -> str:
        r = a.resolutions
        if len(r) > 3:
            return f"{r[0]}..{r[-1]}, default {a.default_resolution}"
        return f"{', '.join(map(str, r[:-1]))} or {r[-1]}, default {a.default_resolution}"
    lines = {
        "stylegan2": f"config F (--preset f); {sizes(ARCHS['stylegan2'])} (official 256, 512, 1024)",
        "stylegan3": f"--preset t (default) or r, or ARCH stylegan3-t / -r; {sizes(ARCHS['stylegan3'])}",
        "biggan-deep": f"the released layouts, 1000 classes (or ARCH biggan); {sizes(ARCHS['biggan-deep'])}",
        "dcgan": f"the built-in model's layout (z 100, ngf 64); {sizes(ARCHS['dcgan'])}",
    }
    return "\n".join(f"  {name:12s} {text}" for name, text in lines.items()) + \
        "\n  (--resolution: a power of two in the range given)"


@dataclass(frozen=True)
class Plan:
    """What one file will be: the architecture, preset, size, and the config it carries."""
    arch: str
    preset: str | None
    resolution: int
    channel_divisor: int
    config: dict

    def describe(self) -> str:
        a = ARCHS[self.arch]
        kind = {"f": "config-F", "t": "-T", "r": "-R"}.get(self.preset or "", "")
        title = f"{a.title}{kind}" if kind.startswith("-") else f"{a.title} {kind}".strip()
        narrow = f", channels / {self.channel_divisor}" if self.channel_divisor > 1 else ""
        return f"{title} {self.resolution}x{self.resolution}{narrow}"


def plan(arch: str | None, resolution: int | None = None, preset: str | None = None,
         channel_divisor: int = 1) -> Plan:
    """The checked plan for ``vj models random ARCH [--resolution N] [--preset NAME]``;
    anything it cannot make is a RandomModelError with one line saying why."""
    given = str(arch or "").strip().lower()
    implied = None
    if given in ALIASES:
        given, implied = ALIASES[given]
    a = ARCHS.get(given)
    if a is None:
        raise RandomModelError(f"unknown architecture {shown(arch)} for models random "
                               f"(known: {', '.join(ARCH_NAMES)})")
    if preset is not None:
        p = str(preset).strip().lower()
        if not a.presets:
            raise RandomModelError(f"{a.name} has no presets (got --preset {shown(preset)})")
        if p not in a.presets:
            raise RandomModelError(f"{a.name} presets are {', '.join(a.presets)}, not {shown(preset)}")
        if implied is not None and p != implied:
            raise RandomModelError(f"{arch} is preset {implied}; --preset {p} contradicts it "
                                   f"(use {a.name} --preset {p})")
        preset = p
    else:
        preset = implied or (a.presets[0] if a.presets else None)
    res = a.default_resolution if resolution is None else resolution
    if isinstance(res, bool) or not isinstance(res, int) or res not in a.resolutions:
        allowed = (f"a power of two in {a.resolutions[0]}..{a.resolutions[-1]} "
                   f"(official: {', '.join(map(str, a.official))})" if len(a.resolutions) > 3
                   else ", ".join(map(str, a.resolutions)))
        raise RandomModelError(f"{a.name} resolution must be {allowed}, not {shown(res)}")
    d = channel_divisor
    if isinstance(d, bool) or not isinstance(d, int) or d < 1 or d > MAX_CHANNEL_DIVISOR or d & (d - 1):
        raise RandomModelError(f"--channel-divisor must be a power of two in 1..{MAX_CHANNEL_DIVISOR}, "
                               f"not {shown(d)}")
    return Plan(a.name, preset, res, d, _config(a.name, preset, res, d))


def _config(arch: str, preset: str | None, res: int, d: int) -> dict:
    """The file's config: the official constructor arguments (``normalize_config``'s flat
    layout) plus the random-weights marks."""
    if arch == "stylegan2":
        config = {"architecture": "stylegan2", "z_dim": 512, "w_dim": 512, "c_dim": 0, "img_resolution": res,
                  "img_channels": 3, "mapping_kwargs": {"num_layers": 8}, "channel_base": 32768 // d,
                  "channel_max": 512 // d, "num_fp16_res": 4, "conv_clamp": 256, "synthesis_architecture": "skip"}
    elif arch == "stylegan3":
        r = preset == "r"
        config = {"architecture": f"stylegan3-{preset}", "z_dim": 512, "w_dim": 512, "c_dim": 0,
                  "img_resolution": res, "img_channels": 3, "mapping_kwargs": {"num_layers": 2},
                  "channel_base": (65536 if r else 32768) // d, "channel_max": (1024 if r else 512) // d}
        if r:
            config.update(conv_kernel=1, use_radial_filters=True)
    elif arch == "biggan-deep":
        from engine.generators.biggan import standard_config  # numpy and torch: only when a model is made
        config = standard_config(res, channel_width=128 // d)
    else:
        config = {"architecture": "dcgan", "z_dim": 100, "ngf": 64 // d, "resolution": res, "channels": 3}
    config[RANDOM_KEY] = True
    config["random"] = {"arch": arch, "preset": preset, "channel_divisor": d, "note": NOTE}
    return config


# ---------------------------------------------------------------- the generator
def _construct(config: dict, seed: int | None):
    """The family's generator for ``config``; BigGAN draws its own weights from ``seed``
    (None: the format's defaults), the others from torch's global generator."""
    arch = config["architecture"]
    if arch == "stylegan2":
        from engine.generators.stylegan2 import StyleGAN2
        keys = ("z_dim", "w_dim", "c_dim", "img_resolution", "img_channels", "mapping_kwargs", "channel_base",
                "channel_max", "num_fp16_res", "conv_clamp")
        return StyleGAN2(**{k: config[k] for k in keys}, architecture=config["synthesis_architecture"])
    if arch.startswith("stylegan3"):
        from engine.generators import stylegan3
        return stylegan3.StyleGAN3(**stylegan3.generator_kwargs(config))
    if arch == "biggan":
        from engine.generators.biggan import BigGAN
        return BigGAN(config, seed=seed)
    from engine.generators.dcgan import DCGAN
    return DCGAN(z_dim=config["z_dim"], ngf=config["ngf"], resolution=config["resolution"],
                 channels=config["channels"])


def build(p: Plan, seed: int = 0):
    """The generator with random weights, on the CPU in float32 (the same seed, the same weights)."""
    import torch
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        g = _construct(p.config, seed)
        arch = p.config["architecture"]
        if arch == "stylegan2":
            blocks = [b for b in g.blocks() if b.num_torgb]
            for b in blocks:
                b.torgb.weight.mul_(1 / math.sqrt(len(blocks)))
        if arch.startswith("stylegan"):
            m = g.mapping_network
            z = torch.randn(W_AVG_SAMPLES, m.z_dim)
            m.w_avg.copy_(m(z)[:, 0].mean(0))
        if arch == "dcgan":
            _calibrate_dcgan(g)
        g.weights_changed()
    return g.eval()


def _calibrate_dcgan(g) -> None:
    """DCGAN's initialisation (conv weights N(0, 0.02), batch-norm gains N(1, 0.02)) and
    batch-norm statistics measured on 64 z, as training would leave them."""
    import torch
    from torch import nn
    for m in g.main:
        if isinstance(m, nn.ConvTranspose2d):
            m.weight.normal_(0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.normal_(1.0, 0.02)
            m.bias.zero_()
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: the statistics of the batch below
    g.main.train()
    g.main(torch.randn(64, g.info.z_dim, 1, 1))
    g.eval()


def file_tensors(g) -> dict:
    """A generator's tensors as the file holds them: its state dict, contiguous, on the CPU
    (DCGAN's batch-norm step counters, training state, left out as in the built-in model)."""
    return {k: v.detach().cpu().contiguous() for k, v in g.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def _meta(p: Plan):
    import torch
    with torch.device("meta"):
        return _construct(p.config, None)


def layout(p: Plan) -> dict[str, tuple[int, ...]]:
    """Every tensor name of the file with its shape, nothing allocated (torch's meta device)."""
    return {k: tuple(v.shape) for k, v in _meta(p).state_dict().items() if not k.endswith("num_batches_tracked")}


def parameter_count(p: Plan) -> int:
    """The generator's parameters (mapping included; buffers such as filters and w_avg not),
    nothing allocated: the figure papers and model summaries quote."""
    return sum(v.numel() for v in _meta(p).parameters())


# ---------------------------------------------------------------- the file
def check_out(out, overwrite: bool = False) -> Path:
    """``--out`` as a Path when a random model may be written there, else RandomModelError."""
    if not out:
        raise RandomModelError("models random needs --out FILE.safetensors")
    path = Path(out)
    if path.suffix != ".safetensors" or path.name == ".safetensors":
        raise RandomModelError(f"--out {shown(str(out))}: the output must be a .safetensors file")
    if path.is_dir():
        raise RandomModelError(f"--out {shown(str(out))} is a directory")
    if path.exists() and not overwrite:
        raise RandomModelError(f"{shown(str(out))} exists; pass --overwrite to replace it")
    if path.exists() and not path.is_file():
        raise RandomModelError(f"--out {shown(str(out))} is not a regular file")
    return path


def write(p: Plan, out, seed: int = 0, overwrite: bool = False) -> dict:
    """Write the random model to ``out`` atomically (a temporary file in the same folder,
    then renamed): an existing file is replaced only with ``overwrite``, and a failure
    leaves nothing behind. Returns what was written (path, bytes, parameters, tensors)."""
    from engine.generators.load import CONFIG_KEY
    from engine.generators.output_file import FileTaken, write_safetensors
    out = check_out(out, overwrite)
    g = build(p, seed)
    tensors, parameters = file_tensors(g), g.parameter_count()
    del g
    config = {**p.config, "random": {**p.config["random"], "seed": int(seed)}}
    try:
        write_safetensors(tensors, out, {CONFIG_KEY: json.dumps(config), NOTE_KEY: NOTE}, overwrite)
    except FileTaken:
        raise RandomModelError(f"{shown(str(out))} exists; pass --overwrite to replace it") from None
    return {"path": str(out), "bytes": out.stat().st_size, "tensors": len(tensors),
            "parameters": parameters, "config": config}
