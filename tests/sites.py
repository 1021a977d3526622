"""A fixture web site on 127.0.0.1 that misbehaves on request, and remembers what it was asked.

Static pages come from a folder; a few paths act like the web's worst: error statuses, a
redirect loop, a page too large to be a page, a server that asks to be retried later. Every
request is logged (path, time, User-Agent) and the number of requests in flight is tracked, so
tests can check politeness from the server's side.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

from monitor.demo import LocalSiteServer


@dataclass
class RequestLog:
    requests: list[tuple[str, float, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.requests]

    def times(self, path: str) -> list[float]:
        return [at for p, at, _ in self.requests if p == path]


Route = Callable[["FixtureHandler"], None]


class FixtureHandler(SimpleHTTPRequestHandler):
    routes: dict[str, Route]
    log: RequestLog
    slow_seconds: float = 0.0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        with self.log.lock:
            self.log.requests.append(
                (self.path, time.monotonic(), self.headers.get("User-Agent", ""))
            )
            self.log.in_flight += 1
            self.log.max_in_flight = max(self.log.max_in_flight, self.log.in_flight)
        try:
            if self.path.startswith("/slow/"):
                time.sleep(self.slow_seconds)
            route = self.routes.get(self.path.split("?", 1)[0])
            if route is not None:
                route(self)
            else:
                super().do_GET()
        finally:
            with self.log.lock:
                self.log.in_flight -= 1

    def send_body(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


def _status(code: int) -> Route:
    return lambda h: h.send_body(code, f"<html><body>error {code}</body></html>".encode())


def _redirect(target: str) -> Route:
    def route(handler: FixtureHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", target)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


def _huge(handler: FixtureHandler) -> None:
    # Ten megabytes of one paragraph: a page no review site serves, which must not be parsed.
    chunk = b"<p>" + b"spam " * 2000 + b"</p>\n"
    size = 10 * 1024 * 1024
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html; charset=utf-8")
    handler.send_header("Content-Length", str(size))
    handler.end_headers()
    sent = 0
    try:
        while sent < size:
            piece = chunk[: size - sent]
            handler.wfile.write(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the crawler hung up, as it should


def _busy_then_ok(page: Path, retry_after: str) -> Route:
    served = {"count": 0}

    def route(handler: FixtureHandler) -> None:
        served["count"] += 1
        if served["count"] == 1:
            handler.send_body(429, b"slow down", "text/plain", {"Retry-After": retry_after})
        else:
            handler.send_body(200, page.read_bytes())

    return route


@contextmanager
def fixture_site(root: Path, slow_seconds: float = 0.0) -> Iterator[tuple[str, RequestLog]]:
    """Serve ``root`` plus the misbehaving routes on a free port of 127.0.0.1."""
    log = RequestLog()
    routes: dict[str, Route] = {
        "/bad/missing.html": _status(404),
        "/bad/error.html": _status(500),
        "/bad/loop-a.html": _redirect("/bad/loop-b.html"),
        "/bad/loop-b.html": _redirect("/bad/loop-a.html"),
        "/bad/huge.html": _huge,
    }
    if (root / "jsonld" / "page-1.html").exists():
        routes["/busy/reviews.html"] = _busy_then_ok(root / "jsonld" / "page-2.html", "1")
    handler = type(
        "BoundFixtureHandler",
        (FixtureHandler,),
        {"routes": routes, "log": log, "slow_seconds": slow_seconds},
    )
    server = LocalSiteServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()
