"""A real HTTP server on 127.0.0.1 for the download tests: serves generated files by URL path, with Range
support (an ETag per body, If-Range honoured) and bad-network modes (drop the connection halfway once or
always, ignore Range); unknown paths 404.
It also answers proxy requests (absolute URLs in the request line), logging the host asked for."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Request:
    path: str
    range: str | None
    proxied_host: str | None  # the host of an absolute-URL (proxy) request
    if_range: str | None = None  # the If-Range header sent


@dataclass
class LocalServer:
    files: dict[str, bytes] = field(default_factory=dict)  # URL path -> body
    drop_once: set[str] = field(default_factory=set)  # first GET sends half the body, then closes
    drop_always: set[str] = field(default_factory=set)  # every GET ignores Range, sends half, closes
    no_range: set[str] = field(default_factory=set)  # Range ignored (200 with the whole body)
    status: dict[str, int] = field(default_factory=dict)  # URL path -> an error status to answer with
    no_validators: set[str] = field(default_factory=set)  # no ETag / Last-Modified sent, If-Range ignored
    log: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                u = urlsplit(self.path)
                proxied = u.netloc if u.scheme else None
                path = u.path
                rng = self.headers.get("Range")
                srv.log.append(Request(path, rng, proxied, self.headers.get("If-Range")))
                body = srv.files.get(path)
                if body is None or path in srv.status:
                    self.send_response(srv.status.get(path, 404))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
                if_range = self.headers.get("If-Range")
                if if_range is not None and if_range != etag and path not in srv.no_validators:
                    rng = None  # RFC 9110 13.1.5: the representation changed: send all of it
                if rng and path not in srv.no_range and path not in srv.drop_always:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Accept-Ranges", "bytes")
                if path not in srv.no_validators:
                    self.send_header("ETag", etag)
                self.end_headers()
                part = body[start:]
                if path in srv.drop_always or path in srv.drop_once:
                    srv.drop_once.discard(path)
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def gets(self, path: str) -> list[Request]:
        return [r for r in self.log if r.path == path]
