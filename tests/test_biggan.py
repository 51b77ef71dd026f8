"""BigGAN-deep in the pytorch-pretrained-BigGAN layout, checked without official weights:
the layout (names and shapes as documented), round trips, conditioning, truncation, and
the whole network against a literal reference written here from the format notes."""
import json
import math

import numpy as np
import pytest
import torch

from engine.generators import biggan
from engine.generators.biggan import BigGAN, from_state_dict, standard_config, stats_rows, truncated_z

K = 10          # classes
Z = 16          # z_dim = class_embed_dim
CH = 4          # channel_width
CFG = standard_config(128, channel_width=CH, num_classes=K, z_dim=Z, class_embed_dim=Z, name="tiny")


@pytest.fixture(scope="module")
def g():
    return BigGAN(CFG, seed=3)


def onehot(i, n=1):
    c = torch.zeros(n, K)
    c[:, i] = 1
    return c


# -- the documented layout, written out independently of the module ------------------

def documented_layout(cfg) -> dict[str, tuple]:
    ch, z, e, k, n = cfg["channel_width"], cfg["z_dim"], cfg["class_embed_dim"], cfg["num_classes"], cfg["n_stats"]
    cond = z + e
    out = {"embeddings.weight": (e, k)}

    def sn(prefix, shape, bias):
        out[prefix + ".weight_orig"] = shape
        out[prefix + ".weight_u"] = (shape[0],)
        out[prefix + ".weight_v"] = (math.prod(shape[1:]),)
        if bias:
            out[prefix + ".bias"] = (shape[0],)

    sn("generator.gen_z", (4 * 4 * 16 * ch, cond), True)
    idx = 0
    for i, (up, a, b) in enumerate(cfg["layers"]):
        if i == cfg["attention_layer_position"]:
            c = ch * a
            p = f"generator.layers.{idx}"
            sn(p + ".snconv1x1_theta", (c // 8, c, 1, 1), False)
            sn(p + ".snconv1x1_phi", (c // 8, c, 1, 1), False)
            sn(p + ".snconv1x1_g", (c // 2, c, 1, 1), False)
            sn(p + ".snconv1x1_o_conv", (c, c // 2, 1, 1), False)
            out[p + ".gamma"] = (1,)
            idx += 1
        p = f"generator.layers.{idx}"
        cin, cout, mid = ch * a, ch * b, ch * a // 4
        for j, (cb, k_in, k_out, ks) in enumerate([(cin, cin, mid, 1), (mid, mid, mid, 3), (mid, mid, mid, 3),
                                                   (mid, mid, cout, 1)]):
            out[f"{p}.bn_{j}.running_means"] = (n, cb)
            out[f"{p}.bn_{j}.running_vars"] = (n, cb)
            sn(f"{p}.bn_{j}.scale", (cb, cond), False)
            sn(f"{p}.bn_{j}.offset", (cb, cond), False)
            sn(f"{p}.conv_{j}", (k_out, k_in, ks, ks), True)
        idx += 1
    out.update({"generator.bn.running_means": (n, ch), "generator.bn.running_vars": (n, ch),
                "generator.bn.weight": (ch,), "generator.bn.bias": (ch,)})
    sn("generator.conv_to_rgb", (ch, ch, 3, 3), True)
    return out


def random_state(cfg, seed=0) -> dict[str, torch.Tensor]:
    """Random weights in the documented layout, with valid spectral-norm vectors."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in documented_layout(cfg).items():
        if name.endswith("running_vars"):
            t = torch.rand(shape, generator=gen) + 0.5
        elif name.endswith("running_means") or name.endswith("bias"):
            t = torch.randn(shape, generator=gen) * 0.1
        elif name.endswith("weight_u") or name.endswith("weight_v"):
            t = torch.nn.functional.normalize(torch.randn(shape, generator=gen), dim=0)
        elif name.endswith("gamma"):
            t = torch.full(shape, 0.7)
        else:
            t = torch.randn(shape, generator=gen) * 0.5
        state[name] = t
    for name in list(state):  # make u . (W v) a sensible positive scale
        if name.endswith(".weight_orig"):
            p = name[: -len("weight_orig")]
            mat = state[name].reshape(state[name].shape[0], -1)
            v = state[p + "weight_v"]
            for _ in range(5):
                u = torch.nn.functional.normalize(mat @ v, dim=0)
                v = torch.nn.functional.normalize(mat.t() @ u, dim=0)
            state[p + "weight_u"], state[p + "weight_v"] = u, v
    return state


def test_state_dict_layout_is_the_documented_one():
    layout = documented_layout(CFG)
    mine = biggan.expected_shapes(CFG)
    assert mine == layout
    # the released 128 px model: gen_z [4*4*16*128, 256], attention at layers.8, 50.4 M parameters
    full = biggan.expected_shapes(standard_config(128))
    assert full["generator.gen_z.weight_orig"] == (32768, 256)
    assert full["generator.layers.8.snconv1x1_theta.weight_orig"] == (32, 256, 1, 1)
    assert full["generator.layers.0.bn_0.running_means"] == (51, 2048)
    assert full["generator.conv_to_rgb.weight_orig"] == (128, 128, 3, 3)
    params = sum(math.prod(s) for k, s in full.items()
                 if not k.endswith(("weight_u", "weight_v", "running_means", "running_vars")))
    assert abs(params / 1e6 - 50.4) < 0.1


def test_strict_loading(g):
    state = random_state(CFG, seed=1)
    loaded = from_state_dict(state, CFG)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert loaded.info.architecture == "biggan" and loaded.info.name == "tiny"
    with pytest.raises(ValueError, match="missing.*generator.bn.weight"):
        from_state_dict({k: v for k, v in state.items() if k != "generator.bn.weight"}, CFG)
    with pytest.raises(ValueError, match="unexpected.*extra"):
        from_state_dict({**state, "extra": torch.zeros(1)}, CFG)
    bad = dict(state, **{"embeddings.weight": torch.zeros(Z, K + 1)})
    with pytest.raises(ValueError, match="wrong shapes embeddings.weight"):
        from_state_dict(bad, CFG)
    # the port's JSON: layers as lists with true/false, fp16 tensors are fine
    cfg_json = json.loads(json.dumps(CFG))
    half = from_state_dict({k: v.half() for k, v in state.items()}, cfg_json)
    assert half.generator.gen_z.weight_orig.dtype == torch.float32


def test_safetensors_round_trip_is_bit_identical(tmp_path, g):
    from safetensors.torch import save_file

    from engine.generators.load import CONFIG_KEY, read_model
    from engine.generators.registry import ModelEntry
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in g.state_dict().items()}, str(path),
              metadata={CONFIG_KEY: json.dumps(g.config)})
    state, config = read_model(ModelEntry(name="tiny", file=path))
    assert config["architecture"] == "biggan"
    g2 = from_state_dict(state, config)
    z = g.truncated_z(2, seed=5)
    c = onehot(3, 2)
    with torch.no_grad():
        assert torch.equal(g(z, c, psi=0.6), g2(z, c, psi=0.6))
    # engine options from models.toml reach the generator (the file's config does not pin them)
    entry = ModelEntry(name="tiny", file=path, options={"default_class": 3, "stats_interpolation": "linear"})
    g3 = from_state_dict(*read_model(entry))
    assert (g3.default_class, g3.stats_mode) == (3, "linear")
    with torch.no_grad():
        assert torch.equal(g3.mapping(z, None, 0.6), g.mapping(z, c, 0.6))


def test_load_generator_when_registered(tmp_path, g):
    from safetensors.torch import save_file

    from engine.generators import load
    if "biggan" not in load._builders():
        pytest.skip("biggan is not registered in engine.generators.load yet")
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in g.state_dict().items()}, str(path),
              metadata={load.CONFIG_KEY: json.dumps(g.config)})
    g2 = load.load_generator(str(path))
    z = g.truncated_z(1, seed=2)
    with torch.no_grad():
        assert torch.equal(g(z, onehot(1), 0.5), g2(z, onehot(1), 0.5))


def test_class_conditioning_and_mixes(g):
    z = g.truncated_z(1, seed=7)
    with torch.no_grad():
        a, b = g(z, onehot(2), 0.5), g(z, onehot(6), 0.5)
        mix = 0.5 * onehot(2) + 0.5 * onehot(6)
        m = g(z, mix, 0.5)
        ws_a, ws_b, ws_m = g.mapping(z, onehot(2), 0.5), g.mapping(z, onehot(6), 0.5), g.mapping(z, mix, 0.5)
    assert (a - b).abs().mean() > 0.02
    # the embedding is linear: a 50/50 class mix is the midpoint in style space ...
    assert torch.allclose(ws_m, (ws_a + ws_b) / 2, atol=1e-6)
    # ... and its image lies between the two classes' images, reached smoothly
    d_ab = (a - b).norm()
    assert 0.3 < (m - a).norm() / d_ab < 0.7 and 0.3 < (m - b).norm() / d_ab < 0.7
    with torch.no_grad():
        path = [g(z, (1 - t) * onehot(2) + t * onehot(6), 0.5) for t in np.linspace(0, 1, 11)]
    assert torch.equal(path[0], a) and torch.equal(path[5], m)
    assert max((q - p).norm() for p, q in zip(path, path[1:])) < 0.2 * d_ab
    # an int class, a 1-d vector and None (default class 0) are accepted
    with torch.no_grad():
        assert torch.equal(g(z, 2, 0.5), a)
        assert torch.equal(g(z, onehot(2)[0], 0.5), a)
        assert torch.equal(g(z, None, 0.5), g(z, onehot(0), 0.5))
    with pytest.raises(ValueError, match="out of range"):
        g.mapping(z, K, 0.5)
    with pytest.raises(ValueError, match="class weights"):
        g.mapping(z, torch.zeros(K + 2), 0.5)


def test_psi_scales_z_and_reaches_the_batch_norms(g):
    z = g.truncated_z(3, seed=11)
    for psi in (0.3, 1.0):
        ws = g.mapping(z, None, psi)
        assert ws.shape == (3, 1, g.info.w_dim) == (3, 1, Z + Z + 1)
        assert torch.allclose(ws[:, 0, :Z], z * psi)
        assert torch.all(ws[:, 0, -1] == torch.tensor(psi, dtype=torch.float32))
    # same z and class, only the truncation column differs: other statistics, other image
    ws = g.mapping(z[:1], None, 0.5)
    ws2 = ws.clone()
    ws2[..., -1] = 0.9
    with torch.no_grad():
        assert (g.synthesis(ws) - g.synthesis(ws2)).abs().mean() > 1e-3


def test_truncated_z():
    z = truncated_z(200, psi=1.0, seed=4, dim=128)
    assert z.shape == (200, 128) and z.dtype == np.float32
    assert np.abs(z).max() <= 2.0 and np.abs(z).max() > 1.9
    assert abs(z.std() - 0.88) < 0.02           # std of a standard normal truncated at +-2
    assert np.array_equal(z, truncated_z(200, 1.0, seed=4, dim=128))
    assert not np.array_equal(z, truncated_z(200, 1.0, seed=5, dim=128))
    assert np.allclose(truncated_z(200, 0.4, seed=4, dim=128), 0.4 * z, atol=1e-6)
    assert np.abs(truncated_z(50, 0.4, seed=1, dim=128)).max() <= 0.8 + 1e-6


def test_output_range_shape_and_determinism(g):
    z = torch.from_numpy(np.random.default_rng(0).standard_normal((2, Z)).astype(np.float32)) * 3
    with torch.no_grad():
        a = g(z, onehot(1, 2), 1.0)
        b = g(z, onehot(1, 2), 1.0)
    assert a.shape == (2, 3, 128, 128) and a.dtype == torch.float32
    assert a.min() >= -1 and a.max() <= 1 and a.std() > 0.05
    assert torch.equal(a, b)


def test_moving_dtype_rebuilds_the_plan(g):
    z = g.truncated_z(1, seed=9)
    g64 = BigGAN(CFG, seed=3)
    with torch.no_grad():
        ref = g64(z, onehot(4), 0.5)
        g64.double()
        out = g64(z, onehot(4), 0.5)
    assert out.dtype == torch.float64
    assert (out.float() - ref).abs().max() < 1e-4


def test_runner_draws_biggan_frames(g):
    from engine.render.gpu import GeneratorRunner
    runner = GeneratorRunner(BigGAN(CFG, seed=3), device="cpu")
    c = np.zeros(K, np.float32)
    c[[1, 2]] = 0.5
    ws = runner.styles(z=truncated_z(1, 1.0, seed=1, dim=Z)[0], psi=0.5, c=c)
    img = runner.image(ws)
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    assert np.array_equal(runner.image(runner.styles(w=ws[0, 0].numpy())), img)


def test_fp16_frames_match_fp32():
    """The CUDA path in miniature (fp16 on the CPU): weights, activations and the style row,
    psi included, in float16. psi = 0.4 becomes 0.39990 and must still pick row 20."""
    from engine.render.gpu import GeneratorRunner
    z = truncated_z(1, 1.0, seed=3, dim=Z)[0]
    images = []
    for precision in ("fp32", "fp16"):
        runner = GeneratorRunner(BigGAN(CFG, seed=3), device="cpu", precision=precision)
        images.append(runner.image(runner.styles(z=z, psi=0.4, c=5)).astype(int))
    assert np.abs(images[0] - images[1]).max() <= 2


# -- hand-computed pieces ----------------------------------------------------------------

def test_stats_rows_by_hand():
    means = torch.tensor([[0.0, 0.0], [10.0, 20.0], [30.0, 40.0]])   # rows at truncation 0, 0.5, 1
    variances = means + 1
    psi = torch.tensor([0.5, 0.75, 0.6, 1.0, 0.0, 1.7, -0.2])
    m, v = stats_rows(means, variances, psi, "port")
    # 0.6 -> q = 1.2: the port weighs row 1 by 0.2 and row 2 by 0.8
    expect = [[10, 20], [20, 30], [26, 36], [30, 40], [0, 0], [30, 40], [0, 0]]
    assert torch.allclose(m, torch.tensor(expect, dtype=torch.float32), atol=1e-5)
    assert torch.allclose(v, m + 1, atol=1e-5)
    m, _ = stats_rows(means, variances, psi[:3], "linear")
    assert torch.allclose(m, torch.tensor([[10.0, 20], [20, 30], [14, 24]]), atol=1e-5)
    # grid points that went through float16 / float32 still pick the port's row
    rows = torch.arange(51, dtype=torch.float32)[:, None].repeat(1, 2)
    for dt in (torch.float16, torch.float32):
        m, _ = stats_rows(rows, rows, torch.tensor([0.4, 0.7, 0.02], dtype=dt), "port")
        assert m[:, 0].tolist() == [20.0, 35.0, 1.0]


def test_spectral_norm_by_hand():
    sn = biggan._SNLinear(2, 2, bias=False)
    with torch.no_grad():
        sn.weight_orig.copy_(torch.tensor([[3.0, 0.0], [0.0, 1.0]]))
        sn.weight_u.copy_(torch.tensor([1.0, 0.0]))
        sn.weight_v.copy_(torch.tensor([1.0, 0.0]))
    assert torch.allclose(sn.effective_weight(), torch.tensor([[1.0, 0.0], [0.0, 1 / 3]]))
    with torch.no_grad():  # sigma is u . (W v) as stored, not the true spectral norm
        sn.weight_u.copy_(torch.tensor([0.6, 0.8]))
        sn.weight_v.copy_(torch.tensor([0.8, 0.6]))
    assert torch.allclose(sn.effective_weight(), sn.weight_orig / (0.6 * 2.4 + 0.8 * 0.6))


def test_attention_by_hand():
    # 1 query channel, 1 value channel, 2x2 image -> one pooled key: every query attends to it
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    qkv = torch.tensor([[1.0], [1.0], [2.0]])[:, :, None, None]  # theta = x, phi = x, g = 2x
    out = biggan._attention(x, qkv, 1, 1)
    assert torch.allclose(out, torch.full((1, 1, 2, 2), 8.0))   # max-pooled g
    # 4x2: two keys (pooled 2x2 halves), softmax(theta * phi) by hand
    x = torch.tensor([[[[0.1, 0.2, 0.5, 0.0], [0.3, 0.4, 0.1, 0.2]]]])
    out = biggan._attention(x, qkv, 1, 1)
    keys, vals = [0.4, 0.5], [0.8, 1.0]
    for i, q in enumerate(x.flatten().tolist()):
        w = [math.exp(q * k) for k in keys]
        expect = sum(wi * vi for wi, vi in zip(w, vals)) / sum(w)
        assert abs(out.flatten()[i].item() - expect) < 1e-6


# -- the whole network against a literal reference -----------------------------------------

def _ref_sn(state, prefix):
    w = state[prefix + ".weight_orig"]
    sigma = torch.dot(state[prefix + ".weight_u"], w.reshape(w.shape[0], -1) @ state[prefix + ".weight_v"])
    return w / sigma


def _ref_bn(state, prefix, x, trunc, eps, cond=None):
    means, variances = state[prefix + ".running_means"], state[prefix + ".running_vars"]
    coef, i = math.modf(trunc / (1.0 / (means.shape[0] - 1)))
    i = int(i)
    if coef != 0.0:
        mean = means[i] * coef + means[i + 1] * (1 - coef)
        var = variances[i] * coef + variances[i + 1] * (1 - coef)
    else:
        mean, var = means[i], variances[i]
    if cond is None:
        weight, bias = state[prefix + ".weight"][None], state[prefix + ".bias"][None]
    else:
        weight = 1 + cond @ _ref_sn(state, prefix + ".scale").t()
        bias = cond @ _ref_sn(state, prefix + ".offset").t()
    return (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + eps) \
        * weight[:, :, None, None] + bias[:, :, None, None]


def _ref_conv(state, prefix, x, pad):
    b = state.get(prefix + ".bias")
    return torch.nn.functional.conv2d(x, _ref_sn(state, prefix), b, padding=pad)


def reference_forward(state, cfg, z, c, trunc):
    """The format's forward pass, step by step as the notes describe it."""
    F = torch.nn.functional
    eps = cfg["eps"]
    cond = torch.cat([z, c @ state["embeddings.weight"].t()], 1)
    ch0 = 16 * cfg["channel_width"]
    x = cond @ _ref_sn(state, "generator.gen_z").t() + state["generator.gen_z.bias"]
    x = x.view(-1, 4, 4, ch0).permute(0, 3, 1, 2)
    idx = 0
    for i, (up, a, b) in enumerate(cfg["layers"]):
        if i == cfg["attention_layer_position"]:
            p = f"generator.layers.{idx}"
            n, c_, h, w = x.shape
            theta = _ref_conv(state, p + ".snconv1x1_theta", x, 0).view(n, c_ // 8, h * w)
            phi = F.max_pool2d(_ref_conv(state, p + ".snconv1x1_phi", x, 0), 2).view(n, c_ // 8, h * w // 4)
            attn = torch.softmax(torch.bmm(theta.permute(0, 2, 1), phi), dim=-1)
            g = F.max_pool2d(_ref_conv(state, p + ".snconv1x1_g", x, 0), 2).view(n, c_ // 2, h * w // 4)
            o = torch.bmm(g, attn.permute(0, 2, 1)).view(n, c_ // 2, h, w)
            x = x + state[p + ".gamma"] * _ref_conv(state, p + ".snconv1x1_o_conv", o, 0)
            idx += 1
        p = f"generator.layers.{idx}"
        h = x
        for j in range(4):
            h = torch.relu(_ref_bn(state, f"{p}.bn_{j}", h, trunc, eps, cond))
            if j == 1 and up:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = _ref_conv(state, f"{p}.conv_{j}", h, 1 if j in (1, 2) else 0)
        skip = x[:, : x.shape[1] // 2] if a != b else x
        if up:
            skip = F.interpolate(skip, scale_factor=2, mode="nearest")
        x = h + skip
        idx += 1
    x = torch.relu(_ref_bn(state, "generator.bn", x, trunc, eps))
    x = _ref_conv(state, "generator.conv_to_rgb", x, 1)
    return torch.tanh(x[:, :3])


@pytest.mark.parametrize("trunc", [0.5, 0.37, 0.413, 1.0])
def test_matches_literal_reference(trunc):
    state = random_state(CFG, seed=2)
    g = from_state_dict(state, CFG)
    z = torch.from_numpy(truncated_z(2, trunc, seed=8, dim=Z))   # the port's convention: z already scaled
    c = torch.stack([onehot(1)[0], 0.3 * onehot(4)[0] + 0.7 * onehot(9)[0]])
    with torch.no_grad():
        ref = reference_forward(state, CFG, z, c, trunc)
        out = g.synthesis(g.mapping(z / trunc, c, psi=trunc))
    assert ref.std() > 0.05
    assert (out - ref).abs().max() < 1e-4


def test_linear_stats_mode_is_continuous_in_psi():
    """The port's blend jumps right after a grid point (0.4 -> 0.401 swaps row 20 for
    about row 21); the linear mode does not."""
    change = {}
    for mode in ("port", "linear"):
        g = BigGAN({**CFG, "stats_interpolation": mode}, seed=3)
        ws = g.mapping(g.truncated_z(1, seed=1), 3, 0.4)
        with torch.no_grad():
            imgs = []
            for psi in (0.4, 0.401):
                w = ws.clone()
                w[..., -1] = psi
                imgs.append(g.synthesis(w))
        change[mode] = (imgs[1] - imgs[0]).abs().max().item()
    assert change["linear"] < 0.2 * change["port"]


# -- the xoromancy patch ---------------------------------------------------------------------

def _patch_frames(info, times):
    from pathlib import Path

    from engine.patching.loader import PatchHost
    from engine.signals.bus import SignalBus
    from engine.signals.clock import VirtualClock
    messages = []
    host = PatchHost(Path(__file__).resolve().parent.parent / "patches" / "xoromancy.py", info,
                     on_message=lambda m, lvl: messages.append(m))
    host.load()
    bus, clock = SignalBus(), VirtualClock(30)
    out = []
    for k in range(max(times) + 1):
        clock.tick()
        controls = host.frame(bus.snapshot(**clock.fields()))
        if k in times:
            out.append(controls)
    return out, messages


def test_xoromancy_blends_classes_on_a_biggan(g):
    from engine.render.gpu import GeneratorRunner
    runner = GeneratorRunner(BigGAN(CFG, seed=3), device="cpu")
    frames, messages = _patch_frames(runner.info, [0, 300, 600])
    images = []
    for c in frames:
        assert c.c is not None and c.c.shape == (K,)
        assert np.all(c.c >= 0) and abs(c.c.sum() - 1) < 1e-6 and np.count_nonzero(c.c) <= 2
        assert 0.3 < c.psi <= 1.0 and np.asarray(c.z).shape == (Z,)
        images.append(runner.image(runner.styles(z=c.z, psi=c.psi, c=c.c)))
    assert not np.array_equal(frames[0].c, frames[2].c)          # the class hand moved
    assert np.abs(images[0].astype(int) - images[2]).mean() > 1
    assert not any("error" in m.lower() for m in messages)


def test_xoromancy_falls_back_to_a_latent_loop_without_classes():
    from engine.generators.base import ModelInfo
    info = ModelInfo(name="d", architecture="dcgan", resolution=64, z_dim=8, w_dim=8, num_ws=1)
    frames, messages = _patch_frames(info, [0, 300])
    assert all(c.c is None and np.asarray(c.z).shape == (8,) for c in frames)
    assert not np.allclose(frames[0].z, frames[1].z)
    assert any("no classes" in m for m in messages)


def test_xoromancy_runs_with_the_builtin_model():
    from conftest import run_vj
    proc = run_vj("run", "patches/xoromancy.py", "--headless", "--frames", "30", "--size", "96x64")
    assert "frame 30" in proc.stderr + proc.stdout


@pytest.mark.parametrize("res", [128, 256, 512])
def test_config_from_shapes_alone(res):
    cfg = standard_config(res, channel_width=8, num_classes=7, z_dim=12, class_embed_dim=12)
    state = {k: torch.empty(s, device="meta") for k, s in documented_layout(cfg).items()}
    inferred = biggan.config_from_state_dict(state)
    assert inferred == cfg
    with pytest.raises(ValueError, match="not a BigGAN"):
        biggan.config_from_state_dict({"main.0.weight": torch.empty(1)})


def test_bin_without_config_loads_from_its_shapes(tmp_path, g):
    """The port's pytorch_model.bin with no config.json beside it: a released block
    layout is read from the tensor shapes, and draws what the original draws."""
    from engine.generators import load
    path = tmp_path / "pytorch_model.bin"
    torch.save(g.state_dict(), path)
    _, config = load.read_model(load.resolve_entry(str(path)))
    assert {k: config[k] for k in CFG if k != "name"} == {k: v for k, v in CFG.items() if k != "name"}
    g2 = load.load_generator(str(path))
    assert (g2.info.architecture, g2.info.name) == ("biggan", "pytorch_model")
    z = g.truncated_z(2, seed=9)
    with torch.no_grad():
        assert torch.equal(g(z, onehot(4, 2), 0.7), g2(z, onehot(4, 2), 0.7))


def test_bin_without_config_and_an_unreleased_layout_is_refused(tmp_path):
    """Where the blocks upsample cannot be told from the shapes, the loader says which
    file is missing; with that file beside it the same .bin loads."""
    from engine.generators import load
    cfg = {**CFG, "output_dim": 32, "layers": [[False, 16, 16], [True, 16, 8], [True, 8, 4], [True, 4, 1]],
           "attention_layer_position": 2}
    path = tmp_path / "pytorch_model.bin"
    torch.save(BigGAN(cfg, seed=1).state_dict(), path)
    with pytest.raises(load.ModelLoadError, match=r"pytorch_model.bin: config.json is missing.*not a released"):
        load.load_generator(str(path))
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    g = load.load_generator(str(path))
    assert g.info.resolution == 32
