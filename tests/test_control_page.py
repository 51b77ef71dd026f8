"""The browser control page (GET /control on the OSCQuery port): served with a strict
Content-Security-Policy, built from the live namespace, talking OSC over the WebSocket, and
let in only from its own origin. The server's rules over real sockets; the page itself in a
real headless Chromium (Debian's, driven by Playwright) against a real `vj run --headless`."""
import asyncio
import base64
import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pythonosc import udp_client
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from conftest import ROOT, free_port, poll, stop, vj_cmd
from engine.control import control_page
from engine.control.oscquery import OscQueryServer

CHROMIUM = "/usr/bin/chromium"


# ---------------------------------------------------------------- the server's side, no browser
@contextlib.contextmanager
def serving(bind="127.0.0.1", **kw):
    nodes = [{"FULL_PATH": "/vj/tempo", "TYPE": "f", "ACCESS": 3, "VALUE": [120.0],
              "RANGE": [{"MIN": 20.0, "MAX": 400.0}]}]
    srv = OscQueryServer(lambda: nodes, lambda data: None, 0, bind, osc_port=9000, poll=0.01, **kw).start()
    try:
        yield srv
    finally:
        srv.stop()


def handshake(port, origin):
    """The HTTP status a WebSocket handshake to 127.0.0.1:port carrying ``origin`` gets."""
    async def go():
        try:
            async with connect(f"ws://127.0.0.1:{port}/", origin=origin, open_timeout=5):
                return 101
        except InvalidStatus as e:
            return e.response.status_code
    return asyncio.run(go())


