"""`vj models random`: random-weight generators in the official layouts, written as safetensors that
the ordinary loaders take as they are, marked random everywhere, and refused arguments that write
nothing. The real sizes are checked from the layout alone (torch's meta device); the files made
here are small (--channel-divisor, small resolutions) so the whole module runs in seconds."""
import json
import os

import pytest
import torch
from conftest import ROOT, run_vj
from safetensors import safe_open

from engine.cli import build_parser, main
from engine.generators import random_models as rm
from engine.generators.load import CONFIG_KEY, load_generator

# ARCH and flags -> (architecture the loader reports, resolution)
SMALL = {
    "stylegan2": (["--resolution", "32", "--channel-divisor", "8"], "stylegan2", 32),
    "stylegan3-t": (["--preset", "t", "--resolution", "16", "--channel-divisor", "8"], "stylegan3-t", 16),
    "stylegan3-r": (["--resolution", "16", "--channel-divisor", "8"], "stylegan3-r", 16),
    "biggan-deep": (["--channel-divisor", "16"], "biggan", 128),
    "dcgan": (["--resolution", "32"], "dcgan", 32),
}


def vj(*args) -> int:
    return main([str(a) for a in args])


def make(tmp_path, arch, *extra) -> tuple:
    flags, family, res = SMALL[arch]
    out = tmp_path / f"{arch}.safetensors"
    cli_arch = "stylegan3" if arch == "stylegan3-t" else arch  # both spellings get used
    assert vj("models", "random", cli_arch, *flags, "--out", out, *extra) == 0
    return out, family, res


