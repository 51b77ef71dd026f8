"""Model files: official pickles read without running them, refusal of anything else,
rosinality and safetensors round trips, `vj models convert|info`, the runner and
`vj bench --generator-only`."""
import argparse
import io
import json
import os
import pickle
import subprocess

import numpy as np
import pytest
import torch

from conftest import run_vj
from official_pickle import fixtures_dir, official_pickle_bytes, write_official_pickle

from engine.generators import pickles, rosinality, tools
from engine.generators.config import normalize_config
from engine.generators.load import ModelLoadError, builder, load_generator, read_model
from engine.generators.registry import ModelEntry
from engine.generators.stylegan2 import StyleGAN2

FIX = fixtures_dir()


def small_sg2(seed=0, architecture="skip", c_dim=0, conv_clamp=256):
    """A random 16x16 StyleGAN2 state dict, every term perturbed, and its flat kwargs."""
    torch.manual_seed(seed)
    kwargs = dict(z_dim=16, w_dim=16, c_dim=c_dim, img_resolution=16, img_channels=3,
                  mapping_kwargs={"num_layers": 2}, channel_base=128, channel_max=16, num_fp16_res=2,
                  conv_clamp=conv_clamp, architecture=architecture)
    state = StyleGAN2(**kwargs).state_dict()
    for k, v in state.items():
        if k.endswith(("bias", "noise_strength", "w_avg")):
            state[k] = v + 0.3 * torch.randn_like(v)
    return state, kwargs


def images(g, n=2, seed=1, c=None):
    z = torch.from_numpy(np.random.default_rng(seed).standard_normal((n, g.info.z_dim)).astype(np.float32))
    with torch.no_grad():
        return g.synthesis(g.mapping(z, c, psi=0.7), noise="const")


def reference(state, kwargs):
    from engine.generators.stylegan2 import from_state_dict
    cfg = dict(kwargs)
    cfg["synthesis_architecture"] = cfg.pop("architecture")
    return from_state_dict(state, cfg)


# ---------------------------------------------------------------- official pickles
@pytest.mark.parametrize("layout", ["sg3", "ada"])
def test_official_pickle_loads_without_running_its_source(tmp_path, layout):
    marker = tmp_path / "source-ran"
    src = f"import os\nos.system('touch {marker}')\nopen({str(marker)!r}, 'w').close()\n"
    state, kwargs = small_sg2(architecture="resnet", c_dim=3)
    pkl = write_official_pickle(tmp_path / "net.pkl", state, kwargs, layout=layout, module_src=src,
                                positional=(layout == "ada"))
    assert src.encode() in pkl.read_bytes()  # the source really is in the file
    g = load_generator(str(pkl))
    assert not marker.exists()
    assert (g.info.architecture, g.info.resolution, g.info.c_dim) == ("stylegan2", 16, 3)
    assert g.info.extra["synthesis_architecture"] == "resnet" and g.info.extra["conv_clamp"] == 256
    c = torch.eye(3)[[0, 2]]
    assert torch.equal(images(g, c=c), images(reference(state, kwargs), c=c))


def test_pickle_reads_back_the_trained_settings_not_the_defaults(tmp_path):
    """ada-pytorch kwargs that leave num_fp16_res/conv_clamp out: the per-layer
    attributes in the records decide."""
    state, kwargs = small_sg2(conv_clamp=64)
    pkl = write_official_pickle(tmp_path / "net.pkl", state, kwargs, layout="ada")
    _, config = read_model(ModelEntry(name="net", file=pkl))
    assert config["conv_clamp"] == 64 and config["num_fp16_res"] == 2
    assert "synthesis_kwargs" not in config and config["channel_base"] == 128


