"""``vj models get``: a tiny StyleGAN2 in NVIDIA's pickle layout served by a real HTTP server on
loopback (Range requests, a connection cut half way, a server that ignores Range), through the
real download, checksum, safe conversion and registry."""
from __future__ import annotations

import hashlib
import io
import os
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import free_port, run_vj
from official_pickle import official_pickle_bytes

from engine import paths
from engine.commands import model_get
from engine.generators.load import load_generator
from engine.generators.registry import Registry
from engine.generators.stylegan2 import StyleGAN2

USER_REGISTRY = """# my models: this comment and entry must survive
default = "mine"

[models.mine]
file = "mine.safetensors"
architecture = "dcgan"
"""


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    torch.manual_seed(3)
    kwargs = dict(z_dim=16, w_dim=16, c_dim=0, img_resolution=16, img_channels=3, mapping_kwargs={"num_layers": 2},
                  channel_base=128, channel_max=16, num_fp16_res=0, conv_clamp=None, architecture="skip")
    state = StyleGAN2(**kwargs).state_dict()
    for k, v in state.items():
        if k.endswith(("bias", "w_avg")):
            state[k] = v + 0.3 * torch.randn_like(v)
    return official_pickle_bytes(state, kwargs, layout="ada")


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.body`` at any path; ``server.mode``: "ok" (honours Range), "cut" (stops
    after ``server.cut_at`` bytes of the file and drops the connection) or "ignore_range"."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range")
        srv.log.append((self.path, rng))
        body, start = srv.body, 0
        if rng and srv.mode != "ignore_range":
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if srv.mode == "cut":
            self.wfile.write(body[start:srv.cut_at])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture
def server(model_bytes):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.body, srv.mode, srv.cut_at, srv.log = model_bytes, "ok", 0, []
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A VJ_HOME of its own whose registry already holds the user's entry."""
    models = tmp_path / "home" / "models"
    models.mkdir(parents=True)
    (models / "models.toml").write_text(USER_REGISTRY)
    monkeypatch.setattr(paths, "MODELS", models)
    return models


def catalogue(tmp_path, server, body, sha=None, commercial=False) -> Path:
    port = server.server_address[1]
    path = tmp_path / "catalogue.toml"
    path.write_text(f"""
[models.tiny-sg2]
architecture = "stylegan2"
resolution = 16
url = "http://127.0.0.1:{port}/files/tiny-sg2.pkl"
size = {len(body)}
sha256 = "{sha or hashlib.sha256(body).hexdigest()}"
licence = "NVIDIA Source Code License"
licence_url = "https://nvlabs.github.io/stylegan2-ada-pytorch/license.html"
commercial = {str(commercial).lower()}
description = "a 16x16 StyleGAN2 for tests"
""")
    return path


def images(g):
    z = torch.from_numpy(np.random.default_rng(1).standard_normal((2, g.info.z_dim)).astype(np.float32))
    with torch.no_grad():
        return g.synthesis(g.mapping(z, None, psi=0.7), noise="const")


def check_installed(models: Path, model_bytes: bytes, tmp_path: Path) -> None:
    out = models / "tiny-sg2.safetensors"
    src = tmp_path / "reference.pkl"
    src.write_bytes(model_bytes)
    assert torch.equal(images(load_generator(str(out))), images(load_generator(str(src))))
    reg = Registry(models / "models.toml")
    assert reg.default == "mine" and "mine" in reg.entries  # the user's registry kept
    assert "must survive" in (models / "models.toml").read_text()
    e = reg.resolve("tiny-sg2")
    assert e.file == out.resolve() and e.architecture == "stylegan2" and "non-commercial" in e.licence
    assert "sha256" in e.notice.read_text() and not e.options
    leftovers = [p.name for p in models.iterdir() if p.name.endswith((".part", ".tmp", ".pkl", ".tmp.safetensors"))]
    assert leftovers == []


def test_get_through_the_cli_downloads_verifies_converts_and_registers(tmp_path, server, model_bytes, monkeypatch):
    cat = catalogue(tmp_path, server, model_bytes)
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "models.toml").write_text(USER_REGISTRY)
    env = {**os.environ, "VJ_HOME": str(home)}
    p = run_vj("models", "get", "tiny-sg2", "--catalogue", cat, "--accept-licence", env=env)
    assert "registered as tiny-sg2" in p.stdout
    assert "100.0%" in p.stderr and "\r" not in p.stderr  # not a TTY: plain lines
    assert "non-commercial".lower() in p.stderr.lower()
    assert server.log == [("/files/tiny-sg2.pkl", None)]
    check_installed(home / "models", model_bytes, tmp_path)
    # again (in this process, the same home): nothing fetched, nothing changed
    monkeypatch.setattr(paths, "MODELS", home / "models")
    out = io.StringIO()
    assert model_get.get("tiny-sg2", accept_licence=True, catalogue=str(cat), out=out, err=io.StringIO()) == 0
    assert "already installed" in out.getvalue() and len(server.log) == 1


