"""Hostile model files: tiny files that ask the loader for gigabytes or for hours are
refused quickly, in a child process held to a memory limit, and `vj run` falls back to
the default model; so does a corrupt config sidecar.

Every hostile file is written here, op code by op code (pickles) or header by header
(zip), so nothing binary is committed and each bomb says what it does."""
from __future__ import annotations

import io
import json
import pickle
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch

from conftest import ROOT, run_vj
from official_pickle import official_pickle_bytes

from engine.generators import pickles
from engine.generators.load import ModelLoadError, load_generator

GB = 1 << 30
HUGE = 4_000_000_000  # the size every bomb asks for


# ---------------------------------------------------------------- pickle op codes
def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE


def _long(n: int) -> bytes:
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def _dict(*pairs: bytes) -> bytes:
    return b"}(" + b"".join(pairs) + b"u"  # EMPTY_DICT, MARK, key value ..., SETITEMS


def _record(class_name: str, state: bytes) -> bytes:
    """A ``torch_utils.persistence`` record, as the official training code writes one."""
    meta = _dict(_str("type"), _str("class"), _str("version"), b"K\x06", _str("class_name"), _str(class_name),
                 _str("module_src"), _str("# never run"), _str("state"), state)
    return _global("torch_utils.persistence", "_reconstruct_persistent_obj") + meta + b"\x85R"  # TUPLE1, REDUCE


def laughs(levels: int, width: int, container: bytes = b"l") -> bytes:
    """Op codes that leave one object on the stack: ``levels`` nested containers, each
    holding ``width`` references to the one below (memo 0 .. levels). Tiny to store and
    to build, ``width ** levels`` elements to anyone who walks it as a tree."""
    out = (b"]" if container == b"l" else b")") + b"q\x000"  # the empty one, BINPUT 0, POP
    for i in range(levels):
        out += b"(" + (b"h" + bytes([i])) * width + container + b"q" + bytes([i + 1]) + b"0"
    return out + b"h" + bytes([levels])  # BINGET the top


def billion_laughs() -> bytes:
    """An official-looking snapshot whose generator's constructor kwargs hold 10**9
    nested lists (10 levels of 10 references each)."""
    empty = _record("Net", _dict())
    state = _dict(_str("_modules"), _dict(_str("mapping"), empty, _str("synthesis"), empty),
                  _str("_init_kwargs"), _dict(_str("z_dim"), laughs(9, 10)))
    return b"\x80\x02" + _dict(_str("G_ema"), _record("Generator", state)) + b"."


def hash_laughs() -> bytes:
    """A dict whose one key is 60 nested pairs of the same tuple: hashing it takes 2**60 steps."""
    return b"\x80\x02" + _dict(laughs(60, 2, container=b"t"), b"K\x01") + b"."


def bytearray_bomb() -> bytes:
    """32 bytes: ``bytearray(4_000_000_000)``, through an allowed constructor."""
    return b"\x80\x02" + _global("builtins", "bytearray") + _long(HUGE) + b"\x85R."


def shared_records(levels: int = 40) -> bytes:
    """A generator whose every network holds the one below twice: 2**40 layers to walk."""
    out = _record("Leaf", _dict(_str("_parameters"), _dict(_str("w"), b"N"))) + b"q\x000"
    for i in range(levels):
        twice = _dict(_str("a"), b"h" + bytes([i]), _str("b"), b"h" + bytes([i]))
        out += _record(f"Net{i}", _dict(_str("_modules"), twice)) + b"q" + bytes([i + 1]) + b"0"
    top = b"h" + bytes([levels])
    state = _dict(_str("_modules"), _dict(_str("mapping"), top, _str("synthesis"), top))
    return b"\x80\x02" + out + _dict(_str("G_ema"), _record("Generator", state)) + b"."


