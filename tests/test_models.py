"""The model registry, safe loading and the built-in DCGAN."""
import json

import numpy as np
import pytest
import torch

from conftest import run_vj
from engine.generators.dcgan import DCGAN
from engine.generators.load import ModelLoadError, load_generator
from engine.generators.registry import Registry


def test_default_model_is_registered_and_loads():
    reg = Registry()
    entry = reg.resolve(None)
    assert entry.name == reg.default and entry.file.exists()
    assert entry.notice and entry.notice.exists() and "non-commercial" in entry.notice.read_text()
    g = load_generator()
    assert (g.info.architecture, g.info.resolution, g.info.z_dim) == ("dcgan", 64, 100)
    z = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 100)).astype(np.float32))
    with torch.no_grad():
        img = g(z)
    assert img.shape == (2, 3, 64, 64) and img.min() >= -1 and img.max() <= 1
    assert img.std() > 0.2  # a picture, not a flat field


def test_batchnorm_folding_is_exact():
    g = load_generator()
    z = torch.randn(4, 100)
    with torch.no_grad():
        a = g(z)
        b = g.fold_batchnorm()(z)
    assert (a - b).abs().max() < 1e-4


def test_dcgan_truncates_towards_the_origin():
    """No mapping network: the style is z, truncated by the one truncation towards the
    mean of z (the origin); psi may be one per sample."""
    g = DCGAN(z_dim=8, ngf=8, resolution=8)
    z = torch.randn(3, 8)
    torch.testing.assert_close(g.mapping(z, psi=0.5), 0.5 * z[:, None])
    torch.testing.assert_close(g.mapping(z, psi=[1.0, 0.5, 0.0]), (torch.tensor([1.0, 0.5, 0.0])[:, None] * z)[:, None])
    assert g.mapping(z).data_ptr() != z.data_ptr()  # a new tensor, not a view of z


def test_torch_checkpoint_and_safetensors_give_identical_images(tmp_path):
    g = DCGAN(z_dim=16, ngf=8, resolution=32)
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    ckpt = tmp_path / "g.pt"
    torch.save({"netG_state_dict": g.state_dict()}, ckpt)
    from safetensors.torch import save_file
    st = tmp_path / "g.safetensors"
    save_file({k: v.contiguous() for k, v in g.state_dict().items()}, str(st))
    (tmp_path / "g.json").write_text(json.dumps({"architecture": "dcgan", "z_dim": 16, "ngf": 8, "resolution": 32}))
    z = torch.randn(2, 16)
    with torch.no_grad():
        ref = g(z)
        a = load_generator(str(ckpt))(z)
        b = load_generator(str(st))(z)
    assert torch.equal(a, ref) and torch.equal(b, ref)


def test_pickled_code_in_a_checkpoint_is_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    bad = tmp_path / "evil.pt"
    torch.save({"netG_state_dict": Evil()}, bad, pickle_module=pickle)
    with pytest.raises(ModelLoadError, match="evil.pt"):
        load_generator(str(bad))
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("content", [b"", b"\x00" * 100, b"garbage" * 1000])
def test_corrupt_files_give_clear_errors(tmp_path, content):
    f = tmp_path / "m.safetensors"
    f.write_bytes(content)
    with pytest.raises(ModelLoadError, match="m.safetensors: cannot read model file"):
        load_generator(str(f))


def test_unknown_model_name():
    with pytest.raises(ModelLoadError, match="no model named"):
        load_generator("no-such-model")


def test_swapping_the_default_is_one_line(tmp_path):
    src = Registry().path.read_text()
    (tmp_path / "dcgan_digiface64.safetensors").symlink_to(Registry().resolve(None).file)
    (tmp_path / "alt.safetensors").symlink_to(Registry().resolve(None).file)
    toml = src.replace('default = "digiface64"', 'default = "alt"') + \
        '\n[models.alt]\nfile = "alt.safetensors"\narchitecture = "dcgan"\n'
    (tmp_path / "models.toml").write_text(toml)
    assert Registry(tmp_path / "models.toml").resolve(None).name == "alt"


def test_vj_models_lists_and_describes():
    out = run_vj("models").stdout
    assert "* digiface64" in out and "non-commercial" in out
    info = run_vj("models", "info", "digiface64").stdout
    assert "dcgan" in info and "64x64" in info and "3,576,704" in info
    bad = run_vj("models", "info", "nope", check=False)
    assert bad.returncode == 1 and "no model named" in bad.stderr
