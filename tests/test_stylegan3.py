"""StyleGAN3 (T and R) against the official implementation's outputs, plus the transform API.

The parity fixtures (random-weight official G_ema state dicts and their outputs) live in the
shared fixtures folder: ``<repo>/../shared/fixtures`` in CI, else ``$VJ_SHARED`` (the shared
folder or the fixtures folder itself), else ``/work/shared/fixtures``.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.generators import stylegan3 as sg3

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ("sg3t_64", "sg3r_64")


def _fixtures_dir() -> Path | None:
    candidates = [ROOT.parent / "shared" / "fixtures"]
    if os.environ.get("VJ_SHARED"):
        shared = Path(os.environ["VJ_SHARED"])
        candidates += [shared / "fixtures", shared]
    candidates.append(Path("/work/shared/fixtures"))
    for d in candidates:
        if all((d / f"{name}.safetensors").exists() for name in FIXTURES):
            return d
    return None


FIXTURE_DIR = _fixtures_dir()
needs_fixtures = pytest.mark.skipif(
    FIXTURE_DIR is None, reason="StyleGAN3 parity fixtures (sg3t_64.*, sg3r_64.*) not found in ../shared/fixtures, "
                                "$VJ_SHARED or /work/shared/fixtures")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """On shared, busy cores torch's worker threads wait on each other for every small op
    (measured here: the same tests took 46 s with 2 threads and 10 s with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rel_l2(out, ref) -> float:
    out = out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


@pytest.fixture(scope="module", params=FIXTURES)
def fixture(request):
    from safetensors.torch import load_file
    name = request.param
    state = load_file(str(FIXTURE_DIR / f"{name}.safetensors"))
    meta = json.loads((FIXTURE_DIR / f"{name}.json").read_text())
    config = {**meta["init_kwargs"], "architecture": meta["architecture"], "name": name}
    ref = dict(np.load(FIXTURE_DIR / f"{name}.ref.npz"))
    return {"name": name, "state": state, "meta": meta, "config": config, "ref": ref,
            "g": sg3.from_state_dict(state, config)}


@needs_fixtures
def test_mapping_matches_official(fixture):
    g, ref = fixture["g"], fixture["ref"]
    z = torch.from_numpy(ref["z"])
    with torch.inference_mode():
        for psi in (1.0, 0.6):
            ws = g.mapping(z, None, psi=psi)
            assert ws.dtype == torch.float32
            assert rel_l2(ws, ref[f"ws_psi{psi}"]) < 1e-4, (fixture["name"], psi)


@needs_fixtures
def test_synthesis_matches_official(fixture):
    g, ref = fixture["g"], fixture["ref"]
    with torch.inference_mode():
        for psi in (1.0, 0.6):
            img = g.synthesis(torch.from_numpy(ref[f"ws_psi{psi}"]), noise="const")
            assert img.dtype == torch.float32 and img.shape == ref[f"img_psi{psi}"].shape
            assert rel_l2(img, ref[f"img_psi{psi}"]) < 1e-4, (fixture["name"], psi)


@needs_fixtures
def test_info_and_batch_independence(fixture):
    g, ref, kw = fixture["g"], fixture["ref"], fixture["meta"]["init_kwargs"]
    info = g.info
    assert info.architecture == fixture["meta"]["architecture"] and info.name == fixture["name"]
    assert (info.resolution, info.z_dim, info.w_dim, info.c_dim, info.channels) == (
        kw["img_resolution"], kw["z_dim"], kw["w_dim"], kw["c_dim"], kw["img_channels"])
    assert info.num_ws == 16
    # One sample alone gives the same image as inside the batch of three.
    with torch.inference_mode():
        one = g.synthesis(torch.from_numpy(ref["ws_psi0.6"][1:2]))
    assert rel_l2(one[0], ref["img_psi0.6"][1]) < 1e-4


@needs_fixtures
def test_filters_and_layout_computed_from_kwargs(fixture):
    """Built from the constructor arguments alone: same names and shapes as the official
    state dict, and the Kaiser (and, for R, jinc) filters equal the stored buffers."""
    torch.manual_seed(0)
    g = sg3.StyleGAN3(**sg3.generator_kwargs(fixture["config"]))
    mine, theirs = g.state_dict(), fixture["state"]
    assert set(mine) == set(theirs)
    for key, value in theirs.items():
        assert mine[key].shape == value.shape, key
    filters = [k for k in theirs if k.endswith(("up_filter", "down_filter"))]
    assert len(filters) == 28
    if fixture["meta"]["architecture"] == "stylegan3-r":
        assert any(theirs[k].ndim == 2 for k in filters)  # radial down filters
    for key in filters:
        torch.testing.assert_close(mine[key], theirs[key], rtol=0, atol=1e-6, msg=key)


@needs_fixtures
def test_transform_argument(fixture):
    g, ref, state = fixture["g"], fixture["ref"], fixture["state"]
    ws = torch.from_numpy(ref["ws_psi1.0"][:1])
    stored_t = state["synthesis.input.transform"]
    with torch.inference_mode():
        stored = g.synthesis(ws)
        # One transform per sample: [N, 3, 3]; the first is the stored one, as an array.
        both = g.synthesis(ws.expand(2, -1, -1), transform=np.stack([
            stored_t.numpy(), sg3.make_transform((0.1, -0.05), 0.3).numpy()]))
    torch.testing.assert_close(both[:1], stored)
    assert rel_l2(both[1], stored[0].numpy()) > 0.05
    assert rel_l2(stored[0], ref["img_psi1.0"][0]) < 1e-4
    # The stored buffer is left alone.
    torch.testing.assert_close(g.synthesis_network.input.transform, stored_t)


def test_make_transform_convention():
    """The inverse of the visualizer's [[cos, sin, x], [-sin, cos, y], [0, 0, 1]]."""
    a, x, y = 0.7, 0.2, -0.1
    forward = torch.tensor([[math.cos(a), math.sin(a), x], [-math.sin(a), math.cos(a), y], [0, 0, 1]],
                           dtype=torch.float64)
    torch.testing.assert_close(sg3.make_transform((x, y), a).double(), torch.linalg.inv(forward),
                               rtol=0, atol=1e-6)
    torch.testing.assert_close(sg3.make_transform(), torch.eye(3))


def _input_layer() -> sg3.SynthesisInput:
    torch.manual_seed(1)
    layer = sg3.SynthesisInput(8, sg3.InputSpec(channels=16, size=36, sampling_rate=16, bandwidth=2))
    with torch.no_grad():
        layer.affine.weight.normal_()
    return layer


def test_transform_moves_and_turns_the_content():
    """Translate right by one sample and rotate 90 degrees: exact shifts/rotations of the
    Fourier features (the grid is symmetric), whatever the learned transform is."""
    layer = _input_layer()
    w = torch.randn(2, 8)
    with torch.no_grad():
        base = layer(w)
        right = layer(w, sg3.make_transform((1 / layer.sampling_rate, 0)))
        down = layer(w, sg3.make_transform((0, 2 / layer.sampling_rate)))
        turned = layer(w, sg3.make_transform(rotate=math.pi / 2))
    torch.testing.assert_close(right[..., 1:], base[..., :-1], rtol=0, atol=1e-4)
    torch.testing.assert_close(down[..., 2:, :], base[..., :-2, :], rtol=0, atol=1e-4)
    # Counter-clockwise on screen: the top-right corner goes to the top-left.
    torch.testing.assert_close(turned, torch.rot90(base, 1, dims=(2, 3)), rtol=0, atol=1e-4)


def test_truncation_cutoff():
    torch.manual_seed(2)
    g = sg3.StyleGAN3(z_dim=16, w_dim=16, img_resolution=16, channel_base=256, channel_max=16)
    with torch.no_grad():
        g.mapping_network.w_avg.normal_()
        z = torch.randn(2, 16)
        full = g.mapping(z)
        cut = g.mapping(z, psi=0.5, cutoff=4)
        per_sample = g.mapping(z, psi=torch.tensor([1.0, 0.5]))
    w_avg = g.mapping_network.w_avg
    torch.testing.assert_close(cut[:, :4], w_avg + 0.5 * (full[:, :4] - w_avg))
    torch.testing.assert_close(cut[:, 4:], full[:, 4:])
    torch.testing.assert_close(per_sample[0], full[0])
    torch.testing.assert_close(per_sample[1], w_avg + 0.5 * (full[1] - w_avg))
    # styles given directly (the runner's ws/w path) are truncated the same way, towards w_avg
    torch.testing.assert_close(g.truncate(full, 0.5, 4), cut)
    # one psi per sample as a list or an array as well as a tensor
    with torch.no_grad():
        torch.testing.assert_close(g.mapping(z, psi=[1.0, 0.5]), per_sample)
        torch.testing.assert_close(g.mapping(z, psi=np.array([1.0, 0.5])), per_sample)


def test_half_precision_path_stays_close():
    """The fp16 path (used on CUDA) run on the CPU on a tiny model: close to fp32."""
    torch.manual_seed(3)
    g = sg3.StyleGAN3(z_dim=16, w_dim=16, img_resolution=16, channel_base=256, channel_max=16,
                      num_layers=6, architecture="stylegan3-t")
    layers = [getattr(g.synthesis_network, n) for n in g.synthesis_network.layer_names]
    assert all(layer.spec.use_fp16 for layer in layers)  # 16 px: every layer is an fp16 layer
    ws = g.mapping(torch.randn(1, 16), psi=0.7)
    with torch.inference_mode():
        full = g.synthesis_network(ws, fp16=False)
        half = g.synthesis_network(ws, fp16=True)
        cpu_default = g.synthesis(ws)
    assert half.dtype == torch.float32
    torch.testing.assert_close(cpu_default, full)  # the CPU always runs fp32
    assert rel_l2(half, full.numpy()) < 2e-2


def test_radial_config_defaults_and_errors():
    kw = sg3.generator_kwargs({"architecture": "stylegan3-r", "init_kwargs": {"img_resolution": 16}})
    assert kw["conv_kernel"] == 1 and kw["use_radial_filters"] is True
    with pytest.raises(ValueError, match="not a StyleGAN3"):
        sg3.generator_kwargs({"architecture": "stylegan2", "img_resolution": 16})
    small = dict(z_dim=16, w_dim=16, img_resolution=16, channel_base=256, channel_max=16)
    state = sg3.StyleGAN3(**small).state_dict()
    g = sg3.from_state_dict(state, {**small, "architecture": "stylegan3-t"})
    assert g.info.architecture == "stylegan3-t" and g.info.resolution == 16
    with pytest.raises(ValueError, match="layers"):
        sg3.from_state_dict(state, {**small, "channel_max": 8, "architecture": "stylegan3-t"})
    with pytest.raises(ValueError, match=r"ws must be \[N, 16, 16\]"):
        g.synthesis(torch.zeros(1, 15, 16))


def test_conditional_mapping_needs_c():
    torch.manual_seed(4)
    g = sg3.StyleGAN3(z_dim=16, c_dim=3, w_dim=16, img_resolution=16, channel_base=256, channel_max=16)
    assert "mapping.embed.weight" in g.state_dict() and g.info.c_dim == 3
    z = torch.randn(2, 16)
    with torch.no_grad():
        a = g.mapping(z, torch.eye(3)[[0, 1]])
        b = g.mapping(z, torch.eye(3)[[0, 2]])
    torch.testing.assert_close(a[0], b[0])
    assert not torch.allclose(a[1], b[1])
    with pytest.raises(ValueError, match="conditional"):
        g.mapping(z)


@pytest.mark.parametrize("up,pads", [(2, (9, 8)), (4, (-6, -9)), (2, (-11, -12)), (2, (3, 3)), (2, (0, 5)),
                                     (4, (2, -1)), (1, (2, -1))])
def test_fir_up_matches_zero_insertion(up, pads):
    """The transposed-convolution upsampler (fast and fallback paths) against the definition:
    insert zeros, pad (negative crops), convolve."""
    torch.manual_seed(5)
    k = 6 * up
    x, f = torch.randn(2, 3, 19, 23), torch.randn(k)
    for dim in (2, 3):
        n = x.shape[dim]
        shape = list(x.shape)
        shape[dim] = n * up
        z = torch.zeros(shape)
        z.index_copy_(dim, torch.arange(n) * up, x)
        z = torch.nn.functional.pad(z, [0, 0, *pads] if dim == 2 else list(pads))
        kern = f.view(1, 1, -1, 1) if dim == 2 else f.view(1, 1, 1, -1)
        want = torch.nn.functional.conv2d(z, kern.flip(dim).expand(3, -1, -1, -1), groups=3)
        got = sg3._fir_up(x, kern.expand(3, -1, -1, -1).contiguous(), up, *pads, dim=dim)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