def sha256(text):
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_page_served_with_a_strict_policy_and_the_tree_stays_at_root():
    with serving() as srv:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/control", timeout=5) as r:
            html, headers = r.read().decode(), r.headers
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        csp = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
        assert csp["default-src"] == "'none'" and csp["connect-src"] == "'self'"
        assert csp["frame-ancestors"] == "'none'" and csp["base-uri"] == "'none'"
        # the inline script and style run by their hashes, and nothing else does
        (script,) = re.findall(r"<script>(.*?)</script>", html, re.S)
        (style,) = re.findall(r"<style>(.*?)</style>", html, re.S)
        assert csp["script-src"] == sha256(script) and csp["style-src"] == sha256(style)
        assert "unsafe" not in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
        # nothing from elsewhere: no URL but the page's own host
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)
        assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|eval\(", script)
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/control/?x=1", timeout=5) as r:
            assert r.read().decode() == html
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/", timeout=5) as r:
            assert r.headers["Content-Type"] == "application/json"
            assert json.loads(r.read())["CONTENTS"]["vj"]["CONTENTS"]["tempo"]["VALUE"] == [120.0]


def test_own_origin_from_the_listening_address_never_from_the_name():
    with serving() as srv:
        p = srv.port
        assert handshake(p, f"http://127.0.0.1:{p}") == 101
        assert handshake(p, f"http://localhost:{p}") == 101
        for origin in (f"http://evil.example:{p}",       # a name resolving here: DNS rebinding
                       f"http://127.0.0.1:{p + 1}",       # another server on this machine
                       f"https://127.0.0.1:{p}", "null", f"http://127.0.0.1:{p}.evil.example",
                       f"http://10.1.2.3:{p}"):            # not an address it listens on
            assert handshake(p, origin) == 403, origin
        assert srv.stats["refused_origin"] == 6
    with serving("0.0.0.0") as srv:  # a wildcard bind: loopback and the address a client reached
        p = srv.port
        assert srv.listening == ["0.0.0.0"]
        assert handshake(p, f"http://127.0.0.1:{p}") == 101
        assert handshake(p, f"http://localhost:{p}") == 101
        assert handshake(p, f"http://192.0.2.77:{p}") == 403
        assert control_page.is_own_origin(f"http://192.168.1.5:{p}", p, ["0.0.0.0"], "192.168.1.5")
        assert not control_page.is_own_origin(f"http://192.168.1.6:{p}", p, ["0.0.0.0"], "192.168.1.5")
        assert srv.page_urls()[0] == f"http://127.0.0.1:{p}/control"
    with serving(allow=["192.0.2.9"]) as srv:  # the allow-list holds for the page and its socket
        p = srv.port
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{p}/control", timeout=5)
        assert e.value.code == 403
        assert handshake(p, f"http://127.0.0.1:{p}") == 403
        assert srv.stats["refused_peer"] == 2
    # bound to one LAN address: neither loopback nor localhost is its own
    assert not control_page.is_own_origin("http://localhost:9001", 9001, ["192.168.1.5"], "192.168.1.5")
    assert not control_page.is_own_origin("http://127.0.0.1:9001", 9001, ["192.168.1.5"], "192.168.1.5")
    assert control_page.is_own_origin("http://192.168.1.5:9001", 9001, ["192.168.1.5"], "192.168.1.5")
    assert control_page.is_own_origin("http://[::1]:9001", 9001, ["::"], "::1")


def get(port, path, host=None, method="GET"):
    """(status, body) of a plain HTTP request to 127.0.0.1:port carrying ``host`` as its Host
    header (None: the address itself, as any client sends), on a real socket."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.putrequest(method, path, skip_host=host is not None)
        if host is not None:
            conn.putheader("Host", host)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_http_under_a_hostile_name_is_refused_dns_rebinding(caplog):
    """A page of evil.example, its name made to resolve to 127.0.0.1, fetches the namespace as a
    same-origin request: its Host header names evil.example, and that is refused."""
    me = socket.gethostname().lower()
    with serving(origins=["http://studio.example:8080"]) as srv:
        p = srv.port
        for path in ("/", "/?HOST_INFO", "/control", "/vj/tempo?VALUE", "/vj/tempo"):
            for host in (f"evil.example:{p}", "evil.example", f"127.0.0.1.evil.example:{p}",
                         f"localhost.evil.example:{p}", f"{me}.evil.example"):
                status, body = get(p, path, host)
                assert status == 403, (path, host, status)
                assert b"120" not in body and b"<script>" not in body
                assert b"evil.example" in body and b"--oscquery-origin" in body
        assert srv.stats["refused_host"] == 25 and srv.stats["http_requests"] == 0
        assert "refused host" in srv.summary()
        # not a Host at all, or two of them: refused too
        for host in (f"127.0.0.1:{p}:x", "[::1", "a b", "u@localhost"):
            assert get(p, "/", host)[0] in (400, 403), host
        with socket.create_connection(("127.0.0.1", p), timeout=5) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nHost: evil.example:{p}\r\n\r\n".encode())
            assert s.recv(4096).startswith(b"HTTP/1.1 403 ")
        # what clients send: an address, localhost, this machine's name, a listed origin's host
        for host in (None, f"127.0.0.1:{p}", "127.0.0.1", f"localhost:{p}", "LOCALHOST", f"[::1]:{p}",
                     f"192.168.1.5:{p}", f"{me}:{p}", f"{me}.local:{p}", "studio.example:9001"):
            status, body = get(p, "/vj/tempo?VALUE", host)
            assert (status, json.loads(body)) == (200, {"VALUE": [120.0]}), host
        assert get(p, "/control", f"localhost:{p}")[0] == 200
        assert f"refused 127.0.0.1: host evil.example:{p} is not" in caplog.text
        assert "Traceback" not in caplog.text
    with serving(origins=["*"]) as srv:  # any web page may already: no name is refused
        assert get(srv.port, "/vj/tempo?VALUE", "evil.example")[0] == 200


# ---------------------------------------------------------------- the page, in Chromium
PATCH = """
def setup(p):
    p.keys = p.seeds([1, 2])

def frame(p, s):
    speed = p.param("speed", default=0.5, lo=0, hi=2, smooth=0.0, description="walk speed")
    if s["latent.position"] > 0.5:   # declared late: the page must grow a slider
        p.param("late", default=0.0, description="declared late")
    return p.controls(z=p.loop(p.keys, beats=8), zoom=1 + 0.1 * speed)
"""

SET = """
[[scene]]
name = "one"
patch = "pagepatch.py"

[[scene]]
name = "two"
patch = "pagepatch.py"
"""


def browser_missing():
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright; the browser is Debian's)"
    return None


needs_browser = pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))


def value(oq, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{oq}{path}?VALUE", timeout=5) as r:
        return json.loads(r.read())["VALUE"][0]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    d = tmp_path_factory.mktemp("page")
    (d / "pagepatch.py").write_text(PATCH)
    (d / "show.toml").write_text(SET)
    osc, oq = free_port(socket.SOCK_DGRAM), free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1", VJ_STATE=str(d / "state"))
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    with open(d / "vj.log", "w") as log:
        proc = subprocess.Popen(vj_cmd("run", d / "show.toml", "--headless", "--size", "64x48", "--fps", "30",
                                       "--osc-port", osc, "--oscquery-port", oq, "--no-midi"),
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            assert poll(lambda: value(oq, "/vj/param/speed") is not None, 60, proc=proc), \
                "engine did not come up:\n" + (d / "vj.log").read_text()[-3000:]
            yield {"osc": osc, "oq": oq, "proc": proc, "log": d / "vj.log"}
        finally:
            stop(proc)


MY_NAME = socket.gethostname().lower().split(".")[0] + ".local"    # as a phone on the LAN finds it


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        # evil.example resolves to this machine, as a DNS rebinding attack would make it; and
        # Chromium's own guard for a public page reaching this machine (a prompt the user may
        # accept; other browsers have none) is off, so that the engine's guards are tested
        b = pw.chromium.launch(executable_path=CHROMIUM,
                               args=[f"--host-resolver-rules=MAP evil.example 127.0.0.1, MAP {MY_NAME} 127.0.0.1",
                                     "--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessChecks"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)  # a phone
    pg = ctx.new_page()
    pg.errors = []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    try:
        yield pg
    finally:
        ctx.close()


def open_page(page, oq, host="127.0.0.1"):
    page.goto(f"http://{host}:{oq}/control")
    page.wait_for_selector('body[data-ws="open"] input[data-path="/vj/param/speed"]', timeout=10000)


def steady_box(locator, timeout=10.0):
    """Where the element is once the page stops moving it (on a busy machine the rest of the
    page may still be laying out: a touch aimed at an earlier box lands elsewhere)."""
    box, end = locator.bounding_box(), time.monotonic() + timeout
    while time.monotonic() < end:
        time.sleep(0.1)
        again = locator.bounding_box()
        if again == box:
            return box
        box = again
    return box


@needs_browser
def test_slider_drives_the_engine_and_osc_moves_the_slider(engine, page):
    oq = engine["oq"]
    assert f"control page on http://127.0.0.1:{oq}/control" in engine["log"].read_text()
    open_page(page, oq)
    slider = page.locator('input[data-path="/vj/param/speed"]')
    # a finger on the slider, 80% along its track
    box = steady_box(slider)
    assert box["height"] >= 44, "the slider is too small a touch target"
    page.mouse.click(box["x"] + 0.8 * box["width"], box["y"] + box["height"] / 2)
    shown = float(slider.input_value())
    assert 0.6 < shown < 0.95
    assert poll(lambda: value(oq, "/vj/param/speed") == pytest.approx(shown, abs=1e-4), 5)
    # a controller on UDP moves it back
    time.sleep(0.6)  # the page keeps a just-moved slider for half a second
    udp_client.SimpleUDPClient("127.0.0.1", engine["osc"]).send_message("/vj/param/speed", 0.2)
    # (the page's policy forbids eval, Playwright's string predicates too: polled from here)
    assert poll(lambda: abs(float(slider.input_value()) - 0.2) < 1e-4, 5), slider.input_value()
    # a scene button (named from the tree: /vj/scene's OVERLOADS lists the names) and the scene
    # the engine reports
    with urllib.request.urlopen(f"http://127.0.0.1:{oq}/vj/scene", timeout=5) as r:
        assert json.loads(r.read())["OVERLOADS"] == [{"TYPE": "s", "RANGE": [{"VALS": ["one", "two"]}]}]
    assert page.locator('button[data-scene="2"]').inner_text() == "2 two"
    page.click('button[data-scene="2"]')
    assert poll(lambda: value(oq, "/vj/scene") == 2, 5)
    page.wait_for_selector('button[data-scene="2"].on', timeout=5000)
    # a parameter declared later: PATH_ADDED, and the page rebuilds with its slider
    built = int(page.evaluate("document.body.dataset.built"))
    udp_client.SimpleUDPClient("127.0.0.1", engine["osc"]).send_message("/vj/latent/position", 0.9)
    page.wait_for_selector('input[data-path="/vj/param/late"]', timeout=5000)
    assert int(page.evaluate("document.body.dataset.built")) > built
    assert page.locator('input[data-path="/vj/param/speed"]').count() == 1
    assert not page.errors, page.errors   # no CSP violation, no script error


@needs_browser
def test_tapping_sets_the_tempo(engine, page):
    oq = engine["oq"]
    open_page(page, oq)
    tap, t0 = page.locator("#tap"), time.monotonic()
    for k in range(5):  # on a 0.4 s grid: 150 bpm
        time.sleep(max(0.0, t0 + 0.4 * k - time.monotonic()))
        tap.tap()   # a touch, as on a phone
    time.sleep(0.3)  # the last tap reaches the engine's next frame
    tempo = value(oq, "/vj/tempo")
    assert abs(tempo - 150.0) < 15.0, tempo
    bpm = page.locator("#bpm")
    assert poll(lambda: abs(float(bpm.text_content()) - tempo) < 0.2, 5), bpm.text_content()
    page.click("#faster")
    assert poll(lambda: value(oq, "/vj/tempo") == pytest.approx(round(tempo) + 1, abs=1e-3), 5), \
        (tempo, value(oq, "/vj/tempo"))
    assert not page.errors, page.errors


class ForeignPage(BaseHTTPRequestHandler):
    """Another web site on this machine: its page tries the engine's WebSocket."""

    def do_GET(self):
        body = (f"<script>const ws = new WebSocket('ws://127.0.0.1:{self.server.oq}/');"
                "ws.onopen = () => document.title = 'open';"
                "ws.onclose = () => document.title = 'refused';</script>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


# evil.example's page: reads what it can of "its own" origin, then tries the WebSocket
REBINDING = """<script>
const out = ["done"];
fetch("/vj/tempo").then(r => r.text().then(t => out.push("get " + r.status + (r.ok ? " " + t : ""))),
                        () => out.push("get failed"))
  .then(() => new Promise(done => {
    const ws = new WebSocket("ws://" + location.host + "/");
    ws.onopen = () => { out.push("ws open"); done(); };
    ws.onclose = () => { out.push("ws refused"); done(); };
  }))
  .then(() => { document.title = out.join(" | "); });
</script>"""


@needs_browser
def test_other_origins_cannot_open_the_websocket(engine, page):
    oq = engine["oq"]
    site = ThreadingHTTPServer(("127.0.0.1", 0), ForeignPage)
    site.oq = oq
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{site.server_address[1]}/")
        assert poll(lambda: page.title(), 5) == "refused"
    finally:
        site.shutdown()
        site.server_close()
    # DNS rebinding: evil.example served this page, then made its name resolve to 127.0.0.1 (the
    # browser's resolver rule), so the page's requests to "its own" origin reach the engine
    page.route(f"http://evil.example:{oq}/attack",
               lambda route: route.fulfill(status=200, content_type="text/html", body=REBINDING))
    page.goto(f"http://evil.example:{oq}/attack")
    assert poll(lambda: page.title().startswith("done"), 10), page.title()
    # HTTP answers nothing but the refusal (the Host names evil.example); the WebSocket is
    # refused by its Origin (the same name)
    assert page.title() == "done | get 403 | ws refused", (page.title(), page.errors)
    assert "120" not in page.title() and "tempo" not in page.title()
    response = page.goto(f"http://evil.example:{oq}/control")  # the page itself, under that name
    assert response.status == 403 and page.locator("#tap").count() == 0
    # the engine logs the first refusal from a peer (later ones are counted)
    text = engine["log"].read_text()
    assert f"origin http://127.0.0.1:{site.server_address[1]} is not allowed" in text
    assert f"host evil.example:{oq} is not this machine's address or name" in text
    assert "Traceback" not in text and engine["proc"].poll() is None


@needs_browser
def test_the_page_opened_by_this_machines_name_works(engine, page):
    """A phone opens http://<hostname>.local:PORT/control: the page loads and its WebSocket is
    its own origin, so the slider drives the engine."""
    oq = engine["oq"]
    open_page(page, oq, host=MY_NAME)
    slider = page.locator('input[data-path="/vj/param/speed"]')
    box = steady_box(slider)
    page.mouse.click(box["x"] + 0.35 * box["width"], box["y"] + box["height"] / 2)
    shown = float(slider.input_value())
    assert 0.2 < shown < 0.5
    assert poll(lambda: value(oq, "/vj/param/speed") == pytest.approx(shown, abs=1e-4), 5)
    # a plain-http page on a LAN name is not a "trustworthy origin": Chromium notes that it
    # ignores the isolation header, which is all it can do there
    errors = [e for e in page.errors if "Cross-Origin-Opener-Policy header has been ignored" not in e]
    assert not errors, errors


# names and descriptions come from patches, set files and bookmarks: markup in them stays text
EVIL = """</script><script>document.title="pwned"</script><img src=x onerror="document.title='pwned'">"'&amp;"""
EVIL_NAME = "<img src=x onerror=document.title='pwned'>"   # a path part: no slash
EVIL_GROUP = "<svg onload=document.title='pwned'>"


@needs_browser
def test_markup_in_names_and_descriptions_shows_as_text_and_runs_nothing(page):
    nodes = [
        {"FULL_PATH": "/vj/tempo", "TYPE": "f", "ACCESS": 3, "VALUE": [120.0],
         "RANGE": [{"MIN": 20.0, "MAX": 400.0}], "DESCRIPTION": EVIL},
        {"FULL_PATH": f"/vj/param/{EVIL_NAME}", "TYPE": "f", "ACCESS": 3, "VALUE": [0.5],
         "RANGE": [{"MIN": 0.0, "MAX": 1.0}], "DESCRIPTION": EVIL},
        {"FULL_PATH": "/vj/param/constructor", "TYPE": "f", "ACCESS": 3, "VALUE": [0.5],
         "RANGE": [{"MIN": 0.0, "MAX": 1.0}], "DESCRIPTION": "__proto__"},
        {"FULL_PATH": "/vj/learn", "TYPE": "s", "ACCESS": 2, "RANGE": [{"VALS": [EVIL_NAME, EVIL]}]},
        {"FULL_PATH": "/vj/scene/name", "TYPE": "s", "ACCESS": 2, "DESCRIPTION": EVIL,
         "RANGE": [{"VALS": [EVIL, "</option></select><img src=x onerror=alert(1)>"]}]},
        {"FULL_PATH": f"/vj/{EVIL_GROUP}/{EVIL_NAME}", "TYPE": "N", "ACCESS": 2},
        {"FULL_PATH": "/vj/__proto__/go", "TYPE": "N", "ACCESS": 2},
    ]
    got = []
    srv = OscQueryServer(lambda: nodes, got.append, 0, "127.0.0.1", osc_port=9000, poll=0.01).start()
    try:
        page.goto(f"http://127.0.0.1:{srv.port}/control")
        page.wait_for_selector('body[data-ws="open"][data-built]', timeout=10000)
        time.sleep(0.3)  # values pushed over the WebSocket land too
        assert page.title() == "vj control"
        assert page.locator("img, svg, iframe, object, embed").count() == 0
        assert page.locator("script").count() == 1
        # the text as written, where a performer reads it
        assert page.locator(".desc", has_text="document.title").count() == 2
        for d in page.locator(".desc").all_text_contents():
            assert d in (EVIL, "__proto__"), d
        assert page.locator(".row .name", has_text=EVIL_NAME).first.text_content() == EVIL_NAME
        assert page.locator("h2", has_text=EVIL_GROUP).text_content() == EVIL_GROUP
        assert page.locator(f'button[data-path="/vj/{EVIL_GROUP}/{EVIL_NAME}"]').text_content() == EVIL_NAME
        assert page.locator('button[data-path="/vj/__proto__/go"]').count() == 1
        options = page.locator("option").all_text_contents()
        assert EVIL in options and "</option></select><img src=x onerror=alert(1)>" in options
        # values that do not change show from the start (the page once ignored what came in its
        # first half second, as if the performer had just touched every slider)
        for path in (f"/vj/param/{EVIL_NAME}", "/vj/param/constructor"):
            assert page.locator(f'input[data-path="{path}"]').input_value() == "0.5", path
        assert page.locator(".row output").all_text_contents() == ["0.500", "0.500"]
        # and its controls still work: the learn button sends the name as it is
        page.locator("button", has_text="learn").first.click()
        assert poll(lambda: any(EVIL_NAME.encode() in g for g in got), 5), got
        assert not page.errors, page.errors   # a CSP violation would be reported here
        assert page.title() == "vj control"
    finally:
        srv.stop()
