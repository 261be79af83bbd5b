"""A local HTTP receiver for workflows' ``http_request`` steps: records every request and answers
with scripted statuses. Used by the tests, the benchmark and ``dramac demo`` (on loopback, so the
local stack runs with ``AUTOMATION_ALLOW_PRIVATE_HTTP=1``)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """``url`` is ``http://127.0.0.1:<port>``; ``script`` lists statuses to answer in order, then 200."""

    url: str = ""
    requests: list[ReceivedRequest] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    delay_s: float = 0.0  # how long each answer takes (a slow remote service)
    echo_headers: bool = False  # answer the request's headers too (a receiver echoing credentials back)
    max_in_flight: int = 0  # the most requests it was answering at once
    _in_flight: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: a client that pools connections reuses them
            disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

            def _handle(self) -> None:
                with receiver._lock:
                    receiver._in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver._in_flight)
                try:
                    self._answer()
                finally:
                    with receiver._lock:
                        receiver._in_flight -= 1

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", errors="replace")
                with receiver._lock:
                    receiver.requests.append(ReceivedRequest(self.command, self.path,
                                                             {k.lower(): v for k, v in self.headers.items()}, body))
                    status = receiver.script.pop(0) if receiver.script else 200
                    count = len(receiver.requests)
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                answer: dict[str, Any] = {"ok": status < 400, "received": count, "echo": body}
                if receiver.echo_headers:
                    answer["headers"] = dict(self.headers.items())
                reply = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True, name="receiver").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