@pytest.mark.skipif(FIX is None, reason="StyleGAN fixtures not found (shared/ beside the repo, or VJ_SHARED)")
@pytest.mark.parametrize("name", ["sg2_64_skip", "sg2_32_resnet_cond", "sg3t_64", "sg3r_64"])
def test_pickle_gives_the_official_state_dict_and_config(tmp_path, name):
    """Any official G_ema, StyleGAN3 included: the same tensors and flat config as the
    fixture's safetensors + JSON."""
    from safetensors.torch import load_file
    init = json.loads((FIX / f"{name}.json").read_text())
    state = load_file(str(FIX / f"{name}.safetensors"))
    for layout in ("sg3", "ada") if name.startswith("sg2") else ("sg3",):
        pkl = write_official_pickle(tmp_path / f"{name}.pkl", state, init["init_kwargs"], layout=layout)
        got_state, got = read_model(ModelEntry(name=name, file=pkl))
        _, want = read_model(ModelEntry(name=name, file=FIX / f"{name}.safetensors"))
        assert got_state.keys() == state.keys() and all(torch.equal(got_state[k], state[k]) for k in state)
        got.pop("synthesis_architecture", None)
        want.pop("synthesis_architecture", None)
        assert got == want and got["architecture"] == init["architecture"]


def test_stylegan3_and_biggan_builders_are_registered():
    for arch in ("stylegan3-t", "stylegan3-r", "biggan"):
        try:
            assert callable(builder(arch))
        except ModelLoadError as e:
            assert "not supported yet" in str(e)


# ---------------------------------------------------------------- refusal
class _Reduce:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _malicious(kind: str, marker) -> bytes:
    cmd = f"touch {marker}"
    if kind == "os.system":
        return pickle.dumps({"G_ema": _Reduce(os.system, cmd)})
    if kind == "builtins.eval":
        return pickle.dumps(_Reduce(eval, f"__import__('os').system({cmd!r})"))
    if kind == "subprocess":
        return pickle.dumps([_Reduce(subprocess.call, ["touch", str(marker)])])
    if kind == "unknown module":
        return b"\x80\x02cvj_evil_payload\nrun\nq\x00)\x81q\x01."
    if kind == "nested storage":  # a storage blob whose inner pickle runs a command
        from torch.storage import _load_from_bytes
        return pickle.dumps(_Reduce(_load_from_bytes, pickle.dumps(_Reduce(os.system, cmd))))
    if kind == "inside a persistence record":
        state, kwargs = small_sg2()
        ok = official_pickle_bytes(state, kwargs)
        evil = pickle.dumps(_Reduce(os.system, cmd), protocol=4)[2:-1]  # the op codes, no PROTO/STOP
        assert ok.endswith(b".")
        return ok[:-1] + b"0" + evil + b"."  # POP the snapshot, then the payload
    raise ValueError(kind)


REFUSED = {"os.system": os.system.__module__ + ".system", "builtins.eval": "builtins.eval",
           "subprocess": "subprocess.call", "unknown module": "vj_evil_payload.run",
           "nested storage": "system", "inside a persistence record": os.system.__module__ + ".system"}


@pytest.mark.parametrize("kind", list(REFUSED))
def test_pickles_that_would_run_code_are_refused(tmp_path, kind):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(_malicious(kind, marker))
    with pytest.raises(ModelLoadError) as err:
        load_generator(str(bad))
    assert "evil.pkl" in str(err.value) and REFUSED[kind] in str(err.value)
    assert not marker.exists()


