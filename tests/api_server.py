"""A local stand-in for a platform's API: answers on 127.0.0.1 with the platform's real JSON.

Tests register routes (path → function of the request → reply) and read back every request
made, so paging, cursors and retries are checked from the server's side.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from monitor.demo import LocalSiteServer

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@dataclass
class ApiRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    """A dict/list is sent as JSON; bytes or str as they are."""
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[ApiRequest], Reply]


def fixture_json(*parts: str) -> Any:
    return json.loads((FIXTURES.joinpath(*parts)).read_text(encoding="utf-8"))


@dataclass
class ApiServer:
    url: str
    routes: dict[str, Route]
    requests: list[ApiRequest]

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


@contextmanager
def api_server(routes: dict[str, Route] | None = None) -> Iterator[ApiServer]:
    server_state = ApiServer("", dict(routes or {}), [])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = ApiRequest(
                method=self.command,
                path=parts.path,
                query={k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
                headers={k: v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
                at=time.monotonic(),
            )
            server_state.requests.append(request)
            route = server_state.routes.get(parts.path)
            reply = route(request) if route else Reply(404, {"error": "not found"})
            body = reply.body
            if isinstance(body, (dict, list)):
                payload = json.dumps(body).encode()
                content_type = "application/json; charset=utf-8"
            else:
                payload = body.encode() if isinstance(body, str) else (body or b"")
                content_type = "application/json; charset=utf-8"
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.headers.pop("Content-Type", content_type))
            self.send_header("Content-Length", str(len(payload)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _handle
        do_POST = _handle

    server = LocalSiteServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server_state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()
