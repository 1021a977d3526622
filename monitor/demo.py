"""The bundled demo: serves ``config/demo/site`` on 127.0.0.1 so the demo crawls a real HTTP site."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "config" / "demo.yaml"
DEMO_SITE = ROOT / "config" / "demo" / "site"


class _QuietHandler(SimpleHTTPRequestHandler):
    """Static files; a POST is answered like a GET, so a recorded API exchange (an OAuth token
    request, say) can be served from a file too. Query strings are ignored."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.do_GET()

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        # Recorded API answers are stored without an extension; they are JSON.
        if not Path(path).suffix:
            return "application/json"
        return super().guess_type(path)


class LocalSiteServer(ThreadingHTTPServer):
    # http.server's default backlog of 5 overflows under a concurrent crawl and stalls it on
    # retries; a larger queue keeps the local site honest about its speed.
    request_queue_size = 128
    daemon_threads = True


@contextlib.contextmanager
def serve_directory(root: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``root`` over HTTP on a free port of ``host``; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = LocalSiteServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="demo-site", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