def test_refusal_through_the_cli_exits_non_zero(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(_malicious("os.system", marker))
    proc = run_vj("models", "info", bad, check=False)
    assert proc.returncode == 1 and "refused" in proc.stderr and f"{os.system.__module__}.system" in proc.stderr
    with pytest.raises(ModelLoadError, match="refused"):
        tools.convert(str(bad), str(tmp_path / "x.safetensors"))
    assert not marker.exists() and not (tmp_path / "x.safetensors").exists()


def test_the_allow_list():
    u = pickles.SafeUnpickler(io.BytesIO(b""))
    assert u.find_class("numpy.core.multiarray", "scalar") is u.find_class("numpy._core.multiarray", "scalar")
    assert u.find_class("torch", "float16") is torch.float16
    for mod, name in (("torch", "load"), ("numpy", "load"), ("torch._utils", "_rebuild_device_tensor_from_numpy"),
                      ("builtins", "getattr"), ("torch.serialization", "load"), ("pickle", "loads")):
        with pytest.raises(pickles.RefusedPickle, match=f"{mod}.{name}"):
            u.find_class(mod, name)


def test_tensors_and_arrays_come_back_exactly():
    base = torch.randn(6)
    data = {"views": (base[:2], base[2:]), "half": torch.randn(3, 2).half().t(), "long": torch.arange(5),
            "param": torch.nn.Parameter(torch.randn(2, 2), requires_grad=False), "empty": torch.zeros(0),
            "np": (np.float64(0.25), np.arange(3, dtype=np.int32), np.sqrt(np.float32(2)))}
    for proto in (2, 4):
        got = pickles.safe_load(io.BytesIO(pickle.dumps(data, protocol=proto)))
        assert torch.equal(got["views"][0], base[:2]) and torch.equal(got["views"][1], base[2:])
        assert torch.equal(got["half"], data["half"]) and got["half"].stride() == data["half"].stride()
        assert torch.equal(got["long"], data["long"]) and torch.equal(got["param"], data["param"])
        assert got["empty"].shape == (0,)
        assert got["np"][0] == 0.25 and got["np"][1].tolist() == [0, 1, 2] and got["np"][2] == np.sqrt(np.float32(2))


def test_tensorflow_pickles_are_refused_clearly(tmp_path):
    f = tmp_path / "tf.pkl"
    f.write_bytes(b"\x80\x02(cdnnlib.tflib.network\nNetwork\nq\x00)\x81q\x01}q\x02b"
                  b"h\x00)\x81q\x03}q\x04bh\x00)\x81q\x05}q\x06btq\x07.")
    with pytest.raises(ModelLoadError, match="TensorFlow.*not supported yet"):
        load_generator(str(f))


# ---------------------------------------------------------------- round trips
def test_rosinality_and_safetensors_round_trips_draw_identical_images(tmp_path):
    state, kwargs = small_sg2(conv_clamp=None)
    pkl = write_official_pickle(tmp_path / "net.pkl", state, kwargs)
    want = images(load_generator(str(pkl)))
    g_ema, latent_avg = rosinality.from_official(state)
    torch.save({"g_ema": g_ema, "latent_avg": latent_avg}, tmp_path / "ros.pt")
    ros = load_generator(str(tmp_path / "ros.pt"))
    assert ros.info.extra["synthesis_architecture"] == "skip"
    assert torch.equal(images(ros), want)
    run_vj("models", "convert", pkl, tmp_path / "net.safetensors")
    tools.convert(str(tmp_path / "ros.pt"), str(tmp_path / "ros.safetensors"))
    for f in ("net.safetensors", "ros.safetensors"):
        assert torch.equal(images(load_generator(str(tmp_path / f))), want)
    info = tools.format_info(tools.describe(str(tmp_path / "net.safetensors")))
    for want_line in ("stylegan2 (skip)", "16x16", "num_ws         6", "z_dim          16", "classes        0"):
        assert want_line in info


def test_convert_never_replaces_a_file_unasked_and_writes_it_whole(tmp_path):
    """`vj models convert` onto a model the user has (or onto its own input) keeps it; with
    --overwrite the new file takes the name in one step, readable as the umask says."""
    state, kwargs = small_sg2(conv_clamp=None)
    pkl = write_official_pickle(tmp_path / "net.pkl", state, kwargs)
    out = tmp_path / "mine.safetensors"
    out.write_bytes(b"the user's own model")
    p = run_vj("models", "convert", pkl, out, check=False)
    assert p.returncode == 1 and "exists; pass --overwrite" in p.stderr and "Traceback" not in p.stderr
    assert out.read_bytes() == b"the user's own model"
    run_vj("models", "convert", pkl, tmp_path / "net.safetensors")
    before = (tmp_path / "net.safetensors").read_bytes()
    p = run_vj("models", "convert", tmp_path / "net.safetensors", tmp_path / "net.safetensors", check=False)
    assert p.returncode == 1 and (tmp_path / "net.safetensors").read_bytes() == before
    old = os.umask(0o022)
    try:
        tools.convert(str(pkl), str(out), overwrite=True)
    finally:
        os.umask(old)
    assert out.read_bytes() == before and (out.stat().st_mode & 0o777) == 0o644
    assert sorted(f.name for f in tmp_path.iterdir()) == ["mine.safetensors", "net.pkl", "net.safetensors"]
    # a folder of that name, or no .safetensors name: said, nothing written
    (tmp_path / "d.safetensors").mkdir()
    for bad in ("d.safetensors", "x.pt"):
        with pytest.raises(ModelLoadError):
            tools.convert(str(pkl), str(tmp_path / bad), overwrite=True)


def test_rosinality_training_checkpoint_without_latent_avg(tmp_path):
    state, _ = small_sg2(conv_clamp=None)
    g_ema, _ = rosinality.from_official(state)
    torch.save({"g": g_ema, "g_ema": g_ema, "d": {}, "args": argparse.Namespace(size=16, n_mlp=2)},
               tmp_path / "train.pt")
    g = load_generator(str(tmp_path / "train.pt"))
    w = g.mapping_network.w_avg
    assert torch.isfinite(w).all() and w.abs().sum() > 0
    assert images(g).shape == (2, 3, 16, 16)


def _same(a, b) -> bool:
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.dtype == b.dtype and a.stride() == b.stride() and torch.equal(a, b)
    if isinstance(a, dict):
        return type(a) is type(b) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a) \
            and getattr(a, "_metadata", None) == getattr(b, "_metadata", None)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, argparse.Namespace):
        return vars(a) == vars(b)
    return a == b