def test_a_non_commercial_licence_is_refused_without_accepting_it(tmp_path, server, model_bytes):
    cat = catalogue(tmp_path, server, model_bytes)
    home = tmp_path / "home"
    env = {**os.environ, "VJ_HOME": str(home), "VJ_CATALOGUE": str(cat)}
    p = run_vj("models", "get", "tiny-sg2", env=env, check=False)
    assert p.returncode == 2
    assert "NVIDIA Source Code License" in p.stderr and "--accept-licence" in p.stderr
    assert "nvlabs.github.io" in p.stderr and "Nothing was downloaded" in p.stderr
    assert server.log == [] and not home.exists()
    p = run_vj("models", "get", "--list", env=env)
    assert "tiny-sg2" in p.stdout and "non-commercial" in p.stdout


def test_an_interrupted_download_resumes_with_a_range_request(tmp_path, server, model_bytes, home):
    cat = catalogue(tmp_path, server, model_bytes)
    server.mode, server.cut_at = "cut", len(model_bytes) // 2
    with pytest.raises(model_get.GetError) as e:
        model_get.get("tiny-sg2", accept_licence=True, catalogue=str(cat), out=io.StringIO(), err=io.StringIO())
    msg = str(e.value)
    assert "http://127.0.0.1" in msg and "resume" in msg and "\n" not in msg
    part = home / "tiny-sg2.part"
    assert part.read_bytes() == model_bytes[:len(model_bytes) // 2]
    assert not (home / "tiny-sg2.safetensors").exists() and "tiny-sg2" not in Registry(home / "models.toml").entries

    server.mode = "ok"
    err = io.StringIO()
    assert model_get.get("tiny-sg2", accept_licence=True, catalogue=str(cat), out=io.StringIO(), err=err) == 0
    assert server.log[-1] == ("/files/tiny-sg2.pkl", f"bytes={len(model_bytes) // 2}-")
    assert f"resumed at byte {len(model_bytes) // 2:,}" in err.getvalue()
    check_installed(home, model_bytes, tmp_path)


def test_a_server_that_ignores_range_restarts_cleanly(tmp_path, server, model_bytes, home):
    cat = catalogue(tmp_path, server, model_bytes)
    (home / "tiny-sg2.part").write_bytes(b"\xff" * 1000)  # not even the file's first bytes
    server.mode = "ignore_range"
    err = io.StringIO()
    assert model_get.get("tiny-sg2", accept_licence=True, catalogue=str(cat), out=io.StringIO(), err=err) == 0
    assert server.log == [("/files/tiny-sg2.pkl", "bytes=1000-")]
    assert "fetched again from the start" in err.getvalue()
    check_installed(home, model_bytes, tmp_path)


def test_a_checksum_mismatch_keeps_nothing(tmp_path, server, model_bytes, home):
    wrong = hashlib.sha256(b"another file").hexdigest()
    cat = catalogue(tmp_path, server, model_bytes, sha=wrong)
    before = (home / "models.toml").read_text()
    with pytest.raises(model_get.GetError) as e:
        model_get.get("tiny-sg2", accept_licence=True, catalogue=str(cat), out=io.StringIO(), err=io.StringIO())
    msg = str(e.value)
    assert wrong in msg and hashlib.sha256(model_bytes).hexdigest() in msg and "deleted" in msg
    assert sorted(p.name for p in home.iterdir()) == ["models.toml"]
    assert (home / "models.toml").read_text() == before


def test_no_server_is_one_line_naming_the_url(tmp_path, server, model_bytes, home):
    cat = catalogue(tmp_path, server, model_bytes)
    dead = f"http://127.0.0.1:{free_port()}/tiny-sg2.pkl"
    with pytest.raises(model_get.GetError) as e:
        model_get.get("tiny-sg2", accept_licence=True, url=dead, catalogue=str(cat), out=io.StringIO(),
                      err=io.StringIO())
    assert dead in str(e.value) and "\n" not in str(e.value) and "--url" in str(e.value)


def test_what_the_user_made_is_not_replaced(tmp_path, server, model_bytes, home):
    cat = catalogue(tmp_path, server, model_bytes)
    (home / "tiny-sg2.safetensors").write_bytes(b"mine")
    with pytest.raises(model_get.GetError) as e:
        model_get.get("tiny-sg2", accept_licence=True, catalogue=str(cat), out=io.StringIO(), err=io.StringIO())
    assert e.value.code == 2 and "left as it is" in str(e.value) and server.log == []
    assert (home / "tiny-sg2.safetensors").read_bytes() == b"mine"


def test_the_shipped_catalogue_is_well_formed():
    cat = model_get.load_catalogue(str(model_get.CATALOGUE))
    raw = tomllib.loads(model_get.CATALOGUE.read_text())
    assert set(cat) == set(raw.get("models", {}))
    for e in cat.values():
        assert e.url.startswith("https://") and e.licence_url.startswith("https://")
        if "NVIDIA" in e.licence:
            assert not e.commercial


def test_a_bad_catalogue_entry_is_named(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[models.x]\narchitecture = "stylegan2"\nresolution = 16\nurl = "https://a/b.pkl"\nsize = 1\n'
                 'sha256 = "abc"\nlicence = "MIT"\nlicence_url = "https://x"\ncommercial = true\n')
    with pytest.raises(model_get.GetError) as e:
        model_get.load_catalogue(str(p))
    assert "[models.x]" in str(e.value) and "sha256" in str(e.value) and e.value.code == 2
