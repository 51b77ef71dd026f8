"""A Session owns what it opens: twenty sessions built and closed in one process leave no
threads, file descriptors or OpenGL objects behind, and a failure while building closes what
was already open."""
import gc
import os
import socket
import threading
import time

import moderngl
import numpy as np
import pytest

from conftest import wait_for, write_wav
from test_rig_run import free_port

GL_TYPES = (moderngl.Texture, moderngl.Framebuffer, moderngl.Program, moderngl.VertexArray, moderngl.Buffer,
            moderngl.Context)


def live_gl_objects() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) in GL_TYPES and type(o.mglo).__name__ != "InvalidObject")


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def options(tmp_path, wav):
    from engine.session import AudioOptions, ControlOptions, Options
    return Options(patch=tmp_path / "p.py", size=(48, 32), fps=30.0, live=True, watch=True,
                   audio=AudioOptions(file=str(wav), play=False),
                   control=ControlOptions(osc_port=0, oscquery_port=free_port(socket.SOCK_STREAM), midi=[],
                                          osc_out=["127.0.0.1:9"], mappings=tmp_path / "m.toml",
                                          record_dir=tmp_path / "takes"))


def test_twenty_sessions_leave_nothing_behind(tmp_path):
    from engine.session import Session
    (tmp_path / "p.py").write_text("def frame(p, s):\n    return p.controls(z=p.seed(1), zoom=1 + s['audio.low'])\n")
    wav = write_wav(tmp_path / "a.wav", 0.1 * np.sin(np.linspace(0, 2000, 44100)))

    from websockets.sync.client import connect

    clients = []

    def one():
        with Session(options(tmp_path, wav)) as s:
            assert s.dispatcher.dispatch("/vj/record/start", ("t",))
            ws = connect(f"ws://127.0.0.1:{s.oscquery.port}/", close_timeout=0.2).__enter__()  # open at close
            clients.append(ws)
            ws.send('{"COMMAND": "LISTEN", "DATA": "/vj/tempo"}')
            s.engine.run_live(frames=4)
            assert s.recording.take is not None
        clients.pop().close()  # the client's own threads (the server side is already gone)
    one()  # the first one loads what stays loaded (torch, the model file's pages, libraries)
    before = (threading.active_count(), fds(), live_gl_objects())
    for _ in range(20):
        one()
    deadline = time.monotonic() + 5  # a client thread of the test's own may still be finishing
    while threading.active_count() > before[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    after = (threading.active_count(), fds(), live_gl_objects())
    assert after[0] <= before[0], [t.name for t in threading.enumerate()]
    assert after[1] <= before[1] + 2, (before, after)      # slack for a log or cache file opened once
    assert after[2] <= before[2], (before, after)


def test_a_failure_while_building_closes_what_was_open(tmp_path):
    from engine.session import Options, Session, SessionError
    (tmp_path / "p.py").write_text("def frame(p, s):\n    return p.controls(z=p.seed(1))\n")
    threads, gl = threading.active_count(), live_gl_objects()
    with pytest.raises(SessionError, match="cannot record"):
        Session(Options(patch=tmp_path / "p.py", size=(48, 32), live=False, watch=True,
                        record=tmp_path / "no" / "such" / "\0bad.mp4"))
    # a closed thread may take a moment to end on a busy machine
    assert wait_for(lambda: threading.active_count() <= threads, 5.0), [t.name for t in threading.enumerate()]
    assert live_gl_objects() <= gl