@pytest.mark.parametrize("form", ["zip", "legacy", "deflated zip"])
def test_checkpoints_read_as_torch_load_reads_them(tmp_path, form):
    """Checkpoints are read by the bounded allow-list reader, not torch.load: it must
    give back what torch.load would, in every form torch writes (and a zip re-packed
    with compression)."""
    import zipfile
    base = torch.randn(6)
    p = torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.Adam([p])
    p.grad = torch.ones(3)
    opt.step()  # optimizer state: per-parameter dicts of tensors under int keys
    ckpt = {"g_ema": torch.nn.Linear(3, 2).state_dict(), "views": (base[:2], base[3:]), "t": base.view(2, 3).t(),
            "half": torch.randn(2, 2).half(), "bf16": torch.randn(3).bfloat16(), "mask": torch.rand(4) > 0.5,
            "long": torch.arange(4), "empty": torch.zeros(0), "param": torch.nn.Parameter(torch.ones(2)),
            "opt": opt.state_dict(), "args": argparse.Namespace(size=16, n_mlp=2, name="x"), "n": 3, "f": 0.5}
    path = tmp_path / "ck.pt"
    torch.save(ckpt, path, _use_new_zipfile_serialization=(form != "legacy"))
    if form == "deflated zip":
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp_path / "re.pt", "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info))
        path = tmp_path / "re.pt"
    with torch.serialization.safe_globals([argparse.Namespace]):
        want = torch.load(path, weights_only=True)
    got = pickles.load_checkpoint(path)
    assert _same(want, got) and got["g_ema"]._metadata
    assert got["views"][0].untyped_storage().data_ptr() == got["views"][1].untyped_storage().data_ptr()


def test_normalize_config_flattens_every_layout():
    ada = {"architecture": "stylegan2", "init_kwargs": {
        "z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": 256, "img_channels": 3,
        "mapping_kwargs": {"num_layers": 2},
        "synthesis_kwargs": {"channel_base": 16384, "channel_max": 512, "architecture": "resnet"}}}
    flat = normalize_config(ada)
    assert flat == {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": 256, "img_channels": 3,
                    "mapping_kwargs": {"num_layers": 2}, "channel_base": 16384, "channel_max": 512,
                    "num_fp16_res": 0, "conv_clamp": None, "synthesis_architecture": "resnet",
                    "architecture": "stylegan2"}
    assert normalize_config(flat) == flat


