"""``vj models get``: a tiny StyleGAN2 in NVIDIA's pickle layout served by a real HTTP server on
loopback (Range requests, a connection cut half way, a server that ignores Range), through the
real download, checksum, safe conversion and registry."""
from __future__ import annotations

import hashlib
import io
import os
import resource
import signal
import socket
import struct
import subprocess
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, free_port, run_vj, vj_cmd
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
    after ``server.cut_at`` bytes of the file and drops the connection), "ignore_range", "stall"
    (sends up to ``cut_at``, then holds the connection open until ``server.release`` is set),
    "trickle" (a few bytes every 50 ms), "endless" (no Content-Length, the file then garbage for
    ever), "overlong" (Content-Length right, ``server.extra`` bytes more after it), "no_length"
    (the file then ``server.extra``, no Content-Length), "wrong_range" (206, but from byte 0),
    "unasked_206" (206 from byte 100 to a request without Range), "reason" (404 whose
    reason phrase is ``server.reason``) or "slow_head" (the status line and headers a byte
    every 20 ms, never ending). ``server.redirects`` maps a path to a Location."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range")
        srv.log.append((self.path, rng))
        if self.path in srv.redirects:
            self.send_response(302)
            self.send_header("Location", srv.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if srv.mode == "slow_head":
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nX-Pad: " + b"a" * 60000
            try:
                for i in range(len(head)):
                    if srv.release.is_set():
                        break
                    self.wfile.write(head[i:i + 1])
                    self.wfile.flush()
                    time.sleep(0.02)
            except OSError:
                pass
            self.close_connection = True
            return
        if srv.mode == "reason":
            self.send_response(404, srv.reason)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body, start = srv.body, 0
        if srv.mode == "unasked_206":
            start = 100
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        elif srv.mode == "wrong_range" and rng:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes 0-{len(body) - 1}/{len(body)}")
        elif rng and srv.mode != "ignore_range":
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        if srv.mode in ("endless", "no_length"):
            self.send_header("Connection", "close")
        else:
            self.send_header("Content-Length", str(len(body) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        try:
            if srv.mode == "cut":
                self.wfile.write(body[start:srv.cut_at])
                self.wfile.flush()
                self.close_connection = True
            elif srv.mode == "stall":
                self.wfile.write(body[start:srv.cut_at])
                self.wfile.flush()
                srv.release.wait(30)
                self.close_connection = True
            elif srv.mode == "trickle":
                for i in range(start, len(body), 16):
                    if srv.release.is_set():
                        break
                    self.wfile.write(body[i:i + 16])
                    self.wfile.flush()
                    time.sleep(0.05)
                self.close_connection = True
            elif srv.mode == "endless":
                self.wfile.write(body)
                while not srv.release.is_set():
                    self.wfile.write(b"\0" * 65536)
            elif srv.mode in ("overlong", "no_length"):
                self.wfile.write(body[start:] + b"\xee" * srv.extra)
                self.close_connection = True
            else:
                self.wfile.write(body[start:])
        except OSError:  # the client hung up: what a hostile server's victim should do
            self.close_connection = True


def serve(body, host="127.0.0.1"):
    """The model file from a loopback server (its behaviour set per test: srv.mode ...)."""
    srv = ThreadingHTTPServer((host, 0), Handler)
    srv.body, srv.mode, srv.cut_at, srv.log = body, "ok", 0, []
    srv.redirects, srv.extra, srv.reason, srv.release = {}, 0, "", threading.Event()
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def server(model_bytes):
    yield from serve(model_bytes)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A VJ_HOME of its own whose registry already holds the user's entry."""
    models = tmp_path / "home" / "models"
    models.mkdir(parents=True)
    (models / "models.toml").write_text(USER_REGISTRY)
    monkeypatch.setattr(paths, "MODELS", models)
    return models


def catalogue(tmp_path, server, body, sha=None, commercial=False, size=None) -> Path:
    port = server.server_address[1]
    path = tmp_path / "catalogue.toml"
    path.write_text(f"""
[models.tiny-sg2]
architecture = "stylegan2"
resolution = 16
url = "http://127.0.0.1:{port}/files/tiny-sg2.pkl"
size = {size or len(body)}
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


# ---------------------------------------------------------------- a hostile or broken server, a careless user
def fetch(cat, **kw) -> str:
    """``get`` in this process; what it wrote on stderr."""
    err = io.StringIO()
    assert model_get.get("tiny-sg2", accept_licence=True, catalogue=str(cat), out=io.StringIO(), err=err,
                         **kw) == 0
    return err.getvalue()


def refused(cat, **kw) -> model_get.GetError:
    with pytest.raises(model_get.GetError) as e:
        model_get.get("tiny-sg2", accept_licence=True, catalogue=str(cat), out=io.StringIO(), err=io.StringIO(),
                      **kw)
    msg = str(e.value)
    assert "\n" not in msg and "\x1b" not in msg and len(msg) < 1000, msg
    return e.value


def nothing_installed(home: Path, before: str = USER_REGISTRY) -> None:
    assert not (home / "tiny-sg2.safetensors").exists()
    assert (home / "models.toml").read_text() == before
    assert not [p.name for p in home.iterdir() if ".tmp" in p.name or ".verified" in p.name]


@pytest.fixture
def other_host(model_bytes):
    """The same file from another address (127.0.0.2: a CDN the download is sent on to)."""
    yield from serve(model_bytes, "127.0.0.2")


def test_a_redirect_to_another_host_is_followed_and_the_resume_goes_with_it(tmp_path, server, other_host,
                                                                            model_bytes, home):
    cat = catalogue(tmp_path, server, model_bytes)
    half = len(model_bytes) // 2
    (home / "tiny-sg2.part").write_bytes(model_bytes[:half])
    server.redirects["/files/tiny-sg2.pkl"] = f"http://127.0.0.2:{other_host.server_address[1]}/cdn/x.pkl"
    assert f"resumed at byte {half:,}" in fetch(cat)
    assert other_host.log == [("/cdn/x.pkl", f"bytes={half}-")]
    check_installed(home, model_bytes, tmp_path)


@pytest.mark.parametrize("scheme", ["file", "ftp", "data"])
def test_a_redirect_off_http_is_refused_and_nothing_is_reached(tmp_path, server, model_bytes, home, scheme):
    cat = catalogue(tmp_path, server, model_bytes)
    trap = socket.create_server(("127.0.0.1", 0))
    trap.settimeout(0.3)
    where = {"file": "file:///etc/passwd", "ftp": f"ftp://127.0.0.1:{trap.getsockname()[1]}/tiny-sg2.pkl",
             "data": "data:application/octet-stream;base64,AAAA"}[scheme]
    server.redirects["/files/tiny-sg2.pkl"] = where
    try:
        e = refused(cat)
        with pytest.raises(TimeoutError):
            trap.accept()[0].close()  # a hostile server cannot send the download to another service
    finally:
        trap.close()
    assert "http://127.0.0.1" in str(e) and "redirect" in str(e).lower() and scheme in str(e)
    assert not (home / "tiny-sg2.part").exists()
    nothing_installed(home)


def test_a_redirect_loop_is_one_line(tmp_path, server, model_bytes, home):
    cat = catalogue(tmp_path, server, model_bytes)
    server.redirects.update({"/files/tiny-sg2.pkl": "/a", "/a": "/b", "/b": "/files/tiny-sg2.pkl"})
    e = refused(cat)
    assert "redirect" in str(e).lower() and len(server.log) <= 20  # urllib's bound
    nothing_installed(home)


def test_a_server_that_stalls_mid_body_times_out_and_keeps_the_bytes(tmp_path, server, model_bytes, home,
                                                                      monkeypatch):
    monkeypatch.setattr(model_get, "TIMEOUT_S", 1.0)
    cat = catalogue(tmp_path, server, model_bytes)
    server.mode, server.cut_at = "stall", len(model_bytes) // 3
    t0 = time.monotonic()
    e = refused(cat)
    assert time.monotonic() - t0 < 10
    assert "no data for 1 s" in str(e) and "http://127.0.0.1" in str(e) and "resume" in str(e)
    assert (home / "tiny-sg2.part").read_bytes() == model_bytes[:len(model_bytes) // 3]
    nothing_installed(home)


def test_a_server_that_trickles_is_given_up_and_the_bytes_kept(tmp_path, server, model_bytes, home, monkeypatch):
    # 16 bytes every 50 ms never trips the per-read timeout; the rate rule has to
    monkeypatch.setattr(model_get, "SLOW_S", 1.0)
    monkeypatch.setattr(model_get, "SLOW_BYTES", 4096)
    cat = catalogue(tmp_path, server, model_bytes)
    server.mode = "trickle"
    t0 = time.monotonic()
    e = refused(cat)
    assert time.monotonic() - t0 < 10
    assert "too slow" in str(e) and "resume" in str(e)
    got = (home / "tiny-sg2.part").read_bytes()
    assert got and model_bytes.startswith(got)
    nothing_installed(home)


@pytest.mark.parametrize("mode", ["endless", "no_length"])
def test_a_body_longer_than_the_catalogue_says_is_cut_off_and_deleted(tmp_path, server, model_bytes, home, mode):
    cat = catalogue(tmp_path, server, model_bytes)
    server.mode, server.extra = mode, 10
    t0 = time.monotonic()
    e = refused(cat)
    assert time.monotonic() - t0 < 10 and "more than" in str(e)
    assert not (home / "tiny-sg2.part").exists()
    nothing_installed(home)


def test_bytes_past_the_content_length_are_never_read(tmp_path, server, model_bytes, home):
    cat = catalogue(tmp_path, server, model_bytes)
    server.mode, server.extra = "overlong", 5000
    fetch(cat)
    check_installed(home, model_bytes, tmp_path)


def test_a_206_from_the_wrong_byte_is_refused_and_the_partial_kept(tmp_path, server, model_bytes, home):
    cat = catalogue(tmp_path, server, model_bytes)
    half = model_bytes[:len(model_bytes) // 2]
    (home / "tiny-sg2.part").write_bytes(half)
    server.mode = "wrong_range"
    e = refused(cat)
    assert "Content-Range" in str(e) and "bytes 0-" in str(e)
    assert (home / "tiny-sg2.part").read_bytes() == half
    nothing_installed(home)


def test_a_206_to_a_request_for_the_whole_file_is_refused(tmp_path, server, model_bytes, home):
    cat = catalogue(tmp_path, server, model_bytes)
    server.mode = "unasked_206"
    e = refused(cat)
    assert "Content-Range" in str(e) and "bytes 100-" in str(e)
    assert not (home / "tiny-sg2.part").exists()
    nothing_installed(home)


def test_a_hostile_reason_phrase_reaches_the_terminal_escaped_and_short(tmp_path, server, model_bytes, home):
    cat = catalogue(tmp_path, server, model_bytes)
    server.mode, server.reason = "reason", "\x1b[2J\x1b]0;owned\x07Not Found" + "!" * 20000
    e = refused(cat)
    assert "HTTP 404" in str(e) and "Not Found" in str(e)


def test_a_url_that_cannot_be_parsed_is_one_line(tmp_path, server, model_bytes, home):
    cat = catalogue(tmp_path, server, model_bytes)
    e = refused(cat, url="http://[::1/tiny-sg2.pkl")
    assert "http://[::1/tiny-sg2.pkl" in str(e)
    nothing_installed(home)


@pytest.mark.parametrize("what", ["a prefix of another file", "another file of the same size"])
def test_a_partial_file_of_another_file_is_fetched_again_from_the_start(tmp_path, server, model_bytes, home, what):
    cat = catalogue(tmp_path, server, model_bytes)
    n = 1000 if what.startswith("a prefix") else len(model_bytes)
    (home / "tiny-sg2.part").write_bytes(b"\xff" * n)
    err = fetch(cat)
    assert "fetched again from the start" in err
    assert server.log[-1] == ("/files/tiny-sg2.pkl", None)
    check_installed(home, model_bytes, tmp_path)


def test_a_partial_file_bigger_than_the_catalogue_size_is_dropped(tmp_path, server, model_bytes, home):
    cat = catalogue(tmp_path, server, model_bytes)
    (home / "tiny-sg2.part").write_bytes(model_bytes + b"more")
    fetch(cat)
    assert server.log == [("/files/tiny-sg2.pkl", None)]
    check_installed(home, model_bytes, tmp_path)


def test_a_dest_that_is_a_file_is_one_line_and_the_file_untouched(tmp_path, server, model_bytes, home):
    cat = catalogue(tmp_path, server, model_bytes)
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    for dest in (mine, mine / "models"):
        e = refused(cat, dest=str(mine))
        assert str(mine) in str(e)
    assert mine.read_text() == "mine" and server.log == []


def test_not_enough_disk_is_said_before_anything_is_fetched(tmp_path, server, model_bytes, home):
    cat = catalogue(tmp_path, server, model_bytes, size=1 << 60)
    e = refused(cat)
    assert "free" in str(e) and str(home) in str(e) and server.log == []
    nothing_installed(home)


def _small_files(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def test_a_failed_write_is_one_line_and_keeps_the_bytes_written(tmp_path, server, model_bytes):
    # a full disk, as the kernel says it to a process allowed files of this size only (EFBIG)
    cat = catalogue(tmp_path, server, model_bytes)
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "models.toml").write_text(USER_REGISTRY)
    env = {**os.environ, "VJ_HOME": str(home)}
    limit = len(model_bytes) // 2
    p = run_vj("models", "get", "tiny-sg2", "--catalogue", cat, "--accept-licence", env=env, check=False,
               preexec_fn=_small_files(limit))
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    part = home / "models" / "tiny-sg2.part"
    assert f"cannot write {part}" in p.stderr and "resume" in p.stderr
    assert model_bytes.startswith(part.read_bytes()) and part.stat().st_size <= limit
    nothing_installed(home / "models")


def test_a_registry_that_does_not_parse_is_refused_before_anything_is_fetched(tmp_path, server, model_bytes, home):
    cat = catalogue(tmp_path, server, model_bytes)
    broken = USER_REGISTRY + "[models.oops\n"
    (home / "models.toml").write_text(broken)
    e = refused(cat)
    assert e.code == 2 and str(home / "models.toml") in str(e) and server.log == []
    assert (home / "models.toml").read_text() == broken


@pytest.mark.parametrize("key", ['"../evil"', '"a/b"', '"abc\\n"', '".hidden"'])
def test_a_catalogue_name_cannot_be_a_path(tmp_path, key):
    p = tmp_path / "c.toml"
    p.write_text(f'[models.{key}]\narchitecture = "stylegan2"\nresolution = 16\nurl = "https://a/b.pkl"\n'
                 f'size = 1\nsha256 = "{"0" * 64}"\nlicence = "MIT"\nlicence_url = "https://x"\ncommercial = true\n')
    with pytest.raises(model_get.GetError) as e:
        model_get.load_catalogue(str(p))
    assert e.value.code == 2 and "a name is" in str(e.value) and "\n" not in str(e.value)


def test_a_pickle_that_would_run_code_is_refused_at_conversion(tmp_path, server, home):
    marker = tmp_path / "ran"
    call = b"c" + b"os\nsystem\n" + b"X" + struct.pack("<I", len(f"touch {marker}")) + f"touch {marker}".encode()
    evil = b"\x80\x02" + call + b"\x85R."  # os.system("touch ...")
    server.body = evil
    cat = catalogue(tmp_path, server, evil)  # a catalogue that vouches for it: the loader is the last guard
    e = refused(cat)
    assert "does not convert" in str(e) and "os.system" in str(e)
    assert not marker.exists()
    nothing_installed(home)


def test_ctrl_c_mid_download_keeps_the_partial_and_the_next_run_resumes(tmp_path, server, model_bytes):
    cat = catalogue(tmp_path, server, model_bytes)
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "models.toml").write_text(USER_REGISTRY)
    env = {**os.environ, "VJ_HOME": str(home), "VJ_STATE": str(tmp_path / "state")}
    third = len(model_bytes) // 3
    server.mode, server.cut_at = "stall", third
    part = home / "models" / "tiny-sg2.part"
    proc = subprocess.Popen(vj_cmd("models", "get", "tiny-sg2", "--catalogue", cat, "--accept-licence"), cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size == third):
            assert time.monotonic() < deadline and proc.poll() is None, "the download never got going"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in stderr and "resumes" in stderr
    assert part.read_bytes() == model_bytes[:third]
    nothing_installed(home / "models")
    server.release.set()
    server.mode = "ok"
    p = run_vj("models", "get", "tiny-sg2", "--catalogue", cat, "--accept-licence", env=env)
    assert f"resumed at byte {third:,}" in p.stderr
    check_installed(home / "models", model_bytes, tmp_path)


def test_headers_sent_a_byte_at_a_time_meet_a_deadline_and_the_partial_stays(tmp_path, server, other_host,
                                                                             model_bytes, home, monkeypatch):
    # a byte every 20 ms never trips the per-read timeout; only the deadline on the whole head
    # ends it, and it spans the redirects (the first hop answers at once, the second trickles)
    monkeypatch.setattr(model_get, "HEAD_S", 1.0)
    cat = catalogue(tmp_path, server, model_bytes)
    half = model_bytes[:len(model_bytes) // 2]
    part = home / "tiny-sg2.part"
    for redirected in (False, True):
        part.write_bytes(half)
        if redirected:
            server.mode = "ok"
            server.redirects["/files/tiny-sg2.pkl"] = f"http://127.0.0.2:{other_host.server_address[1]}/cdn/x.pkl"
            other_host.mode = "slow_head"
        else:
            server.mode = "slow_head"
        t0 = time.monotonic()
        e = refused(cat)
        assert time.monotonic() - t0 < 5
        assert "headers took longer than 1 s" in str(e) and "http://127.0.0.1" in str(e), str(e)
        assert f"{len(half):,} bytes so far stay in {part}" in str(e) and "resume" in str(e)
        assert part.read_bytes() == half
        nothing_installed(home)
    assert other_host.log == [("/cdn/x.pkl", f"bytes={len(half)}-")]


def test_a_model_converted_but_not_registered_is_registered_by_the_next_run(tmp_path, server, model_bytes,
                                                                           monkeypatch):
    # the registry write fails after NAME.safetensors is in place (a disk full just then: a
    # process allowed files smaller than the registry it rewrites, EFBIG)
    cat = catalogue(tmp_path, server, model_bytes)
    limit = 4 * len(model_bytes)
    models = tmp_path / "home" / "models"
    models.mkdir(parents=True)
    registry = USER_REGISTRY + "".join(f"# my notes, line {i:06d} {'.' * 60}\n" for i in range(limit // 70 + 100))
    (models / "models.toml").write_text(registry)
    env = {**os.environ, "VJ_HOME": str(models.parent)}
    p = run_vj("models", "get", "tiny-sg2", "--catalogue", cat, "--accept-licence", env=env, check=False,
               preexec_fn=_small_files(limit))
    target = models / "tiny-sg2.safetensors"
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert f"{target} is written, but" in p.stderr and "run the same command again to register it" in p.stderr
    assert target.exists() and (models / "models.toml").read_text() == registry
    assert len(server.log) == 1

    # a file of the user's by that name (here: ours with one byte changed, the same size) is
    # neither registered nor replaced, though the record of the earlier run is still there
    monkeypatch.setattr(paths, "MODELS", models)
    ours = target.read_bytes()
    mine = bytearray(ours)
    mine[-1] ^= 1
    target.write_bytes(bytes(mine))
    e = refused(cat)
    assert e.code == 2 and "left as it is" in str(e)
    assert target.read_bytes() == bytes(mine) and (models / "models.toml").read_text() == registry
    assert len(server.log) == 1

    # the file the command made: registered, nothing fetched or converted again
    target.write_bytes(ours)
    out = io.StringIO()
    assert model_get.get("tiny-sg2", accept_licence=True, catalogue=str(cat), out=out, err=io.StringIO()) == 0
    assert "earlier run" in out.getvalue() and len(server.log) == 1
    assert target.read_bytes() == ours
    check_installed(models, model_bytes, tmp_path)
    assert (models / "models.toml").read_text().startswith(registry)
    assert not [p.name for p in models.iterdir() if p.name.startswith(".")]  # the record went with it