SMALL_BOMBS = {  # kind: (the file, what its refusal says)
    "bytearray call": (bytearray_bomb(), "size limit: a bytearray of 4,000,000,000 bytes"),
    "BYTEARRAY8 op code": (b"\x80\x05\x96" + struct.pack("<Q", HUGE) + b".",
                           "size limit: a bytearray of 4,000,000,000 bytes"),
    "BINBYTES8 op code": (b"\x80\x04\x8e" + struct.pack("<Q", HUGE) + b".",
                          "size limit: an item of 4,000,000,000 bytes"),
    # LONG_BINPUT far out: C's unpickler grows its memo array to the index; here the
    # memo is a dict, and the file is just not a model
    "memo index": (b"\x80\x02Nr" + struct.pack("<I", 0x7FFFFFFF) + b".", "not a StyleGAN pickle"),
    "numpy array": (b"\x80\x02" + _global("numpy.core.multiarray", "_reconstruct") + _global("numpy", "ndarray")
                    + _long(HUGE) + b"\x85C\x01b\x87R.",  # _reconstruct(ndarray, (HUGE,), b"b")
                    "size limit: a numpy array of 4,000,000,000 bytes"),
    "numpy array called": (b"\x80\x02" + _global("numpy", "ndarray") + _long(HUGE) + b"\x85\x85R.",
                           "numpy.ndarray called directly"),
    "hash": (hash_laughs(), "key limit"),
    "shared records": (shared_records(), "structure limit"),
}


