"""OSCQuery: the engine's OSC namespace, browsable over HTTP and live over a WebSocket.

One port (default 9001) serves both, as the OSCQuery proposal asks
(Vidvox/OSCQueryProposal): ``GET /`` (or any node's path) answers the JSON tree
(``FULL_PATH``, ``CONTENTS``, ``TYPE``, ``ACCESS``, ``VALUE``, ``RANGE``, ``DESCRIPTION``),
``GET /path?VALUE`` one attribute, ``GET /?HOST_INFO`` the server's name and OSC port. A
WebSocket client sends ``{"COMMAND": "LISTEN", "DATA": "/vj/tempo"}`` (or ``IGNORE``) and
then receives each change of that value as a binary frame holding an OSC message; binary
frames it sends are OSC packets handled exactly like UDP input. ``PATH_ADDED`` /
``PATH_REMOVED`` (JSON text frames) tell clients when a patch declares new parameters.

The server runs an asyncio loop (the ``websockets`` package) on its own thread. It only
reads ``nodes()``, a flat list of node dicts the rig rebuilds from published state, and
writes to the bus through the OSC handler. Zeroconf advertising is not built in.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading

from pythonosc.osc_message_builder import OscMessageBuilder

log = logging.getLogger("vj.oscquery")
logging.getLogger("websockets").setLevel(logging.WARNING)

EXTENSIONS = {k: True for k in ("ACCESS", "VALUE", "RANGE", "DESCRIPTION", "TAGS", "CLIPMODE",
                                "LISTEN", "PATH_ADDED", "PATH_REMOVED", "PATH_CHANGED")}
ATTRIBUTES = ("FULL_PATH", "CONTENTS", "TYPE", "ACCESS", "VALUE", "RANGE", "DESCRIPTION", "TAGS",
              "CLIPMODE", "UNIT")


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


class OscQueryServer:
    def __init__(self, nodes, on_osc, port: int = 9001, bind: str = "127.0.0.1",
                 osc_port: int | None = None, name: str = "vj", poll: float = 1 / 30):
        self.nodes = nodes          # () -> list of node dicts
        self.on_osc = on_osc        # (bytes) -> None: the OSC handler
        self.port, self.bind, self.osc_port, self.name, self.poll = int(port), bind, osc_port, name, poll
        self.requests = 0
        self.clients: dict = {}     # connection -> {"listen": set, "sent": dict}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server = None
        self._stopping: asyncio.Event | None = None

    # --- lifecycle
    def start(self) -> "OscQueryServer":
        started = threading.Event()
        err: list[BaseException] = []

        def run():
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._main(started, err))
            except BaseException as e:  # noqa: BLE001
                if not started.is_set():
                    err.append(e)
                    started.set()
                else:
                    log.error("OSCQuery server stopped: %s", e)
            finally:
                loop.close()
        self._thread = threading.Thread(target=run, name=f"oscquery:{self.port}", daemon=True)
        self._thread.start()
        started.wait(10)
        if err:
            raise err[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            try:
                self._loop.call_soon_threadsafe(self._stopping.set)
            except RuntimeError:
                pass
        if self._thread:
            self._thread.join(timeout=3)

    async def _main(self, started, err):
        from websockets.asyncio.server import serve
        self._stopping = asyncio.Event()
        async with serve(self._ws, self.bind, self.port, process_request=self._http,
                         max_size=1 << 16, ping_interval=None) as server:
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            started.set()
            poller = asyncio.create_task(self._push())
            await self._stopping.wait()
            poller.cancel()

    # --- HTTP
    def host_info(self) -> dict:
        return {"NAME": self.name, "EXTENSIONS": EXTENSIONS, "OSC_IP": self.bind,
                "OSC_PORT": self.osc_port, "OSC_TRANSPORT": "UDP",
                "WS_IP": self.bind, "WS_PORT": self.port}

    def answer(self, target: str) -> tuple[int, object]:
        """(status, JSON body) for an HTTP GET of ``target`` (path plus query)."""
        path, _, query = target.partition("?")
        query = query.split("&")[0].split("=")[0]
        if query == "HOST_INFO":
            return 200, self.host_info()
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

    def _http(self, connection, request):
        if "upgrade" in request.headers.get("Connection", "").lower():
            return None  # a WebSocket: carry on with the handshake
        self.requests += 1
        try:
            status, body = self.answer(request.path)
        except Exception as e:  # noqa: BLE001 - a bad request must not kill the server
            status, body = 500, {"error": f"{type(e).__name__}: {e}"}
        response = connection.respond(status, "" if body is None else json.dumps(body))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    # --- WebSocket
    async def _ws(self, conn):
        state = self.clients[conn] = {"listen": set(), "sent": {}}
        try:
            async for msg in conn:
                if isinstance(msg, bytes):
                    self.on_osc(msg)
                    continue
                try:
                    cmd = json.loads(msg)
                    command, data = cmd.get("COMMAND"), cmd.get("DATA")
                except (ValueError, AttributeError):
                    continue
                if command == "LISTEN" and isinstance(data, str):
                    state["listen"].add(data)
                    state["sent"].pop(data, None)
                elif command == "IGNORE" and isinstance(data, str):
                    state["listen"].discard(data)
        except Exception:  # noqa: BLE001 - a client that goes away mid-frame
            pass
        finally:
            self.clients.pop(conn, None)

    async def _push(self):
        """Send listened values when they change, and namespace changes, ~30 times a second."""
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
            for conn, state in list(self.clients.items()):
                try:
                    for command, p in changes:
                        await conn.send(json.dumps({"COMMAND": command, "DATA": p}))
                    for p in list(state["listen"]):
                        node = nodes.get(p)
                        if node is None or "VALUE" not in node or not node.get("TYPE"):
                            continue
                        value = node["VALUE"]
                        if state["sent"].get(p) == value:
                            continue
                        state["sent"][p] = value
                        await conn.send(osc_message(p, node["TYPE"], value))
                except Exception:  # noqa: BLE001 - closed connection: its handler cleans up
                    continue