def test_builders_read_any_config_layout_through_the_one_normaliser():
    """``normalize_config`` is the one normaliser: a fixture-style config goes straight
    into a builder as well as through the loader."""
    from engine.generators import biggan, stylegan2
    state, kwargs = small_sg2(architecture="resnet")
    g = stylegan2.from_state_dict(state, {"architecture": "stylegan2", "init_kwargs": kwargs})
    assert g.info.extra["synthesis_architecture"] == "resnet"
    assert torch.equal(images(g), images(reference(state, kwargs)))
    with pytest.raises(ValueError, match="unknown mapping_kwargs"):
        stylegan2.from_state_dict(state, {**kwargs, "mapping_kwargs": {"num_layerz": 2}})
    cfg = biggan.standard_config(128, channel_width=4, num_classes=3, z_dim=8, class_embed_dim=8)
    assert biggan.BigGAN({"architecture": "biggan", "init_kwargs": cfg}, seed=None).config == \
        biggan.BigGAN(cfg, seed=None).config


# ---------------------------------------------------------------- runner and bench
def test_runner_passes_truncation_noise_and_classes(tmp_path):
    from engine.render.gpu import GeneratorRunner
    state, kwargs = small_sg2(c_dim=3)
    g = reference(state, kwargs)
    runner = GeneratorRunner(g, device="cpu")
    assert runner.precision == "fp32" and not runner.use_graph
    z = np.random.default_rng(0).standard_normal(16).astype(np.float32)
    ws = runner.styles(z=z, psi=0.5, c=[0, 1, 0])
    assert ws.shape == (1, g.info.num_ws, 16)
    with torch.no_grad():
        assert torch.equal(ws, g.mapping(torch.from_numpy(z)[None], torch.tensor([[0., 1, 0]]), psi=0.5))
        free = g.mapping(torch.from_numpy(z)[None], torch.tensor([[1., 0, 0]]))
    assert torch.allclose(runner.styles(z=z), free)  # class 0 when no c is given
    assert torch.allclose(runner.styles(ws=free[0], psi=0.5, cutoff=2), g.truncate(free, 0.5, 2))
    batch = runner.styles(z=np.stack([z, z, z]), c=[0, 0, 1])
    assert batch.shape == (3, g.info.num_ws, 16)
    img = runner.image(ws, noise="const")
    assert img.shape == (16, 16, 3) and img.dtype == np.uint8
    assert np.array_equal(runner.image(ws, noise="none"), runner.image(ws, noise_strength={"b4.conv1": 0.0,
                                                                                           "b8.conv0": 0.0,
                                                                                           "b8.conv1": 0.0,
                                                                                           "b16.conv0": 0.0,
                                                                                           "b16.conv1": 0.0}))
    assert runner.images(batch, noise=0.5).shape == (3, 3, 16, 16)


def test_bench_generator_only_on_cpu(tmp_path, env_no_display):
    from safetensors.torch import save_file
    state, kwargs = small_sg2()
    cfg = normalize_config({"architecture": "stylegan2", "init_kwargs": kwargs})
    save_file(state, str(tmp_path / "tiny.safetensors"), metadata={"engine.config": json.dumps(cfg)})
    out = tmp_path / "bench.json"
    proc = run_vj("bench", "--generator-only", "--model", tmp_path / "tiny.safetensors", "--frames", "3",
                  "--json", out, env=env_no_display)
    result = json.loads(out.read_text())
    assert result["device"].startswith("cpu") and result["device"] in proc.stdout
    assert [(r["mode"], r["batch"]) for r in result["generator"]] == [("fp32 eager", 1), ("fp32 eager", 4)]
    assert all(r["fps"] > 0 and r["ms_per_frame"] > 0 for r in result["generator"])
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("  fp")]
    assert "ms/frame" in proc.stdout and [r[:3] for r in rows] == [["fp32", "eager", "1"], ["fp32", "eager", "4"]]
