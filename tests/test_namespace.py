"""The namespace table is the only source: the dispatcher's accepted addresses, OSCQuery's
HTTP tree, OSC out's addresses and the README's table all match it."""
import re
import socket
import time

import pytest
from pythonosc.osc_message import OscMessage

from conftest import ROOT
from test_rig_run import free_port, get
from engine.control import namespace
from engine.control.dispatch import Dispatcher
from engine.control.publish import nodes
from engine.signals.bus import SignalBus

PARAM = {"value": 1.0, "norm": 0.5, "lo": 0.0, "hi": 2.0, "default": 1.0, "description": "speed"}
STATUS = {"scenes": 2, "scene_names": ["one", "two"], "params": {"speed": PARAM}, "audio": {"low": 0.5},
          "bookmarks": ["dawn"]}


def valid_args(sig, status):
    out = []
    for a in sig:
        if a.type == "s":
            out.append(a.choices(status)[0] if a.choices else "take")
        else:
            lo, hi = a.range(status)
            lo = 0 if lo is None else max(lo, -1e6)
            out.append(int(lo) if a.type == "i" else float(lo))
    return tuple(out)


def test_dispatcher_accepts_exactly_the_writable_addresses():
    bus = SignalBus()
    d = Dispatcher(bus, status=lambda: STATUS)
    accepted, refused = set(), set()
    for e, key in namespace.expand(STATUS):
        for sig in e.signatures:
            ok = d.dispatch(e.path(key), valid_args(sig, STATUS))
            (accepted if ok else refused).add(e.path(key))
    writable = {e.path(k) for e, k in namespace.expand(STATUS) if e.writable}
    assert accepted == writable and not (refused & writable)
    assert refused == {e.path(k) for e, k in namespace.expand(STATUS) if not e.writable}
    assert d.stats["read_only"] == len(refused)
    for address in ("/vj/nothing", "/vj/tempo/x", "/vj", "/vj/param", "/vj/param/Bad Name", "/vj/audio/low/x"):
        assert not d.dispatch(address, (1.0,))
    assert d.stats["unknown"] + d.stats["no_such"] == 6


def test_readme_table_is_the_namespace_table():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- namespace: .*? -->\n(.*?)\n<!-- /namespace -->", readme, re.S)
    assert m, "README.md lost its namespace markers"
    assert m.group(1).strip() == namespace.markdown().strip(), \
        "README's table differs from the table: paste `python -m engine.control.namespace` between the markers"


@pytest.fixture
def session(tmp_path):
    from engine.session import ControlOptions, Options, Session
    from engine.show.sets import SetList
    (tmp_path / "p.py").write_text(
        "def frame(p, s):\n    p.param('speed', default=1.0, lo=0, hi=2, description='speed')\n"
        "    return p.controls(z=p.seed(1))\n")
    (tmp_path / "show.toml").write_text('[[scene]]\nname = "one"\npatch = "p.py"\n'
                                        '[[scene]]\nname = "two"\npatch = "p.py"\n')
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(5)
    sl = SetList(tmp_path / "show.toml")
    s = Session(Options(patch=sl.scene.patch, setlist=sl, size=(32, 32), live=False, control=ControlOptions(
        osc_port=0, oscquery_port=free_port(socket.SOCK_STREAM), midi=None,
        osc_out=[f"127.0.0.1:{sink.getsockname()[1]}"], mappings=tmp_path / "m.toml")))
    with s, sink:
        s.bus.set("audio.low", 0.5)
        for _ in range(3):
            s.engine.render_frame()
        yield s, sink


def test_oscquery_tree_and_osc_out_come_from_the_table(session):
    s, sink = session
    status = s.publisher.status
    table = {e.path(k): e for e, k in namespace.expand(status)}
    assert "/vj/param/speed/raw" in table and "/vj/audio/low" in table

    def walk(node, out):
        if "TYPE" in node:
            out[node["FULL_PATH"]] = node
        for child in node.get("CONTENTS", {}).values():
            walk(child, out)
        return out
    served = walk(get(s.oscquery.port, "/"), {})
    assert set(served) == set(table)
    expected = {n["FULL_PATH"]: n for n in nodes(status) if "TYPE" in n}
    for path, node in served.items():
        e = table[path]
        assert node["TYPE"] == e.type_tag() and node["ACCESS"] == expected[path]["ACCESS"], path
        assert node["DESCRIPTION"] == expected[path]["DESCRIPTION"]
        assert ("VALUE" in node) == (e.readable and e.read(status, path.split("/")[3] if e.pattern else "")
                                     is not None), path

    # OSC out: the readable addresses the table sends, one float each
    seen = set()
    deadline = time.monotonic() + 5
    want = set(namespace.readable(status, for_out=True))
    while time.monotonic() < deadline and not want <= seen:
        s.engine.render_frame()
        try:
            while True:
                m = OscMessage(sink.recv(65536))
                assert len(m.params) == 1 and isinstance(m.params[0], float)
                seen.add(m.address)
        except (BlockingIOError, socket.timeout):
            pass
        sink.settimeout(0.05)
    assert seen == want == {p for p, e in table.items() if e.readable and e.out}
