"""``vj models get NAME``: a well-known pretrained model from the catalogue, one command away.

The catalogue (``engine/generators/catalogue.toml``, or ``--catalogue FILE`` / ``VJ_CATALOGUE``)
names each model's source, size, sha256 and licence. ``get``:

1. refuses a licence that does not allow commercial use unless ``--accept-licence`` is given
   (exit 2, nothing requested from the network);
2. downloads to ``DEST/NAME.part``, continuing a partial file with an HTTP Range request (a
   server that ignores Range sends the whole file, which replaces the partial one);
3. checks the size and sha256 before anything is kept (a mismatch deletes the partial file);
4. converts it to ``DEST/NAME.safetensors`` through the safe loader (``tools.convert``: no code
   from the file runs), under a temporary name, then linked into place so no file the user
   made is replaced;
5. adds ``[models.NAME]`` to the registry (``models/models.toml``, rewritten atomically) with a
   ``NAME.NOTICE.md`` beside the model saying where it came from and under what licence.

Before the converted file is linked into place, ``DEST/.NAME.get-record.json`` records its
sha256 (and the catalogue's sha256 of the source); it goes once the model is registered. A run
stopped between the two (Ctrl-C, a registry that could not be written) leaves the model
unregistered: the next run finds ``NAME.safetensors`` with exactly the recorded digest and only
registers it. Any other file of that name, the user's, is refused as before and left untouched.

A network failure is one line naming the URL; the partial file stays for the next run. What
a server can do is bounded: redirects are followed to http(s) only, the response head (status
line and headers, all redirects included) must have come within ``HEAD_S`` of the request, a
stall ends after ``TIMEOUT_S`` and a trickle after ``SLOW_S``, a body never grows past the
catalogue's size, and what it says reaches the terminal escaped and cut short.
"""
from __future__ import annotations

import functools
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine import atomic, paths
from engine.generators.output_file import FileTaken, place
from engine.limits import shown

CATALOGUE = Path(__file__).resolve().parent.parent / "generators" / "catalogue.toml"
CHUNK = 1 << 20
TIMEOUT_S = 30.0  # no byte at all for this long: the server has stalled
# fewer bytes than this in any SLOW_S seconds: given up (a server trickling a byte just inside
# TIMEOUT_S would otherwise hold the command for ever); the bytes so far stay for a resume
SLOW_S = 60.0
SLOW_BYTES = 64 << 10
# the status line and headers, from the request to the last header, redirects included: each
# read is bounded by TIMEOUT_S, but a server sending its head a byte at a time never trips it
HEAD_S = 30.0
USER_AGENT = "vj-engine (vj models get)"
# \A..\Z, not ^..$: "$" also matches before a trailing newline, and "x\n" is no file name
NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9._-]{0,63}\Z")
SHA_RE = re.compile(r"\A[0-9a-f]{64}\Z")
ARCHITECTURES = ("stylegan2", "stylegan3-t", "stylegan3-r", "dcgan", "biggan")


class GetError(Exception):
    """One line for the user; ``code`` is the exit status (2: refused before any download)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    architecture: str
    resolution: int
    url: str
    size: int
    sha256: str
    licence: str
    licence_url: str
    commercial: bool
    description: str = ""

    @property
    def suffix(self) -> str:
        """The source file's suffix, which tells the loader its format (``.pkl``, ``.pt``, ...)."""
        tail = self.url.split("?", 1)[0].rsplit("/", 1)[-1]
        return Path(tail).suffix or ".pkl"


# ---------------------------------------------------------------- the catalogue
def catalogue_path(given: str | None = None) -> Path:
    return Path(given or os.environ.get("VJ_CATALOGUE") or CATALOGUE).expanduser()


def load_catalogue(given: str | None = None) -> dict[str, CatalogueEntry]:
    """The checked catalogue; a bad file or entry is a GetError naming the file and the entry."""
    path = catalogue_path(given)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise GetError(f"catalogue {path}: {e.strerror or e}", 2) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise GetError(f"catalogue {path}: not valid TOML: {e}", 2) from None
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise GetError(f"catalogue {path}: [models] must be a table of [models.NAME] tables", 2)
    out = {}
    for name, spec in models.items():
        out[name] = _entry(path, name, spec)
    return out


