"""A local stand-in for the DynamoDB and S3 endpoints that answers every request after a delay.

    python -m bench.endpoint --latency 0.010     # prints the port it listens on, then serves

``latency.py``'s answering clients stop botocore right before it signs and sends, so their
figures leave out SigV4 signing, the HTTP round trip through urllib3 and parsing the
response: CPU every real call also spends under the GIL. Clients pointed here pay for all
of it. The server runs in its own process (its CPU is not the handler's), on 127.0.0.1
only, speaks HTTP/1.1 with keep-alive like AWS, and answers ``{}`` (DynamoDB JSON) or an
empty 200 with an ETag (S3 PUT) once the delay has passed. It checks nothing: it stands
in for the network, not for the services (moto does that in the integration tests).

``--items FILE`` (a JSON list of DynamoDB items with a string ``pk``) makes it answer
GetItem and BatchGetItem with those of the items asked for, whatever the table: the
event pipeline's lookups, which decide what a batch writes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as AWS's endpoints: no 40 ms delayed-ACK stalls
    latency_s = 0.0
    items: ClassVar[dict[str, dict[str, Any]]] = {}

    def do_POST(self) -> None:
        request = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        body = b"{}"
        if operation == "GetItem" and self.items:
            item = self.items.get(json.loads(request)["Key"]["pk"]["S"])
            body = json.dumps({"Item": item} if item else {}).encode()
        elif operation == "BatchGetItem" and self.items:
            asked = json.loads(request)["RequestItems"]
            body = json.dumps({"Responses": {
                table: [self.items[key["pk"]["S"]] for key in keys["Keys"]
                        if key["pk"]["S"] in self.items]
                for table, keys in asked.items()}}).encode()
        self._answer(body, "application/x-amz-json-1.0")

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer(b"", "application/xml")

    def _answer(self, body: bytes, content_type: str) -> None:
        time.sleep(self.latency_s)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"0"')
        self.send_header("x-amzn-RequestId", "bench")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: thousands of requests per run."""


def serve(latency_s: float, items: Path | None = None) -> None:
    _Handler.latency_s = latency_s
    if items is not None:
        _Handler.items = {item["pk"]["S"]: item for item in json.loads(items.read_text())}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


@contextmanager
def running(latency_s: float, items: list[dict[str, Any]] | None = None) -> Iterator[str]:
    """The endpoint URL of a fresh server process, stopped on exit; ``items`` are what
    its GetItem and BatchGetItem find."""
    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as tmp:
        command = [sys.executable, "-m", "bench.endpoint", "--latency", str(latency_s)]
        if items:
            path = Path(tmp) / "items.json"
            path.write_text(json.dumps(items))
            command += ["--items", str(path)]
        with _started(command) as url:
            yield url


@contextmanager
def _started(command: list[str]) -> Iterator[str]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.endpoint")
    parser.add_argument("--latency", type=float, default=0.010, help="seconds per request")
    parser.add_argument("--items", type=Path, help="JSON list of items GetItem finds by pk")
    args = parser.parse_args(argv)
    serve(args.latency, args.items)
    return 0


if __name__ == "__main__":
    sys.exit(main())
