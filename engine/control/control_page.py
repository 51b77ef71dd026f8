"""The browser control page: one HTML file the OSCQuery server serves at ``GET /control``.

The page (``control_page.html``, a package resource) builds itself from the OSCQuery tree
(``GET /``) and talks to the engine over the same port's WebSocket: binary OSC frames both
ways, JSON ``LISTEN`` commands, a rebuild on ``PATH_ADDED`` / ``PATH_REMOVED`` /
``PATH_CHANGED``. Everything it needs is inline, so the Content-Security-Policy can be strict:
the inline script and style are allowed by their SHA-256 hashes only (no ``unsafe-inline``,
nothing from another host), and the page may connect to its own origin alone.

Which origins may open the WebSocket is the server's decision (``OscQueryServer``): the
page's own origin is recognised from the addresses the server listens on, never from a
request's ``Host`` header. HTTP answers, the page's included, go only to a ``Host`` that is an
IP address or one of this machine's names (``is_own_host``).
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import socket
from functools import lru_cache
from importlib import resources
from urllib.parse import urlsplit

PATH = "/control"
LOOPBACK = ("127.0.0.1", "::1")
WILDCARD = ("0.0.0.0", "::", "")


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@lru_cache(maxsize=1)
def page() -> tuple[bytes, dict[str, str]]:
    """(body, headers) of the page; the CSP names the hashes of its inline script and style."""
    html = resources.files("engine.control").joinpath("control_page.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    csp = ("default-src 'none'; "
           f"script-src {' '.join(map(_hash, scripts))}; "
           f"style-src {' '.join(map(_hash, styles))}; "
           "connect-src 'self'; img-src 'self' data:; "
           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    headers = {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Cache-Control": "no-store",
    }
    return html.encode("utf-8"), headers


def is_page(target: str) -> bool:
    """Is an HTTP request target (path plus query) the page's?"""
    return target.partition("?")[0].rstrip("/") == PATH


def ip_text(host: str) -> str | None:
    """An IP address as text (an IPv4-mapped IPv6 address as plain IPv4, a scope id dropped),
    so that addresses compare; None if ``host`` is not an IP address."""
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def own_hosts(listening: list[str], local: str | None = None) -> set[str]:
    """The hosts a page of this server can be loaded from: the IP addresses it listens on,
    loopback (and ``localhost``) when it listens there, and ``local``, the server's own
    address a connection reached (under a wildcard bind, the LAN address a phone used)."""
    hosts: set[str] = set()
    for address in listening:
        ip = ip_text(address) if address not in WILDCARD else None
        if address in WILDCARD:
            hosts.update(LOOPBACK)
            if local:
                hosts.add(ip_text(local) or "")
        elif ip is not None:
            hosts.add(ip)
    hosts.discard("")
    if any(ipaddress.ip_address(h).is_loopback for h in hosts):
        hosts.add("localhost")
    return hosts


def is_own_origin(origin: str, port: int, listening: list[str], local: str | None = None) -> bool:
    """Is ``origin`` this server's own page, ``http://<an address it listens on>:<its port>``,
    or the page opened by this machine's own name (``http://<hostname>.local:<port>``, as a
    phone on the LAN finds it)?

    Any other name never is: a hostile name that resolves to this machine (DNS rebinding)
    sends its own name as the origin, and is refused."""
    try:
        parts = urlsplit(origin.strip())
        origin_port = parts.port or (80 if parts.scheme == "http" else None)
    except ValueError:
        return False
    if parts.scheme != "http" or origin_port != port or parts.path not in ("", "/"):
        return False
    host = (parts.hostname or "").lower().rstrip(".")
    if host != "localhost" and host in own_names():
        return True
    host = host if host == "localhost" else ip_text(host)
    return host is not None and host in own_hosts(listening, local)


def own_names(origins=()) -> set[str]:
    """The names a Host header may carry to this server besides an IP address: ``localhost``,
    this machine's host name and its ``.local`` (mDNS) name, and the hosts of ``origins``
    (``--oscquery-origin``: the user vouched for them)."""
    me = socket.gethostname().lower().rstrip(".")
    names = {"localhost", me, me + ".local", me.split(".")[0] + ".local"}
    for origin in origins:
        try:
            names.add((urlsplit(origin).hostname or "").rstrip("."))
        except ValueError:
            pass
    names.discard("")
    return names


def host_name(host: str) -> str | None:
    """A Host header's host, lower-case, without its port; None if it is not a host[:port]."""
    try:
        parts = urlsplit("//" + host.strip())
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return None
    name = parts.hostname
    if not name or parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    return name.rstrip(".") if ip_text(name) is None else ip_text(name)


def is_own_host(host: str, names: set[str]) -> bool:
    """May an HTTP request carrying ``Host: host`` be answered? An IP address, or one of
    ``names`` (``own_names``). A web page under any other name that resolves here (DNS
    rebinding) would read the answer as its own origin's."""
    name = host_name(host)
    return name is not None and (ip_text(name) is not None or name in names)


def lan_address() -> str | None:
    """This machine's address on its default route (no packet is sent), for the log line."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks a route
            return s.getsockname()[0]
        except OSError:
            return None


def urls(bind: str, port: int) -> list[str]:
    """Where to open the page: the bind address, or loopback and the LAN address under a wildcard."""
    if bind in WILDCARD:
        hosts = ["127.0.0.1"] + [a for a in (lan_address(),) if a and a != "127.0.0.1"]
    else:
        hosts = [bind]
    return [f"http://{'[' + h + ']' if ':' in h else h}:{port}{PATH}" for h in hosts]