def _entry(path: Path, name: str, spec) -> CatalogueEntry:
    where = f"catalogue {path}, [models.{name if NAME_RE.match(name) else shown(name)}]"
    if not NAME_RE.match(name):
        raise GetError(f"{where}: a name is lower-case letters, digits, '.', '_' and '-'", 2)
    if not isinstance(spec, dict):
        raise GetError(f"{where}: must be a table", 2)
    kinds = {"architecture": str, "resolution": int, "url": str, "size": int, "sha256": str, "licence": str,
             "licence_url": str, "commercial": bool, "description": str}
    for key, kind in kinds.items():
        if key == "description" and key not in spec:
            continue
        value = spec.get(key)
        if value is None:
            raise GetError(f"{where}: missing {key}", 2)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise GetError(f"{where}: {key} must be a {kind.__name__}, not {shown(value)}", 2)
    unknown = sorted(set(spec) - set(kinds))
    if unknown:
        raise GetError(f"{where}: unknown key {', '.join(unknown)}", 2)
    if spec["architecture"] not in ARCHITECTURES:
        raise GetError(f"{where}: architecture {shown(spec['architecture'])} is not one of "
                       f"{', '.join(ARCHITECTURES)}", 2)
    if not SHA_RE.match(spec["sha256"]):
        raise GetError(f"{where}: sha256 must be 64 lower-case hex digits", 2)
    if spec["size"] <= 0 or spec["resolution"] <= 0:
        raise GetError(f"{where}: size and resolution must be positive", 2)
    if not spec["url"].startswith(("https://", "http://")):
        raise GetError(f"{where}: url must be http(s)", 2)
    return CatalogueEntry(name=name, **spec)


def licence_terms(e: CatalogueEntry) -> str:
    use = "allows commercial use" if e.commercial else "NON-COMMERCIAL use only"
    return f"{e.licence} ({use}): {e.licence_url}"


def list_catalogue(catalogue: dict[str, CatalogueEntry], models_dir: Path) -> str:
    lines = [f"{'':2s}{'name':26s} {'architecture':12s} {'px':>6s} {'MB':>7s}  licence"]
    for e in catalogue.values():
        mark = "*" if (models_dir / f"{e.name}.safetensors").exists() else " "
        nc = "" if e.commercial else ", non-commercial"
        lines.append(f"{mark} {e.name:26s} {e.architecture:12s} {e.resolution:6d} {e.size / 1e6:7.1f}  "
                     f"{e.licence}{nc}")
        if e.description:
            lines.append(f"  {'':26s} {e.description}")
    lines.append(f"* = already in {models_dir}.  vj models get NAME [--accept-licence] fetches one.")
    return "\n".join(lines)


