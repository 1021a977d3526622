"""A lean static-file server for benchmarks: every file of a folder held in memory, answered over
HTTP/1.1 keep-alive by one asyncio process on 127.0.0.1.

``monitor.demo.serve_directory`` (``http.server``: a thread and a new connection per request,
files read from disk each time) costs the machine several times more CPU per page than this;
when the benchmark is about our crawlers sharing two cores, the site they crawl should take as
little of those cores as it can, and take it in a process of its own so that its share can be
counted apart (``ServerProcess.cpu_seconds``).

    python bench/static_server.py FOLDER      # prints the port on stdout, serves until killed
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.machine import process_cpu_seconds

NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def responses(root: Path) -> dict[bytes, bytes]:
    """The whole HTTP response (status line, headers, body) of every file under ``root``."""
    answers: dict[bytes, bytes] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        body = path.read_bytes()
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
            "Connection: keep-alive\r\n\r\n"
        ).encode("ascii")
        answers[("/" + path.relative_to(root).as_posix()).encode()] = head + body
    return answers


async def serve(root: Path) -> None:
    answers = responses(root)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].split(b"?", 1)[0]
                writer.write(answers.get(target, NOT_FOUND))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


class ServerProcess:
    """The server running in a child process; ``url`` is its base URL."""

    def __init__(self, root: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(root)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far (from /proc)."""
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@contextlib.contextmanager
def serve_in_process(root: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(root)
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1])))
