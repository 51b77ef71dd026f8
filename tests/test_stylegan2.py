"""StyleGAN2 against the official outputs in the shared fixtures (fp32, CPU), and the
generator interface: truncation, style mixing, noise modes and strengths, fp16 math."""
import json

import numpy as np
import pytest
import torch

from conftest import run_vj
from official_pickle import fixtures_dir

from engine.generators.base import mix_styles
from engine.generators.load import load_generator

FIX = fixtures_dir()
needs_fixtures = pytest.mark.skipif(FIX is None, reason="StyleGAN fixtures not found: put shared/ beside the "
                                                         "repository or set VJ_SHARED")
SG2 = ["sg2_64_skip", "sg2_32_resnet_cond"]
TOL = 1e-4


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def ref(name):
    return np.load(FIX / f"{name}.ref.npz")


_cache = {}


def generator(name):
    if name not in _cache:
        _cache[name] = load_generator(str(FIX / f"{name}.safetensors"))
    return _cache[name]


@needs_fixtures
@pytest.mark.parametrize("name", SG2)
def test_vj_models_sample_reproduces_official_images_with_truncation(tmp_path, name):
    r = ref(name)
    np.save(tmp_path / "z.npy", r["z"])
    np.save(tmp_path / "c.npy", r["c"])
    out = tmp_path / "img.npy"
    args = ["models", "sample", FIX / f"{name}.safetensors", "--z", tmp_path / "z.npy", "--psi", "0.6",
            "--noise", "const", "--precision", "fp32", "--out", out]
    if r["c"].shape[1]:
        args += ["--c", tmp_path / "c.npy"]
    run_vj(*args)
    img = np.load(out)
    assert img.dtype == np.float32 and img.shape == r["img_psi0.6"].shape
    assert rel_l2(img, r["img_psi0.6"]) < TOL


@needs_fixtures
def test_sampling_from_styles_reproduces_style_mixing(tmp_path):
    """`vj models sample --ws` (the same function, without a second process)."""
    from engine.generators import tools
    name = "sg2_32_resnet_cond"
    r = ref(name)
    np.save(tmp_path / "ws.npy", r["ws_mix"])
    tools.sample(str(FIX / f"{name}.safetensors"), str(tmp_path / "o.npy"), ws=str(tmp_path / "ws.npy"))
    assert rel_l2(np.load(tmp_path / "o.npy"), r["img_mix"]) < TOL
    with pytest.raises(ValueError, match="conditional"):
        np.save(tmp_path / "z.npy", r["z"])
        tools.sample(str(FIX / f"{name}.safetensors"), str(tmp_path / "o.npy"), z=str(tmp_path / "z.npy"))


@needs_fixtures
@pytest.mark.parametrize("name", SG2)
def test_mapping_and_synthesis_match_every_reference(name):
    g, r = generator(name), ref(name)
    z = torch.from_numpy(r["z"])
    c = torch.from_numpy(r["c"]) if r["c"].shape[1] else None
    with torch.no_grad():
        for psi in ("1.0", "0.6"):
            ws = g.mapping(z, c, psi=float(psi))
            assert rel_l2(ws, r[f"ws_psi{psi}"]) < 1e-6
            assert rel_l2(g.synthesis(ws, noise="const"), r[f"img_psi{psi}"]) < TOL
        # style mixing: sample 1 with its first 4 layers from sample 0
        ws = g.mapping(z, c)
        mixed = mix_styles(ws[1:2], ws[0:1], 4)
        assert rel_l2(mixed, r["ws_mix"]) < 1e-6
        assert rel_l2(g.synthesis(mixed), r["img_mix"]) < TOL
        # batch 1 runs a different code path (style folded into the weights)
        one = torch.cat([g.synthesis(torch.from_numpy(r["ws_psi1.0"][i:i + 1])) for i in range(len(z))])
        assert rel_l2(one, r["img_psi1.0"]) < TOL


@needs_fixtures
def test_model_facts():
    g = generator("sg2_32_resnet_cond")
    i = g.info
    assert (i.architecture, i.resolution, i.z_dim, i.w_dim, i.num_ws, i.c_dim) == ("stylegan2", 32, 64, 128, 8, 5)
    assert i.extra["synthesis_architecture"] == "resnet" and i.extra["conv_clamp"] is None
    assert i.extra["noise_layers"] == ["b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1",
                                       "b32.conv0", "b32.conv1"]
    g = generator("sg2_64_skip")
    assert (g.info.num_ws, g.info.extra["conv_clamp"], g.info.extra["synthesis_architecture"]) == (10, 256, "skip")
    kwargs = json.loads((FIX / "sg2_64_skip.json").read_text())["init_kwargs"]
    assert g.info.extra["mapping_layers"] == kwargs["mapping_kwargs"]["num_layers"]


@needs_fixtures
def test_truncation_cutoff_and_psi_zero():
    g, r = generator("sg2_64_skip"), ref("sg2_64_skip")
    z = torch.from_numpy(r["z"])
    with torch.no_grad():
        full, cut = g.mapping(z, psi=0.6), g.mapping(z, psi=0.6, cutoff=3)
        free = g.mapping(z)
        assert torch.equal(cut[:, :3], full[:, :3]) and torch.equal(cut[:, 3:], free[:, 3:])
        avg = g.mapping(z, psi=0.0)
        assert torch.allclose(avg, g.mapping_network.w_avg.expand_as(avg))
        # truncating styles given directly is the same operation
        assert torch.allclose(g.truncate(free, 0.6, 3), cut)


