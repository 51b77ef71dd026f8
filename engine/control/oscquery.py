"""OSCQuery: the engine's OSC namespace, browsable over HTTP and live over a WebSocket.

One port (default 9001) serves both, as the OSCQuery proposal asks
(Vidvox/OSCQueryProposal): ``GET /`` (or any node's path) answers the JSON tree
(``FULL_PATH``, ``CONTENTS``, ``TYPE``, ``ACCESS``, ``VALUE``, ``RANGE``, ``DESCRIPTION``),
``GET /path?VALUE`` one attribute, ``GET /?HOST_INFO`` the server's name and OSC port,
``GET /control`` the browser control page (``control_page.py``). A
WebSocket client sends ``{"COMMAND": "LISTEN", "DATA": "/vj/tempo"}`` (or ``IGNORE``) and
then receives each change of that value as a binary frame holding an OSC message; binary
frames it sends are OSC packets handled exactly like UDP input. ``PATH_ADDED`` /
``PATH_REMOVED`` (JSON text frames) tell clients when a patch declares new parameters
(one ``PATH_CHANGED "/"`` instead, meaning "read the tree again", when too many change at once).

The WebSocket follows the UDP input's rules, and a web page cannot drive the engine:

- ``allow``: peer IP addresses accepted, for WebSocket and HTTP alike (``--osc-allow``);
  any other peer is answered HTTP 403.
- ``origins``: a WebSocket handshake that carries an ``Origin`` header (every browser sends
  one) is refused with HTTP 403 unless that origin is listed; clients that send none
  (TouchDesigner, Max, Python) are accepted, and so is the control page's own origin:
  ``http://<an address the server listens on>:<its port>`` (``localhost`` when it listens on
  loopback), decided from the listening sockets and the address a connection reached, never
  from the ``Host`` header, so a hostile name resolving here (DNS rebinding) is refused.
  HTTP answers carry ``Access-Control-Allow-Origin`` only for a listed origin or the page's
  own, so other pages cannot read them.
- ``Host``: an HTTP request (the tree, ``HOST_INFO``, the page) whose ``Host`` header is not an
  IP address, ``localhost``, this machine's host name (or ``<name>.local``) or the host of a
  listed origin is answered 403: a page under a hostile name made to resolve here (DNS
  rebinding) would otherwise read the answers as same-origin. OSCQuery clients send an address.
- Each client has its own bounded outbound queue and its own sender task, so the push loop
  never waits on a socket. A client that stops reading fills its TCP buffers and then its
  queue; once its queue is full and nothing has left it for ``max_stall`` seconds it is
  closed and dropped (counted, logged once) while every other client carries on. Values that
  do not fit in a queue are not lost but coalesced: the latest one goes out once there is room.
- At most ``max_clients`` WebSocket clients (HTTP 503 beyond), ``max_pending`` connections
  that have not finished a request (the oldest is closed beyond: a flood of idle connections
  neither holds the port nor takes the process's descriptors), ``max_listen`` LISTENed paths
  each, 64 KiB frames in (1009 beyond), ``write_limit`` bytes buffered out, no compression.
  Only GET is served (405 otherwise); request lines and headers are bounded by ``websockets``
  (414, 431). A text frame that is not a JSON command is counted and ignored, the client stays.

Everything refused or dropped is counted in ``OscQueryServer.stats`` (``summary()`` is a
HUD line). The server runs an asyncio loop (the ``websockets`` package) on its own thread;
``stop()`` closes every client and the listening socket and joins it. It only reads
``nodes()``, a flat list of node dicts the rig rebuilds from published state, and writes to
the bus through the OSC handler. Zeroconf advertising is not built in.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import Counter

from pythonosc.osc_message_builder import OscMessageBuilder

from engine.control import control_page

log = logging.getLogger("vj.oscquery")
logging.getLogger("websockets").setLevel(logging.WARNING)
EXTENSIONS = {k: True for k in ("ACCESS", "VALUE", "RANGE", "DESCRIPTION", "TAGS", "CLIPMODE", "OVERLOADS",
                                "LISTEN", "PATH_ADDED", "PATH_REMOVED", "PATH_CHANGED")}
ATTRIBUTES = ("FULL_PATH", "CONTENTS", "TYPE", "ACCESS", "VALUE", "RANGE", "DESCRIPTION", "TAGS",
              "CLIPMODE", "UNIT", "OVERLOADS")


def build_tree(nodes: list[dict], name: str = "vj") -> dict:
    """Flat node dicts (each with FULL_PATH) -> the nested OSCQuery tree from '/'."""
    root = {"FULL_PATH": "/", "ACCESS": 0, "DESCRIPTION": name, "CONTENTS": {}}
    index = {"/": root}
    for node in sorted(nodes, key=lambda n: n["FULL_PATH"]):
        parts = node["FULL_PATH"].strip("/").split("/")
        parent = root
        for i, part in enumerate(parts):
            path = "/" + "/".join(parts[:i + 1])
            child = index.get(path)
            if child is None:
                child = {"FULL_PATH": path, "ACCESS": 0}
                parent.setdefault("CONTENTS", {})[part] = child
                index[path] = child
            parent = child
        parent.update({k: v for k, v in node.items() if k != "CONTENTS"})
    return root


def find(tree: dict, path: str) -> dict | None:
    node = tree
    for part in [p for p in path.split("/") if p]:
        node = node.get("CONTENTS", {}).get(part)
        if node is None:
            return None
    return node


def osc_message(path: str, typetag: str, values) -> bytes:
    b = OscMessageBuilder(path)
    for t, v in zip(typetag, values):
        b.add_arg(v, {"f": "f", "i": "i", "s": "s", "T": "T", "F": "F"}.get(t))
    return b.build().dgram


MAX_FRAME = 1 << 16   # the largest frame a client may send (an OSC packet, a JSON command)
MAX_PATH = 1024       # the longest path a client may LISTEN to


def peer_ip(address) -> str:
    """A socket's peer name (or an address as text) -> the IP address as text, an IPv4-mapped
    IPv6 address as plain IPv4, so that it compares with the entries of an allow-list."""
    host = address[0] if isinstance(address, (tuple, list)) and address else address
    host = str(host or "").strip()
    return control_page.ip_text(host) or host


def _origin(value: str) -> str:
    return value.strip().rstrip("/").lower()


class Stats(Counter):
    """Counts by kind: http_requests, ws_clients (accepted), ws_messages (frames received),
    ws_sent (frames sent), and the problems: refused_peer, refused_host, refused_method,
    refused_origin, refused_full, dropped_idle, dropped_slow, listen_full, bad_commands,
    osc_errors."""

    PROBLEMS = ("refused_peer", "refused_host", "refused_method", "refused_origin", "refused_full",
                "dropped_idle", "dropped_slow", "listen_full", "bad_commands", "osc_errors")

    def problems(self) -> int:
        return sum(self[k] for k in self.PROBLEMS)

    def summary(self) -> str:
        bad = ", ".join(f"{self[k]} {k.replace('_', ' ')}" for k in self.PROBLEMS if self[k])
        return f"{self['ws_messages']} ws msgs" + (f" ({bad})" if bad else "")


class OscQueryServer:
    """The OSCQuery HTTP + WebSocket server on one TCP port, on its own thread.

    ``nodes``: () -> flat list of node dicts; ``on_osc``: (bytes) -> None, the OSC handler.
    ``allow``: peer IP addresses accepted on this port, WebSocket and HTTP (None or empty:
    any); others get HTTP 403. ``origins``: ``Origin`` header values a WebSocket handshake may
    carry (``http://localhost:8080``; ``*`` for any; default none), and that HTTP answers
    grant CORS to; a handshake without ``Origin`` (not a browser) is accepted. ``max_clients``
    WebSocket clients at once (HTTP 503 beyond). ``max_queue`` messages wait per client; a
    client whose queue stays full for ``max_stall`` seconds (it stopped reading) is dropped.
    ``max_listen`` paths per client; ``write_limit`` bytes buffered per client above the
    kernel's socket buffer. Counts are in ``stats``; ``summary()`` is one line for a HUD.
    """

    def __init__(self, nodes, on_osc, port: int = 9001, bind: str = "127.0.0.1",
                 osc_port: int | None = None, name: str = "vj", poll: float = 1 / 30, *,
                 allow=None, origins=None, max_clients: int = 32, max_queue: int = 256,
                 max_listen: int = 1024, max_stall: float = 2.0, write_limit: int = 1 << 15,
                 max_pending: int = 64):
        self.nodes = nodes          # () -> list of node dicts
        self.on_osc = on_osc        # (bytes) -> None: the OSC handler
        self.port, self.bind, self.osc_port, self.name, self.poll = int(port), bind, osc_port, name, poll
        if isinstance(allow, str):
            allow = allow.split(",")
        self.allow: set[str] | None = {peer_ip(a) for a in (allow or ()) if str(a).strip()} or None
        if isinstance(origins, str):
            origins = origins.split(",")
        self.origins: frozenset[str] = frozenset(_origin(o) for o in (origins or ()) if o and o.strip())
        self.names = control_page.own_names(self.origins)  # what a Host header may name
        self.max_clients = max(1, int(max_clients))
        self.max_queue = max(1, int(max_queue))
        self.max_listen = max(1, int(max_listen))
        self.max_stall = max(0.0, float(max_stall))
        self.write_limit = max(1, int(write_limit))
        self.max_pending = max(1, int(max_pending))
        self.stats = Stats()
        self.clients: dict = {}     # connection -> {"peer", "listen", "sent", "queue", "sender", ...}
        self._conns: dict = {}      # every open TCP connection (handshaking, HTTP or WebSocket), oldest first
        self._logged: set = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server = None
        self._stopping: asyncio.Event | None = None

    @property
    def requests(self) -> int:
        return self.stats["http_requests"]

    def summary(self) -> str:
        """One line for a HUD: clients connected, frames received, what was refused or dropped."""
        return f"{len(self.clients)} ws, {self.stats.summary()}"

    def origin_allowed(self, origin: str, local=None) -> bool:
        """May a WebSocket handshake carrying ``origin`` go on? A listed origin, or the control
        page's own, on a connection that reached this server at ``local`` (its sockname)."""
        if "*" in self.origins or _origin(origin) in self.origins:
            return True
        return control_page.is_own_origin(origin, self.port, self.listening,
                                          peer_ip(local) if local else None)

    @property
    def listening(self) -> list[str]:
        """The addresses the server listens on (wildcards as such), from its own sockets."""
        server = self._server
        return [peer_ip(s.getsockname()) for s in server.sockets] if server is not None else []

    def page_urls(self) -> list[str]:
        """Where a browser opens the control page (for the log line at startup)."""
        return control_page.urls(self.bind, self.port)

    # --- lifecycle
    def start(self) -> "OscQueryServer":
        if self._thread is not None and self._thread.is_alive():
            return self
        started = threading.Event()
        err: list[BaseException] = []

        def run():
            try:
                asyncio.run(self._main(started))
            except BaseException as e:  # noqa: BLE001
                if not started.is_set():
                    err.append(e)
                else:
                    log.error("OSCQuery server stopped: %s", e)
            finally:
                started.set()
        self._thread = threading.Thread(target=run, name=f"oscquery:{self.port}", daemon=True)
        self._thread.start()
        if not started.wait(10):
            self.stop()
            raise OSError(f"OSCQuery server on {self.bind}:{self.port} did not start")
        if err:
            self._thread.join(2)
            self._thread = None
            raise err[0]
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every client and the listening socket, and join the thread."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None:
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # the loop is already closed
                pass
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("OSCQuery server thread did not stop within %.0f s", timeout)
            else:
                self._thread = None

    async def _main(self, started):
        from websockets.asyncio.server import ServerConnection, serve
        owner = self

        class Connection(ServerConnection):
            """Tracked from accept to close, so that stop() can end any of them."""

            def connection_made(self, transport):
                super().connection_made(transport)
                owner._conns[self] = None
                owner._evict_pending()

            def connection_lost(self, exc):
                owner._conns.pop(self, None)
                super().connection_lost(exc)

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await serve(self._ws, self.bind, self.port, process_request=self._request,
                             create_connection=Connection, compression=None, ping_interval=None,
                             open_timeout=5, close_timeout=1, max_size=MAX_FRAME, max_queue=16,
                             write_limit=self.write_limit)
        self._server = server
        poller = None
        try:
            self.port = server.sockets[0].getsockname()[1]
            started.set()
            poller = asyncio.create_task(self._push())
            await self._stopping.wait()
        finally:
            if poller is not None:
                poller.cancel()
            await self._shutdown(server)

    async def _shutdown(self, server) -> None:
        for state in list(self.clients.values()):
            state["sender"].cancel()
        server.close()  # stop listening; WebSocket clients get a close frame (1001, going away)
        # a client that answers the close frame does so within milliseconds: wait half a second
        # for them, and end at once what is not an open WebSocket (a handshake or an HTTP
        # request under way, even one accepted just now) and what has a backlog to send first
        deadline = time.monotonic() + 0.5
        while True:
            for conn in list(self._conns):
                if conn not in self.clients or conn.transport.get_write_buffer_size():
                    conn.transport.abort()
            try:
                await asyncio.wait_for(server.wait_closed(), 0.05)
                break
            except asyncio.TimeoutError:
                if time.monotonic() < deadline:
                    continue
            for conn in list(self._conns):
                conn.transport.abort()
            try:
                await asyncio.wait_for(server.wait_closed(), 2)
            except asyncio.TimeoutError:
                log.warning("OSCQuery: %d connections still open at stop", len(self._conns))
            break
        self.clients.clear()
        self._server = None

    # --- admission: the allow-list, origins, the number of clients
    def _evict_pending(self) -> None:
        """Past ``max_pending`` connections that are not (yet) WebSocket clients, close the
        oldest: each holds a descriptor until open_timeout, and a flood of them would take the
        engine's (its recordings') and shut out real requests, which finish in milliseconds."""
        pending = [c for c in self._conns if c not in self.clients]
        for conn in pending[:max(0, len(pending) - self.max_pending)]:
            self._conns.pop(conn, None)
            self.stats["dropped_idle"] += 1
            peer = peer_ip(conn.remote_address)
            self._log_once("dropped_idle", peer, "OSCQuery: closed idle connection from %s: more than %d "
                           "connections at once have not finished a request", peer, self.max_pending)
            conn.transport.abort()

    def _log_once(self, kind: str, peer: str, msg: str, *args) -> None:
        key = (kind, peer)
        if key not in self._logged and len(self._logged) < 256:
            self._logged.add(key)
            log.warning(msg, *args)
        else:
            log.debug(msg, *args)

    def _respond(self, connection, status: int, body, origin: str | None = None):
        response = connection.respond(status, "" if body is None else json.dumps(body))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        return response

    def _refuse(self, connection, kind: str, status: int, peer: str, why: str):
        self.stats[kind] += 1
        self._log_once(kind, peer, "OSCQuery: refused %s: %s", peer, why)
        return self._respond(connection, status, {"error": why})

    def _request(self, connection, request):
        """websockets' process_request: every HTTP request and WebSocket handshake on the port."""
        peer = peer_ip(connection.remote_address)
        if self.allow is not None and peer not in self.allow:
            return self._refuse(connection, "refused_peer", 403, peer, f"{peer} is not allowed (--osc-allow)")
        if request.method != "GET":  # a HEAD or OPTIONS must not be answered with the tree
            response = self._refuse(connection, "refused_method", 405, peer,
                                    f"{request.method[:16]}: only GET is served here")
            response.headers["Allow"] = "GET"
            return response
        origins = request.headers.get_all("Origin")
        local = connection.local_address
        if "upgrade" not in ",".join(request.headers.get_all("Connection")).lower():
            # DNS rebinding: a page whose name resolves here reads answers as same-origin ones,
            # so they go only to an address or one of this machine's names. No Host: no browser
            hosts = request.headers.get_all("Host")
            if hosts and "*" not in self.origins and \
                    (len(hosts) > 1 or not control_page.is_own_host(hosts[0], self.names)):
                return self._refuse(connection, "refused_host", 403, peer,
                                    f"host {hosts[0][:80]} is not this machine's address or name; "
                                    "use its address, or list the page's origin with --oscquery-origin")
            if control_page.is_page(request.path):
                return self._page(connection)
            allowed = origins[0] if len(origins) == 1 and self.origin_allowed(origins[0], local) else None
            return self._http(connection, request, allowed)
        # a WebSocket handshake: browsers always send Origin, other clients need not
        if origins and (len(origins) > 1 or not self.origin_allowed(origins[0], local)):
            return self._refuse(connection, "refused_origin", 403, peer,
                                f"origin {origins[0]} is not allowed (--oscquery-origin)")
        if len(self.clients) >= self.max_clients:
            return self._refuse(connection, "refused_full", 503, peer,
                                f"{len(self.clients)} clients already, the most allowed")
        return None  # carry on with the handshake

    # --- HTTP
    def host_info(self, local=None) -> dict:
        """HOST_INFO for a client that reached this server at ``local`` (its sockname): on a
        wildcard bind, that address (a client told 0.0.0.0 would send its OSC nowhere)."""
        ip = self.bind
        if ip in ("0.0.0.0", "::", "") and local:
            ip = peer_ip(local)
        return {"NAME": self.name, "EXTENSIONS": EXTENSIONS, "OSC_IP": ip,
                "OSC_PORT": self.osc_port, "OSC_TRANSPORT": "UDP",
                "WS_IP": ip, "WS_PORT": self.port}

    def answer(self, target: str, local=None) -> tuple[int, object]:
        """(status, JSON body) for an HTTP GET of ``target`` (path plus query) on a connection
        that reached this server at ``local``."""
        path, _, query = target.partition("?")
        query = query.split("&")[0].split("=")[0]
        if query == "HOST_INFO":
            return 200, self.host_info(local)
        node = find(build_tree(self.nodes(), self.name), path or "/")
        if node is None:
            return 404, {"error": f"no such path {path}"}
        if not query:
            return 200, node
        if query not in ATTRIBUTES:
            return 400, {"error": f"unknown attribute {query}"}
        if query not in node:
            return 204, None
        return 200, {query: node[query]}

    def _page(self, connection):
        self.stats["http_requests"] += 1
        body, headers = control_page.page()
        response = connection.respond(200, "")
        response.body = body
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            if name in response.headers:
                del response.headers[name]
            response.headers[name] = value
        return response

    def _http(self, connection, request, origin: str | None):
        self.stats["http_requests"] += 1
        try:
            status, body = self.answer(request.path, connection.local_address)
        except Exception as e:  # noqa: BLE001 - a bad request must not kill the server
            status, body = 500, {"error": f"{type(e).__name__}: {e}"}
        # CORS only for a listed origin: another web page may not read the namespace
        return self._respond(connection, status, body, origin)

    # --- WebSocket
    async def _ws(self, conn):
        peer = peer_ip(conn.remote_address)
        if len(self.clients) >= self.max_clients:  # handshakes that passed _request together
            self.stats["refused_full"] += 1
            await conn.close(1013, "too many clients")
            return
        state = {"peer": peer, "listen": set(), "sent": {}, "notices": [], "full_since": None,
                 "turn": 0, "queue": asyncio.Queue(self.max_queue)}
        state["sender"] = asyncio.create_task(self._sender(conn, state["queue"]))
        self.clients[conn] = state
        self.stats["ws_clients"] += 1
        try:
            async for msg in conn:
                self.stats["ws_messages"] += 1
                if isinstance(msg, bytes):
                    self._osc(msg, peer)
                else:
                    self._command(msg, state)
        except Exception:  # noqa: BLE001 - a client that goes away mid-frame
            pass
        finally:
            if self.clients.get(conn) is state:
                del self.clients[conn]
            state["sender"].cancel()

    def _osc(self, packet: bytes, peer: str) -> None:
        try:
            self.on_osc(packet)
        except Exception as e:  # noqa: BLE001 - the handler counts bad packets; this is a bug
            self.stats["osc_errors"] += 1
            self._log_once("osc_errors", peer, "OSCQuery: OSC from %s: %s: %s", peer, type(e).__name__, e)

    def _command(self, text: str, state: dict) -> None:
        try:
            cmd = json.loads(text)
            command, data = cmd.get("COMMAND"), cmd.get("DATA")
        except (ValueError, AttributeError, RecursionError):  # deep nesting: RecursionError
            command = data = None
        if not isinstance(data, str) or len(data) > MAX_PATH:
            self.stats["bad_commands"] += 1
            self._log_once("bad_commands", state["peer"], "OSCQuery: bad command from %s (JSON "
                           "{\"COMMAND\": ..., \"DATA\": \"/path\"} expected): %.60r", state["peer"], text)
            return
        if command == "LISTEN":
            if data not in state["listen"] and len(state["listen"]) >= self.max_listen:
                self.stats["listen_full"] += 1
                self._log_once("listen_full", state["peer"], "OSCQuery: %s listens to %d paths, the most "
                               "allowed; LISTEN %.80s ignored", state["peer"], self.max_listen, data)
                return
            state["listen"].add(data)
            state["sent"].pop(data, None)
        elif command == "IGNORE":
            state["listen"].discard(data)
            state["sent"].pop(data, None)

    async def _sender(self, conn, queue: asyncio.Queue) -> None:
        """One per client: the only place that waits on its socket."""
        while True:
            message = await queue.get()
            try:
                await conn.send(message)
            except Exception:  # noqa: BLE001 - closed: its handler cleans up
                return
            self.stats["ws_sent"] += 1

    def _drop(self, conn, state: dict) -> None:
        self.clients.pop(conn, None)
        state["sender"].cancel()
        self.stats["dropped_slow"] += 1
        self._log_once("dropped_slow", state["peer"], "OSCQuery: dropped WebSocket client %s: it stopped "
                       "reading (%d messages waiting)", state["peer"], state["queue"].qsize())
        conn.transport.abort()

    async def _push(self):
        """Queue listened values when they change, and namespace changes, ~30 times a second.

        Never waits on a client: each has its own queue and sender. A value that does not fit
        in a full queue stays unsent and goes out later, as the latest value then."""
        known: set[str] | None = None
        while True:
            await asyncio.sleep(self.poll)
            if not self.clients:
                continue
            try:
                nodes = {n["FULL_PATH"]: n for n in self.nodes()}
            except Exception as e:  # noqa: BLE001
                log.error("OSCQuery namespace: %s", e)
                continue
            paths = set(nodes)
            changes = []
            if known is not None:
                changes = [("PATH_ADDED", p) for p in sorted(paths - known)] + \
                          [("PATH_REMOVED", p) for p in sorted(known - paths)]
            known = paths
            encoded: dict[str, bytes | None] = {}
            now = time.monotonic()
            for conn, state in list(self.clients.items()):
                queue = state["queue"]
                if queue.full():  # nothing left it since the last poll
                    if state["full_since"] is None:
                        state["full_since"] = now
                    if now - state["full_since"] >= self.max_stall:
                        self._drop(conn, state)
                        continue
                else:
                    state["full_since"] = None
                notices = state["notices"]
                notices.extend(changes)
                if len(notices) > max(1, self.max_queue // 2):
                    notices[:] = [("PATH_CHANGED", "/")]  # too many at once: read the tree again
                while notices and not queue.full():
                    command, p = notices.pop(0)
                    queue.put_nowait(json.dumps({"COMMAND": command, "DATA": p}))
                # start where a full queue stopped the last round, so that no path starves
                order = list(state["listen"])
                turn = state["turn"] % len(order) if order else 0
                for i, p in enumerate(order[turn:] + order[:turn]):
                    if queue.full():
                        state["turn"] = turn + i
                        break
                    node = nodes.get(p)
                    if node is None or "VALUE" not in node or not node.get("TYPE"):
                        continue
                    value = node["VALUE"]
                    if p in state["sent"] and state["sent"][p] == value:
                        continue
                    if p not in encoded:
                        try:
                            encoded[p] = osc_message(p, node["TYPE"], value)
                        except Exception as e:  # noqa: BLE001 - a value its type tag cannot carry
                            encoded[p] = None
                            self._log_once("encode", p, "OSCQuery: cannot send %s: %s", p, e)
                    if encoded[p] is not None:
                        queue.put_nowait(encoded[p])
                        state["sent"][p] = value