# ---------------------------------------------------------------- torch files
def _storage_pickle(numel: int, key: str = "0", legacy: bool = False) -> bytes:
    """A torch.save ``data.pkl``: {"main.0.weight": a float tensor of ``numel`` elements
    on storage ``key``} (protocol 2, persistent id as torch writes it; the legacy
    format's has a sixth item, the view, None)."""
    pid = (b"(" + _str("storage") + _global("torch", "FloatStorage") + _str(key) + _str("cpu") + _long(numel)
           + b"N" * legacy + b"tQ")  # TUPLE, BINPERSID
    tensor = (_global("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + b"K\x00" + _long(numel) + b"\x85"
              + _long(1) + b"\x85\x89" + _global("collections", "OrderedDict") + b")Rt" + b"R")
    return b"\x80\x02" + _dict(_str("main.0.weight"), tensor) + b"."


def _zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip archive from ``(name, data as stored, method, crc, declared size)``: the
    declared sizes are written as given, whatever the data holds."""
    body, central = b"", b""
    for name, data, method, crc, size in members:
        n = name.encode()
        head = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(data), size, len(n), 0)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc, len(data), size,
                               len(n), 0, 0, 0, 0, 0, len(body)) + n
        body += head + n + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(body), 0)
    return body + central + end


def _stored(name: str, data: bytes) -> tuple:
    return name, data, 0, zlib.crc32(data), len(data)


def zip_bomb() -> bytes:
    """A torch zip checkpoint whose one storage is a deflated run of 4 GB of zeros (3.9 MB)."""
    mib = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)  # self-contained: repeats decode to more zeros
    count = HUGE // len(mib)
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(mib, crc)
    numel = count * len(mib) // 4
    return _zip([_stored("bomb/data.pkl", _storage_pickle(numel)),
                 _stored("bomb/byteorder", b"little"),
                 ("bomb/data/0", chunk * count + b"\x03\x00", 8, crc, count * len(mib)),
                 _stored("bomb/version", b"3\n")])


def zip_numel_bomb() -> bytes:
    """A torch zip checkpoint whose pickle declares a 4 GB storage for a 16-byte member."""
    return _zip([_stored("bomb/data.pkl", _storage_pickle(HUGE // 4)), _stored("bomb/data/0", bytes(16)),
                 _stored("bomb/version", b"3\n")])


def legacy_numel_bomb() -> bytes:
    """A legacy (pre-zip) torch.save file declaring one 4 GB storage and holding none of it."""
    magic = b"\x80\x02" + _long(0x1950A86A20F9469CFC6C) + b"."
    info = b"\x80\x02" + _dict(_str("little_endian"), b"\x88") + b"."
    return (magic + b"\x80\x02M\xe9\x03." + info + _storage_pickle(HUGE // 4, legacy=True)
            + b"\x80\x02]" + _str("0") + b"a." + struct.pack("<q", HUGE // 4))


# ---------------------------------------------------------------- in a limited child
# The loader runs in a child whose address space is capped at 1 GiB, so a bomb that got
# through would fail there (MemoryError, without a limit's name) instead of taking the
# machine; each load reports its time and the child's peak RSS.
CHILD = """
import json, resource, sys, time
from engine.generators.load import ModelLoadError, load_generator
for path in sys.argv[1:]:
    t = time.monotonic()
    try:
        load_generator(path)
        error = None
    except ModelLoadError as e:
        error = str(e)
    print(json.dumps({"seconds": time.monotonic() - t, "error": error,
                      "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}), flush=True)
"""


def _cap_memory():
    resource.setrlimit(resource.RLIMIT_AS, (GB, GB))


def load_in_child(*paths) -> list[dict]:
    proc = subprocess.run([sys.executable, "-c", CHILD, *map(str, paths)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, preexec_fn=_cap_memory)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


ACCEPTANCE = {  # file name, builder, the limit its message names, and the number
    "laughs.pkl": (billion_laughs, "structure limit", "1,000,000"),
    "bytearray.pkl": (bytearray_bomb, "size limit", "4,000,000,000"),
    "zipbomb.pt": (zip_bomb, "compression limit", "3,999,268,864"),
}


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bombs")
    for name, (build, _, _) in ACCEPTANCE.items():
        (d / name).write_bytes(build())
    return d


@pytest.mark.parametrize("name", list(ACCEPTANCE))
def test_bomb_refused_quickly_in_little_memory(bombs, name):
    _, limit, number = ACCEPTANCE[name]
    [got] = load_in_child(bombs / name)
    assert got["error"] and f"{name}: refused: {limit}" in got["error"] and number in got["error"], got
    assert got["seconds"] < 10 and got["peak"] < GB, got


def test_every_other_bomb_refused_in_the_same_limits(tmp_path):
    files = {f"{kind.replace(' ', '_')}.pkl": bomb for kind, bomb in SMALL_BOMBS.items()}
    files.update({"numel.pt": (zip_numel_bomb(), "size limit: zip member bomb/data/0 declares 16 bytes"),
                  "legacy.pt": (legacy_numel_bomb(), "size limit: tensor storage 0 of 4,000,000,000 bytes")})
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    results = load_in_child(*(tmp_path / n for n in files))
    for (name, (_, says)), got in zip(files.items(), results):
        assert got["error"] and got["error"].startswith(f"{name}: ") and says in got["error"], (name, got)
        assert got["seconds"] < 10 and got["peak"] < GB, (name, got)


def test_a_legitimate_model_loads_in_the_same_limits(tmp_path):
    state, kwargs = _small_sg2()
    path = tmp_path / "net.pkl"
    path.write_bytes(official_pickle_bytes(state, kwargs))
    [got] = load_in_child(path)
    assert got["error"] is None and got["peak"] < GB


def _small_sg2():
    from test_model_files import small_sg2
    return small_sg2()


# ---------------------------------------------------------------- the limits, one by one
def test_structure_is_counted_op_code_by_op_code():
    wide = b"\x80\x02]" + b"(" + b"N" * 5000 + b"e."  # a list of 5000 Nones: 5004 op codes
    budget = pickles.Budget(len(wide))
    budget.structure = 4000
    with pytest.raises(pickles.LimitExceeded, match="structure limit: the pickle builds more than 4,000"):
        pickles.SafeUnpickler(io.BytesIO(wide), budget).load()
    assert pickles.SafeUnpickler(io.BytesIO(wide)).load() == [None] * 5000


def test_allocations_together_are_bounded_by_the_file():
    """One 600 kB byte string stored once and handed to bytearray ten times: each copy
    fits in the file, all ten do not."""
    blob = b"B" + struct.pack("<I", 600_000) + bytes(600_000) + b"q\x00"  # BINBYTES, BINPUT 0
    call = _global("builtins", "bytearray") + b"h\x00\x85R"
    data = b"\x80\x03" + blob + b"(" + call * 10 + b"l."
    with pytest.raises(pickles.LimitExceeded, match="allocation limit"):
        pickles.safe_load(io.BytesIO(data))
    assert len(pickles.safe_load(io.BytesIO(b"\x80\x03" + blob + b"(" + call * 2 + b"l."))) == 2


def test_a_tensor_cannot_be_bigger_than_its_storage():
    """A zero stride makes a huge tensor of a one-element storage; the first copy would
    allocate all of it."""
    t = torch.zeros(1).expand(10_000_000)
    with pytest.raises(pickles.LimitExceeded, match="a tensor of 10,000,000 elements on a storage of 1"):
        pickles.safe_load(io.BytesIO(pickle.dumps(t)))


def test_only_plain_containers_are_filled_or_given_state():
    fill_tensor = b"\x80\x02" + _global("torch", "Size") + b")R" + b"K\x00K\x01s."  # SETITEM on a torch.Size
    with pytest.raises(pickle.UnpicklingError, match="items set on a Size"):
        pickles.safe_load(io.BytesIO(fill_tensor))
    # an EasyDict holding "__setstate__": BUILD must not call what the file put in it
    sneaky = (b"\x80\x02" + _global("dnnlib.util", "EasyDict") + b")\x81(" + _str("__setstate__")
              + _global("builtins", "bytearray") + b"u" + _long(1000) + b"b.")  # NEWOBJ, SETITEMS, BUILD
    with pytest.raises(pickle.UnpicklingError, match="state given to a EasyDict"):
        pickles.safe_load(io.BytesIO(sneaky))


def test_a_deflated_member_is_inflated_no_further_than_its_storage(tmp_path):
    """A member whose deflate stream holds more than it declares stops at the declared
    size: the reader never asks for more."""
    data = torch.arange(1000, dtype=torch.float32)
    raw = data.numpy().tobytes()
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = c.compress(raw + bytes(1 << 20)) + c.flush()  # 1 MiB more than declared
    path = tmp_path / "more.pt"
    path.write_bytes(_zip([_stored("m/data.pkl", _storage_pickle(1000)),
                           ("m/data/0", stream, 8, zlib.crc32(raw), len(raw))]))
    got = pickles.load_checkpoint(path)
    assert torch.equal(got["main.0.weight"], data)


# ---------------------------------------------------------------- the session goes on
@pytest.mark.parametrize("name", list(ACCEPTANCE))
def test_run_falls_back_from_a_bomb(bombs, env_no_display, name):
    proc = run_vj("run", "--headless", "--frames", "5", "--size", "64x64", "--no-osc", "--no-midi",
                  "--model", bombs / name, env=env_no_display, timeout=180)
    assert f"{name}: refused: {ACCEPTANCE[name][1]}" in proc.stderr
    assert "falling back to the default model" in proc.stderr


@pytest.mark.parametrize("sidecar,text,error", [
    ("json", '{"z_dim": 100,, "oops"', "JSONDecodeError"),
    ("toml", "z_dim = = 100\n", "TOMLDecodeError"),
    ("json", "[1, 2]", "holds a list"),
])
def test_a_corrupt_sidecar_is_a_model_load_error(tmp_path, sidecar, text, error):
    model = tmp_path / "face.safetensors"
    model.write_bytes((ROOT / "models" / "dcgan_digiface64.safetensors").read_bytes())
    (tmp_path / f"face.{sidecar}").write_text(text)
    with pytest.raises(ModelLoadError, match=f"face.safetensors: its config sidecar face.{sidecar} .*{error}"):
        load_generator(str(model))


def test_run_falls_back_from_a_corrupt_sidecar(tmp_path, env_no_display):
    model = tmp_path / "face.safetensors"
    model.write_bytes((ROOT / "models" / "dcgan_digiface64.safetensors").read_bytes())
    (tmp_path / "face.json").write_text('{"z_dim": 100,, "oops"')
    proc = run_vj("run", "--headless", "--frames", "5", "--size", "64x64", "--no-osc", "--no-midi",
                  "--model", model, env=env_no_display, timeout=180)
    assert "face.json cannot be read (JSONDecodeError" in proc.stderr
    assert "falling back to the default model" in proc.stderr


def test_a_config_that_asks_for_terabytes_is_refused_before_anything_is_allocated(tmp_path):
    model = tmp_path / "face.safetensors"
    model.write_bytes((ROOT / "models" / "dcgan_digiface64.safetensors").read_bytes())
    (tmp_path / "face.json").write_text('{"z_dim": 1000000000, "mapping_kwargs": {"num_layers": 8}}')
    with pytest.raises(ModelLoadError, match="z_dim = 1000000000 is beyond the size limit"):
        load_generator(str(model))