@needs_fixtures
def test_noise_modes_and_per_layer_strength():
    g, r = generator("sg2_32_resnet_cond"), ref("sg2_32_resnet_cond")
    ws = torch.from_numpy(r["ws_psi1.0"])
    n = len(g.info.extra["noise_layers"])
    with torch.no_grad():
        const, none = g.synthesis(ws, noise="const"), g.synthesis(ws, noise="none")
        assert rel_l2(none, const) > 1e-3  # noise matters in these weights
        assert torch.equal(g.synthesis(ws, noise_strength=0.0), none)
        assert torch.equal(g.synthesis(ws, noise_strength=[0.0] * n), none)
        assert torch.equal(g.synthesis(ws, noise_strength={"b4.conv1": 1.0}), const)
        half = g.synthesis(ws, noise_strength=[1.0] + [0.0] * (n - 1))
        assert rel_l2(half, none) > 0 and rel_l2(half, const) > 0
        torch.manual_seed(1)
        a = g.synthesis(ws, noise="random")
        torch.manual_seed(1)
        b = g.synthesis(ws, noise="random")
        c = g.synthesis(ws, noise="random")
        assert torch.equal(a, b) and not torch.equal(b, c)
        assert torch.equal(g.synthesis(ws, noise=0.0), none)  # a number: random noise at that strength
        with pytest.raises(ValueError, match="noise layers"):
            g.synthesis(ws, noise_strength=[1.0, 2.0])
        with pytest.raises(ValueError, match="noise must be"):
            g.synthesis(ws, noise="loud")


@needs_fixtures
def test_fp16_math_is_close_and_returns_float32():
    """The fp16 path (pre-normalised weights and styles, fp32 image sum) on the CPU:
    the same arithmetic the CUDA path runs, checked for closeness only."""
    name = "sg2_32_resnet_cond"
    g, r = load_generator(str(FIX / f"{name}.safetensors")), ref(name)
    ws = torch.from_numpy(r["ws_psi1.0"])
    with torch.no_grad():
        g.set_precision(torch.float16, channels_last=True)
        img = g.synthesis(ws)
        assert img.dtype == torch.float32 and torch.isfinite(img).all()
        assert rel_l2(img, r["img_psi1.0"]) < 1e-2
        assert rel_l2(g.synthesis(ws[:1]), r["img_psi1.0"][:1]) < 1e-2
        g.set_precision(torch.float16, fp16_blocks="trained")  # this model was trained all fp32
        assert rel_l2(g.synthesis(ws), r["img_psi1.0"]) < TOL
        g.set_precision(torch.float32)
        assert rel_l2(g.synthesis(ws), r["img_psi1.0"]) < TOL


def test_any_resolution_and_orig_architecture():
    from engine.generators.stylegan2 import StyleGAN2, from_state_dict
    for res, arch in ((4, "skip"), (8, "orig"), (16, "resnet")):
        g = StyleGAN2(z_dim=8, w_dim=8, img_resolution=res, channel_base=64, channel_max=8,
                      mapping_kwargs={"num_layers": 1}, architecture=arch)
        with torch.no_grad():
            img = g(torch.randn(2, 8))
        assert img.shape == (2, 3, res, res) and torch.isfinite(img).all()
        assert g.info.num_ws == 2 * int(np.log2(res)) - 2
        g2 = from_state_dict(g.state_dict(), {})
        assert g2.info.extra["synthesis_architecture"] == arch


def test_both_stylegans_share_the_layers_and_the_naming_convention():
    """One FullyConnectedLayer and one MappingNetwork (engine/generators/layers.py) for
    StyleGAN2 and StyleGAN3; both register the official ``mapping`` and ``synthesis``
    submodules under those names, so ``state_dict()`` is the official layout, while
    ``g.mapping`` / ``g.synthesis`` stay the interface methods."""
    from engine.generators import layers
    from engine.generators.stylegan2 import StyleGAN2
    from engine.generators.stylegan3 import StyleGAN3
    small = dict(z_dim=8, w_dim=8, img_resolution=16, channel_base=128, channel_max=8)
    for g in (StyleGAN2(**small, mapping_kwargs={"num_layers": 2}), StyleGAN3(**small)):
        assert type(g.mapping_network) is layers.MappingNetwork
        assert type(g.mapping_network.fc0) is layers.FullyConnectedLayer
        assert {k.split(".")[0] for k in g.state_dict()} == {"mapping", "synthesis"}
        assert "mapping.fc0.weight" in g.state_dict() and "mapping.w_avg" in g.state_dict()
        assert callable(g.mapping) and g.mapping_network is g.get_submodule("mapping")
        assert g.synthesis_network is g.get_submodule("synthesis")
        assert g.get_parameter("mapping.fc0.weight") is g.mapping_network.fc0.weight
        with torch.no_grad():
            ws = g.mapping(torch.randn(2, 8), psi=0.7, cutoff=2)
            free = g.mapping(torch.randn(2, 8))
        assert ws.shape == (2, g.info.num_ws, 8)
        # truncating styles given directly is the mapping's own truncation, towards w_avg
        torch.testing.assert_close(g.truncate(free, 0.5), g.mapping_network.w_avg.lerp(free, 0.5))
        with pytest.raises(ValueError, match=r"ws must be \[N, "):
            g.synthesis(ws[:, :-1])
        with pytest.raises(ValueError, match="unknown mapping_kwargs"):
            type(g)(**small, mapping_kwargs={"num_layerz": 2})
    with pytest.raises(TypeError):  # the options are keyword-only: the official versions order them differently
        layers.FullyConnectedLayer(4, 4, "lrelu")