# ---------------------------------------------------------------- the download
class Progress:
    """Bytes so far on stderr: one line redrawn with CR on a terminal; a plain line at every
    tenth otherwise (a log, a CI job), so nothing floods and nothing is lost."""

    def __init__(self, total: int, start: int = 0, stream=None, label: str = ""):
        self.total, self.done, self.stream = total, start, stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label = label
        self.t0 = time.monotonic()
        self.start = start
        self.shown_at = 0.0
        self.decile = -1 if start == 0 else int(10 * start / total)

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.tty:
            if now - self.shown_at >= 0.1 or self.done >= self.total:
                self.shown_at = now
                self.stream.write("\r" + self.line(now))
                self.stream.flush()
        else:
            d = int(10 * self.done / self.total) if self.total else 10
            if d > self.decile:
                self.decile = d
                self.stream.write(self.line(now) + "\n")
                self.stream.flush()

    def line(self, now: float) -> str:
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        bar = "#" * int(frac * 30)
        rate = (self.done - self.start) / max(now - self.t0, 1e-6) / 1e6
        return (f"{self.label}[{bar:30s}] {frac * 100:5.1f}%  {self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB  "
                f"{rate:.1f} MB/s")

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _clean(text, limit: int = 300) -> str:
    """What a server (or a file) said, fit for one terminal line: control characters escaped
    (no escape sequence reaches the terminal), runs of white space one space, cut short."""
    text = " ".join(str(text).split())
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _Redirects(urllib.request.HTTPRedirectHandler):
    """urllib's redirects (a CDN on another host is normal), but to http(s) only: urllib
    itself would follow a server's ``Location: ftp://...`` to any host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"{msg} - a redirect to {newurl} is not followed "
                                                       f"(only http and https are)", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _HeadDeadline:
    """Ends a response head that has not all come ``seconds`` after the request began: a
    timer shuts the connection's socket down, so the read blocked in it returns at once."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds
        self.lock = threading.Lock()
        self.sock = None
        self.expired = self.done = False
        self.timer = threading.Timer(seconds, self._expire)
        self.timer.daemon = True
        self.timer.start()

    def remaining(self) -> float:
        return max(self.end - time.monotonic(), 0.001)

    def attach(self, sock):
        with self.lock:
            self.sock = sock
            if self.expired:
                self._shut(sock)
        return sock

    def _expire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.expired = True
            if self.sock is not None:
                self._shut(self.sock)

    @staticmethod
    def _shut(sock) -> None:
        try:
            # socket.socket's own shutdown: on a TLS socket the override would also drop the
            # SSL object under the read that another thread is in
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def finish(self) -> bool:
        """Stop the clock; False when the head came too late (its socket is shut by now)."""
        self.timer.cancel()
        with self.lock:
            self.done = True
            return not self.expired and time.monotonic() < self.end


class _Watched:
    """A connection whose socket the head deadline can shut: from its creation, so a TLS
    handshake trickled byte by byte is bounded too; its connect waits at most what is left."""

    def __init__(self, watch: _HeadDeadline, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.watch = watch
        make = getattr(self, "_create_connection", None)
        if make is not None:
            self._create_connection = lambda *a, **k: watch.attach(make(*a, **k))

    def connect(self):
        full = self.timeout
        self.timeout = min(full, self.watch.remaining())
        try:
            super().connect()
        finally:
            self.timeout = full
        self.sock.settimeout(full)
        self.watch.attach(self.sock)


class _WatchedHTTP(_Watched, http.client.HTTPConnection):
    pass


class _WatchedHTTPS(_Watched, http.client.HTTPSConnection):
    pass


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, watch: _HeadDeadline):
        super().__init__()
        self.watch = watch

    def http_open(self, req):
        return self.do_open(functools.partial(_WatchedHTTP, self.watch), req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, watch: _HeadDeadline):
        super().__init__()
        self.watch = watch

    def https_open(self, req):
        return self.do_open(functools.partial(_WatchedHTTPS, self.watch), req, context=self._context)


class _HeadTooSlow(Exception):
    pass


def _bytes_kept(part: Path) -> int:
    try:
        return part.stat().st_size
    except OSError:
        return 0


def _network_error(url: str, e: BaseException, part: Path) -> GetError:
    if isinstance(e, urllib.error.HTTPError):
        why = f"HTTP {e.code} {e.reason}"
        e.close()
    elif isinstance(e, urllib.error.URLError):
        why = str(e.reason)
    elif isinstance(e, http.client.IncompleteRead):
        why = "the connection closed before the whole file came"
    elif isinstance(e, _HeadTooSlow):
        why = f"the server's status line and headers took longer than {HEAD_S:g} s"
    elif isinstance(e, (socket.timeout, TimeoutError)):
        why = f"no data for {TIMEOUT_S:.0f} s"
    else:
        why = f"{type(e).__name__}: {e}"
    have = _bytes_kept(part)
    keep = (f"the {have:,} bytes so far stay in {part}; run the same command again to resume"
            if have else "check the network (or give a mirror with --url) and run the command again")
    return GetError(f"download of {_clean(url)} failed: {_clean(why)}; {keep}")