@pytest.mark.parametrize("arch", list(SMALL))
def test_each_architecture_writes_a_file_the_loaders_take(tmp_path, capsys, arch):
    out, family, res = make(tmp_path, arch)
    said = capsys.readouterr().out
    assert f"wrote {out}" in said and "RANDOM" in said
    assert sorted(os.listdir(tmp_path)) == [out.name]                     # no temporary file left
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    config = json.loads(meta[CONFIG_KEY])
    assert config["random_weights"] is True and config["architecture"] == family
    assert meta[rm.NOTE_KEY] == rm.NOTE and "not a trained model" in meta[rm.NOTE_KEY]
    assert shapes == rm.layout(rm.plan(arch, res, None, config["random"]["channel_divisor"]))

    g = load_generator(str(out))
    assert g.info.architecture == family and g.info.resolution == res
    assert "w_avg_estimated" not in g.info.extra
    z = torch.randn(2, g.info.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        img = g.synthesis(g.mapping(z, None, psi=0.7))
    assert tuple(img.shape) == (2, 3, res, res) and img.dtype == torch.float32
    assert torch.isfinite(img).all()
    assert img[0].std() > 1e-3 and (img[0] - img[1]).abs().mean() > 1e-3  # not flat, and z matters
    if family.startswith("stylegan"):
        w_avg = g.mapping_network.w_avg
        assert w_avg.abs().sum() > 0 and torch.isfinite(w_avg).all()      # made at creation, not estimated

    assert vj("models", "info", out) == 0
    info = capsys.readouterr().out
    assert f"architecture   {family}" in info and f"{res}x{res}" in info
    assert "weights        RANDOM, not a trained model" in info


def test_the_same_seed_gives_the_same_weights(tmp_path):
    a, b, c = (tmp_path / f"{n}.safetensors" for n in "abc")
    for out, seed in ((a, 5), (b, 5), (c, 6)):
        assert vj("models", "random", "dcgan", "--resolution", "16", "--seed", seed, "--out", out) == 0
    ta, tb, tc = (load_generator(str(p)).state_dict() for p in (a, b, c))
    assert all(torch.equal(ta[k], tb[k]) for k in ta)
    assert not all(torch.equal(ta[k], tc[k]) for k in ta)


def test_a_random_file_runs_through_the_command_line(tmp_path):
    """`vj models sample` (a fresh process, load_generator by path) on a random StyleGAN2."""
    import numpy as np
    out, _, res = make(tmp_path, "stylegan2")
    np.save(tmp_path / "z.npy", np.random.default_rng(0).standard_normal((1, 512)).astype(np.float32))
    run_vj("models", "sample", out, "--z", tmp_path / "z.npy", "--psi", "0.5", "--out", tmp_path / "img.npy")
    img = np.load(tmp_path / "img.npy")
    assert img.shape == (1, 3, res, res) and np.isfinite(img).all() and img.std() > 1e-3


def test_a_random_file_plays_live_and_says_it_is_random(tmp_path):
    """`vj run --model FILE`: the show runs on it, and the log names it as random weights."""
    out, _, _ = make(tmp_path, "stylegan3-t")
    proc = run_vj("run", "--headless", "--frames", "5", "--size", "64x64", "--no-osc", "--no-midi",
                  "--model", out)
    assert "(random weights)" in proc.stderr and "frame 5" in proc.stderr


# ---------------------------------------------------------------- the real sizes, nothing allocated
def test_stylegan2_config_f_has_the_official_parameter_count():
    # stylegan2-ada-pytorch's summary of the FFHQ 1024 G (mapping included): 30,370,060
    assert rm.parameter_count(rm.plan("stylegan2", 1024)) == 30_370_060
    for res, millions in ((256, 30.0), (512, 30.3)):                      # reference/stylegan.md §4
        assert abs(rm.parameter_count(rm.plan("stylegan2", res)) / 1e6 - millions) < 0.05
    shapes = rm.layout(rm.plan("stylegan2", 1024))
    conv = [v for k, v in shapes.items() if k.startswith("synthesis.b4.conv1.") and "filter" not in k
            and "noise_const" not in k]
    assert sum(torch.Size(s).numel() for s in conv) == 2_622_465          # NVlabs/stylegan2-ada-pytorch#182
    assert shapes["mapping.w_avg"] == (512,) and shapes["synthesis.b1024.torgb.weight"] == (3, 32, 1, 1)
    assert len([k for k in shapes if k.startswith("mapping.fc") and k.endswith(".weight")]) == 8


def test_stylegan3_and_biggan_have_the_official_sizes():
    t = rm.layout(rm.plan("stylegan3", 1024, "t"))
    layers = sorted({k.split(".")[1] for k in t if k.startswith("synthesis.L")}, key=lambda n: int(n[1:].split("_")[0]))
    assert layers == ["L0_36_512", "L1_36_512", "L2_52_512", "L3_52_512", "L4_84_512", "L5_148_512", "L6_148_512",
                      "L7_276_323", "L8_276_203", "L9_532_128", "L10_1044_81", "L11_1044_51", "L12_1044_32",
                      "L13_1024_32", "L14_1024_3"]
    assert t["synthesis.input.freqs"] == (512, 2)
    r = rm.layout(rm.plan("stylegan3-r", 1024))
    assert r["synthesis.L0_36_1024.weight"] == (1024, 1024, 1, 1)
    for plan, millions in ((rm.plan("stylegan3", 1024, "t"), 22.3), (rm.plan("stylegan3", 1024, "r"), 15.1),
                           (rm.plan("biggan-deep", 128), 50.4), (rm.plan("biggan-deep", 256), 55.9),
                           (rm.plan("biggan", 512), 56.2)):
        assert abs(rm.parameter_count(plan) / 1e6 - millions) < 0.05, plan.describe()


def test_dcgan_is_the_built_in_models_layout():
    with safe_open(str(ROOT / "models" / "dcgan_digiface64.safetensors"), framework="pt") as f:
        builtin = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    assert rm.layout(rm.plan("dcgan")) == builtin


# ---------------------------------------------------------------- refused at the edge, nothing written
@pytest.mark.parametrize("args, words", [
    (["models", "random", "stylegan4"], "unknown architecture"),
    (["models", "random", "stylegan2", "--preset", "t"], "stylegan2 presets are f"),
    (["models", "random", "dcgan", "--preset", "x"], "dcgan has no presets"),
    (["models", "random", "stylegan3-t", "--preset", "r"], "contradicts"),
    (["models", "random", "stylegan2", "--resolution", "100"], "power of two"),
    (["models", "random", "stylegan2", "--resolution", "2048"], "16..1024"),
    (["models", "random", "stylegan3", "--resolution", "8"], "16..1024"),
    (["models", "random", "biggan-deep", "--resolution", "64"], "128, 256, 512"),
    (["models", "random", "dcgan", "--resolution", "512"], "16..256"),
    (["models", "random", "dcgan", "--channel-divisor", "3"], "power of two"),
    (["models", "random"], "models random needs"),
])
def test_bad_arguments_exit_2_and_write_nothing(tmp_path, capsys, args, words):
    out = tmp_path / "m.safetensors"
    assert vj(*args, "--out", out) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and err.startswith("vj: ") and "\n" not in err
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("out", [None, "m.npy", "m.safetensors.tmp", ".safetensors", "m"])
def test_the_output_must_be_named_safetensors(tmp_path, capsys, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    assert vj("models", "random", "dcgan", *(["--out", out] if out else [])) == 2
    err = capsys.readouterr().err
    assert ("needs --out" if out is None else "must be a .safetensors file") in err
    assert not os.listdir(tmp_path)


def test_an_existing_file_is_kept_without_overwrite(tmp_path, capsys):
    out = tmp_path / "mine.safetensors"
    out.write_bytes(b"a model someone made")
    before = out.stat()
    assert vj("models", "random", "dcgan", "--resolution", "16", "--out", out) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"a model someone made" and out.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(os.listdir(tmp_path)) == [out.name]
    assert vj("models", "random", "dcgan", "--resolution", "16", "--out", out, "--overwrite") == 0
    assert load_generator(str(out)).info.resolution == 16
    assert sorted(os.listdir(tmp_path)) == [out.name]
    (tmp_path / "d.safetensors").mkdir()
    assert vj("models", "random", "dcgan", "--out", tmp_path / "d.safetensors", "--overwrite") == 2
    assert "is a directory" in capsys.readouterr().err


def test_a_file_that_appears_while_the_weights_are_drawn_is_kept(tmp_path):
    from engine.generators.output_file import FileTaken, place
    out, tmp = tmp_path / "m.safetensors", tmp_path / "new.tmp"
    tmp.write_bytes(b"new")
    out.write_bytes(b"old")
    with pytest.raises(FileTaken):
        place(tmp, out, overwrite=False)
    assert out.read_bytes() == b"old"
    place(tmp, out, overwrite=True)
    assert out.read_bytes() == b"new" and not tmp.exists()


def test_help_names_every_architecture(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["models", "--help"])
    text = capsys.readouterr().out
    for name in ("random", "stylegan2", "stylegan3", "stylegan3-t", "biggan-deep", "dcgan", "--preset",
                 "--resolution", "--overwrite", "RANDOM"):
        assert name in text
