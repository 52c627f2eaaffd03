"""A fake API Gateway management API on loopback: records posts, answers scripted statuses."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


class FakeManagementApi:
    """Serves ``POST /{stage}/@connections/{id}``.

    ``statuses[id]`` is a list of statuses to answer in turn (the last one repeats); ids not in
    it answer 200, or 410 when listed in ``gone``. ``hang_up[id]`` closes the socket without an
    answer that many times first. Every request is recorded in ``posts`` as (id, body, headers).
    """

    def __init__(self, stage: str = "test", delay: float = 0.0) -> None:
        self.stage = stage
        self.delay = delay
        self.statuses: dict[str, list[int]] = {}
        self.gone: set[str] = set()
        self.hang_up: dict[str, int] = defaultdict(int)
        self.posts: list[tuple[str, bytes, dict[str, str]]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                prefix = f"/{fake.stage}/@connections/"
                if not self.path.startswith(prefix):
                    self._answer(404)
                    return
                connection_id = unquote(self.path[len(prefix) :])
                with fake._lock:
                    if fake.hang_up[connection_id] > 0:
                        fake.hang_up[connection_id] -= 1
                        self.close_connection = True
                        self.connection.close()
                        return
                    fake.posts.append((connection_id, body, dict(self.headers)))
                    script = fake.statuses.get(connection_id)
                    status = script.pop(0) if script and len(script) > 1 else None
                    if status is None:
                        status = (
                            script[0] if script else (410 if connection_id in fake.gone else 200)
                        )
                if fake.delay:
                    time.sleep(fake.delay)
                self._answer(status)

            def _answer(self, status: int) -> None:
                payload = b"" if status == 200 else b'{"message": "scripted"}'
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{self.stage}"

    def posts_to(self, connection_id: str) -> list[bytes]:
        """Bodies posted to one connection, in order."""
        with self._lock:
            return [body for cid, body, _ in self.posts if cid == connection_id]

    def __enter__(self) -> FakeManagementApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