def _write_error(part: Path, e: OSError) -> GetError:
    have = _bytes_kept(part)
    keep = f"the {have:,} bytes so far stay there; " if have else ""
    return GetError(f"cannot write {part}: {e.strerror or e}; {keep}free some space (or choose another --dest) "
                    f"and run the same command again to resume")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def download(url: str, part: Path, size: int, progress_stream=None) -> dict:
    """Bring ``part`` up to ``size`` bytes from ``url``, resuming what is there. Returns how it
    went ({"resumed_from": bytes, "restarted": bool}); network failures are GetErrors and
    leave ``part`` as far as it got."""
    have = part.stat().st_size if part.exists() else 0
    if have > size:  # not a prefix of this file
        part.unlink()
        have = 0
    result = {"resumed_from": 0, "restarted": False}
    if have == size:
        result["resumed_from"] = have
        return result
    in_time = True
    try:
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        if have:
            req.add_header("Range", f"bytes={have}-")
        watch = _HeadDeadline(HEAD_S)
        try:
            resp = urllib.request.build_opener(_Redirects, _HTTP(watch), _HTTPS(watch)).open(req, timeout=TIMEOUT_S)
        finally:
            in_time = watch.finish()
        if not in_time:
            resp.close()
            raise _network_error(url, _HeadTooSlow(), part)
    except urllib.error.HTTPError as e:
        if not in_time:
            e.close()
            raise _network_error(url, _HeadTooSlow(), part) from None
        if e.code == 416 and have:  # what we hold is not a prefix the server agrees with: start over
            e.close()
            part.unlink()
            return download(url, part, size, progress_stream)
        raise _network_error(url, e, part) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        raise _network_error(url, _HeadTooSlow() if not in_time else e, part) from None
    with resp:
        where = f"download of {_clean(url)}"
        if resp.status not in (200, 206):
            raise GetError(f"{where}: the server answered HTTP {resp.status} {_clean(resp.reason)}, not the file")
        start = 0
        if resp.status == 206:
            # a 206 must start where the request said (byte 0 when it asked for the whole file)
            # and be of this file; written anywhere else it would shift every byte after it
            rng = resp.headers.get("Content-Range", "")
            m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", rng.strip())
            if not m or int(m.group(1)) != have or m.group(3) not in ("*", str(size)):
                keep = f"; delete {part} to start over" if have else ""
                raise GetError(f"{where}: the server answered the request for byte {have:,} on with "
                               f"Content-Range {_clean(repr(rng), 80)}{keep}")
            start = have
            result["resumed_from"] = have
        elif have:
            result["restarted"] = True  # Range ignored: the whole file comes again
        length = resp.headers.get("Content-Length")
        if length is not None and length.isdigit() and start + int(length) != size:
            raise GetError(f"{where}: the server offers {start + int(length):,} bytes, the catalogue "
                           f"says {size:,}; a different file (use --url for a mirror of the same file)")
        bar = Progress(size, start, progress_stream, label=f"{part.name[:-5]} ")
        done = start
        try:
            # unbuffered: what was read is on disk before the next read, so a stall, a cut or
            # Ctrl-C keeps every byte that came, and a failed write leaves nothing to flush later
            try:
                fd = os.open(part, os.O_WRONLY | os.O_CREAT | (0 if start else os.O_TRUNC), 0o666)
            except OSError as e:
                raise _write_error(part, e) from None
            try:
                os.lseek(fd, start, os.SEEK_SET)
                os.ftruncate(fd, start)
                window_t, window_done = time.monotonic(), done
                while True:
                    try:
                        # read1: whatever has come, at most one receive; read(n) waits for all n
                        # bytes and loses those that came if the wait times out
                        chunk = resp.read1(min(CHUNK, size + 1 - done))
                    except (OSError, http.client.HTTPException, ValueError) as e:
                        raise _network_error(url, e, part) from None
                    if not chunk:
                        break
                    _write_all(fd, chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
                    if done > size:
                        break
                    now = time.monotonic()
                    if now - window_t >= SLOW_S:
                        if done - window_done < SLOW_BYTES:
                            raise GetError(f"{where} failed: too slow (only {done - window_done:,} bytes in "
                                           f"{now - window_t:.0f} s); the {done:,} bytes so far stay in {part}; "
                                           f"run the same command again to resume (or give a mirror with --url)")
                        window_t, window_done = now, done
                os.fsync(fd)
            except OSError as e:
                raise _write_error(part, e) from None
            finally:
                os.close(fd)
        finally:
            bar.close()
    if done > size:
        part.unlink()
        raise GetError(f"{where}: the server sent more than the catalogue's {size:,} bytes; "
                       f"a different file, deleted")
    if done < size:
        raise _network_error(url, http.client.IncompleteRead(b"", size - done), part)
    return result


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- conversion and registry
def convert_into_place(source: Path, out: Path, made: Callable[[Path], None] | None = None) -> dict:
    """``source`` (verified) as ``out`` (.safetensors) through the safe loader; written under a
    temporary name, checked to build, then hard-linked to ``out``, which fails rather than
    replace a file that appeared meanwhile. ``made(tmp)`` runs just before the link."""
    from engine.generators import tools
    from engine.generators.load import ModelLoadError
    from safetensors import SafetensorError
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp.safetensors")
    try:
        try:
            tools.convert(str(source), str(tmp))
            info = tools.describe(str(tmp))
        except (ModelLoadError, ValueError, KeyError) as e:
            raise GetError(f"{source.name[1:].replace('.verified', '')}: the download is verified, but it does "
                           f"not convert: {_clean(e, 600)}") from None
        except (OSError, SafetensorError) as e:  # a full disk, most likely
            raise GetError(f"cannot write {tmp}: {_clean(getattr(e, 'strerror', None) or e)}; the verified "
                           f"download stays; free some space and run the same command again") from None
        if made is not None:
            made(tmp)
        try:
            place(tmp, out, overwrite=False)   # tools.convert left it readable and on disk
        except FileTaken:
            raise GetError(f"{out} appeared while converting; it is left as it is", 2) from None
        atomic.fsync_dir(out.parent)
    finally:
        atomic.unlink_quietly(tmp)
    return info


def notice_text(e: CatalogueEntry, url: str) -> str:
    return (f"# {e.name}\n\n"
            f"{e.description or e.architecture}\n\n"
            f"- source: {url}\n"
            f"- sha256 of the file downloaded: {e.sha256} ({e.size:,} bytes)\n"
            f"- converted to safetensors by `vj models get` (the weights unchanged; no code from the file ran)\n"
            f"- licence: {licence_terms(e)}\n\n"
            f"The weights are covered by that licence, not by vj's.\n")


def register(registry_path: Path, e: CatalogueEntry, model_file: Path, notice: Path | None) -> None:
    """Add ``[models.NAME]`` to the registry, keeping everything else in it (comments too)."""
    import tomlkit
    text = registry_path.read_text(encoding="utf-8") if registry_path.exists() else ""
    doc = tomlkit.parse(text)
    models = doc.get("models")
    if models is None:
        models = tomlkit.table(is_super_table=True)
        doc["models"] = models
    if e.name in models:
        raise GetError(f"{registry_path} already has [models.{e.name}]; it is left as it is", 2)

    def rel(p: Path) -> str:
        try:
            return str(p.resolve().relative_to(registry_path.parent.resolve()))
        except ValueError:
            return str(p.resolve())
    t = tomlkit.table()
    t["file"] = rel(model_file)
    t["architecture"] = e.architecture
    t["licence"] = f"{e.licence}{'' if e.commercial else ' (non-commercial)'}: {e.licence_url}"
    if notice is not None:
        t["notice"] = rel(notice)
    t["description"] = e.description or f"{e.architecture} {e.resolution}x{e.resolution} (vj models get)"
    models[e.name] = t
    registry_path.parent.mkdir(parents=True, exist_ok=True)
    atomic.replace(registry_path, tomlkit.dumps(doc).encode("utf-8"), check=lambda b: tomllib.loads(b.decode()))


def record_path(folder: Path, name: str) -> Path:
    return folder / f".{name}.get-record.json"


def _write_record(record: Path, e: CatalogueEntry, converted: Path) -> None:
    """What makes ``NAME.safetensors`` recognisable as this command's own, should the run stop
    before it is registered: written before the file is linked into place."""
    data = {"source_sha256": e.sha256, "sha256": sha256_of(converted), "size": converted.stat().st_size}
    try:
        atomic.replace(record, (json.dumps(data) + "\n").encode("utf-8"))
    except OSError as ex:
        raise GetError(f"cannot write {record}: {ex.strerror or ex}; the verified download stays; free some "
                       f"space and run the same command again") from None


def made_here(record: Path, e: CatalogueEntry, target: Path) -> bool:
    """Whether ``target`` is byte for byte the file an earlier run converted from this
    catalogue entry's download. Only then may it be registered without being made again: a
    file of the user's with the same name differs in its digest (or there is no record)."""
    try:
        with open(record, "rb") as f:
            rec = json.loads(f.read(4096))
    except (OSError, ValueError):
        return False
    if not isinstance(rec, dict) or rec.get("source_sha256") != e.sha256:
        return False
    want, size = rec.get("sha256"), rec.get("size")
    if not isinstance(want, str) or not SHA_RE.match(want) or not isinstance(size, int):
        return False
    try:
        return target.is_file() and target.stat().st_size == size and sha256_of(target) == want
    except OSError:
        return False


def _write_notice(path: Path, text: str) -> Path | None:
    if path.exists():  # the user's own notes stay
        return path
    tmp = atomic.temp_beside(path)
    try:
        atomic.write_new(tmp, text.encode("utf-8"))
        os.replace(tmp, path)
    except OSError:
        atomic.unlink_quietly(tmp)
        return None
    return path


# ---------------------------------------------------------------- the command
def get(name: str, dest: str | None = None, accept_licence: bool = False, url: str | None = None,
        catalogue: str | None = None, out=None, err=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    cat = load_catalogue(catalogue)
    e = cat.get(name)
    if e is None:
        raise GetError(f"no model named {shown(name)} in the catalogue {catalogue_path(catalogue)} "
                       f"(known: {', '.join(cat) or 'none'}; vj models get --list)", 2)
    source = url or e.url
    if url is not None and not url.startswith(("https://", "http://")):
        raise GetError(f"--url {shown(url)}: must be an http(s) URL", 2)
    if not e.commercial and not accept_licence:
        err.write(f"{e.name}: {licence_terms(e)}\n"
                  f"  These weights may not be used commercially. Read the licence; if your use is allowed,\n"
                  f"  run again with --accept-licence. Nothing was downloaded.\n")
        return 2

    from engine.generators.registry import Registry
    registry_path = paths.MODELS / "models.toml"
    folder = Path(dest).expanduser() if dest else paths.MODELS
    target = folder / f"{e.name}.safetensors"
    try:
        reg = Registry(registry_path) if registry_path.exists() else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as ex:
        # the model could not be registered at the end: say so before hundreds of MB come
        raise GetError(f"{registry_path} cannot be read ({type(ex).__name__}: {_clean(ex, 200)}); fix or move "
                       f"it first. Nothing was downloaded", 2) from None
    if reg is not None and e.name in reg.entries:
        have = reg.entries[e.name]
        if have.file == target.resolve() and have.file.exists():
            atomic.unlink_quietly(record_path(folder, e.name))  # a run stopped just after registering
            out.write(f"{e.name} is already installed: {have.file} (registered in {registry_path})\n")
            return 0
        raise GetError(f"{registry_path} already has a model named {e.name} ({have.file}); it is left as it is "
                       f"(remove that entry to fetch this one)", 2)
    record = record_path(folder, e.name)
    if target.exists():
        if not made_here(record, e, target):
            raise GetError(f"{target} exists and is not registered as {e.name}; it is left as it is "
                           f"(move it, or choose another --dest)", 2)
        # the file an earlier run made and could not register (Ctrl-C, an unwritable registry)
        _finish(e, source, target, record, registry_path)
        out.write(f"registered {target} (converted by an earlier run, which stopped before registering it) as "
                  f"{e.name} in {registry_path}: vj run --model {e.name}\n")
        return 0
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as ex:
        raise GetError(f"cannot make {folder}: {ex.strerror or ex}") from None
    part = folder / f"{e.name}.part"
    have = _bytes_kept(part) if part.is_file() else 0
    # the download and, beside it for a moment, its conversion (at most the same size again)
    need = max(e.size - have, 0) + e.size
    free = shutil.disk_usage(folder).free
    if free < need:
        raise GetError(f"{e.name} needs {need / 1e6:,.1f} MB free in {folder} (the download and its conversion); "
                       f"{free / 1e6:,.1f} MB are. Free some space or choose another --dest. Nothing was "
                       f"downloaded")
    err.write(f"{e.name}: {licence_terms(e)}\n")

    how = download(source, part, e.size, err)
    if how["resumed_from"]:
        err.write(f"resumed at byte {how['resumed_from']:,}\n")
    if how["restarted"]:
        err.write("the server ignored the resume request; the file was fetched again from the start\n")
    got = sha256_of(part)
    if got != e.sha256 and how["resumed_from"]:
        # the partial file was the start of something else (an older catalogue's file, another
        # mirror's): it cannot be told by its bytes, only by the whole file's sha256. Once more,
        # from nothing, before the user is told
        atomic.unlink_quietly(part)
        err.write(f"the partial download in {part} was of another file (sha256 {got[:12]}...); "
                  f"it is fetched again from the start\n")
        download(source, part, e.size, err)
        got = sha256_of(part)
    if got != e.sha256:
        atomic.unlink_quietly(part)
        raise GetError(f"{_clean(source)}: sha256 mismatch: expected {e.sha256}, got {got}; the download was deleted "
                       f"(a corrupt transfer or a different file; run again, or check --url)")

    # the loader tells the format by the suffix; a link, so the verified download survives a
    # conversion that dies (the next run checks it again instead of fetching it again)
    verified = folder / f".{e.name}.verified{e.suffix}"
    atomic.unlink_quietly(verified)
    try:
        os.link(part, verified)
    except OSError:  # a file system without hard links
        os.replace(part, verified)
    try:
        info = convert_into_place(verified, target, made=lambda tmp: _write_record(record, e, tmp))
    finally:
        atomic.unlink_quietly(verified)
    atomic.unlink_quietly(part)
    _finish(e, source, target, record, registry_path)
    out.write(f"wrote {target} ({info['architecture']}, {info.get('resolution')}x{info.get('resolution')}, "
              f"{(info.get('parameters') or 0):,} parameters)\n"
              f"registered as {e.name} in {registry_path}: vj run --model {e.name}\n")
    if info.get("resolution") not in (None, e.resolution):
        err.write(f"note: the catalogue says {e.resolution} px, the model is {info['resolution']} px\n")
    return 0


def _finish(e: CatalogueEntry, source: str, target: Path, record: Path, registry_path: Path) -> None:
    """The NOTICE and the registry entry for ``target``, in place; then its record goes."""
    again = f"run the same command again to register it (or use --model {target} meanwhile)"
    try:
        notice = _write_notice(target.with_name(f"{e.name}.NOTICE.md"), notice_text(e, source))
        try:
            register(registry_path, e, target, notice)
        except OSError as ex:
            raise GetError(f"{target} is written, but {registry_path} could not be updated: {ex.strerror or ex}; "
                           f"{again}") from None
    except KeyboardInterrupt:
        raise GetError(f"interrupted: {target} is written but not registered; {again}",
                       130) from None
    atomic.unlink_quietly(record)


def main(args) -> int:
    """``vj models get NAME [--dest DIR] [--accept-licence] [--url URL] [--catalogue FILE]`` and
    ``vj models get --list``."""
    try:
        if args.list:
            print(list_catalogue(load_catalogue(args.catalogue),
                                 Path(args.dest_dir).expanduser() if args.dest_dir else paths.MODELS))
            return 0
        if not args.file:
            print("vj: models get needs a NAME from the catalogue (vj models get --list)", file=sys.stderr)
            return 2
        return get(args.file, dest=args.dest_dir, accept_licence=args.accept_licence, url=args.url,
                   catalogue=args.catalogue)
    except GetError as e:
        print(f"vj: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("vj: interrupted; the partial download stays and the next run resumes it", file=sys.stderr)
        return 130
