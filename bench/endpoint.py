"""A local stand-in for the DynamoDB and S3 endpoints that answers every request after a delay.

    python -m bench.endpoint --latency 0.010     # prints the port it listens on, then serves

``latency.py``'s answering clients stop botocore right before it signs and sends, so their
figures leave out SigV4 signing, the HTTP round trip through urllib3 and parsing the
response: CPU every real call also spends under the GIL. Clients pointed here pay for all
of it. The server runs in its own process (its CPU is not the handler's), on 127.0.0.1
only, speaks HTTP/1.1 with keep-alive like AWS, and answers ``{}`` (DynamoDB JSON) or an
empty 200 with an ETag (S3 PUT) once the delay has passed. It checks nothing: it stands
in for the network, not for the services (moto does that in the integration tests).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as AWS's endpoints: no 40 ms delayed-ACK stalls
    latency_s = 0.0

    def do_POST(self) -> None:
        self._answer(b"{}", "application/x-amz-json-1.0")

    def do_PUT(self) -> None:
        self._answer(b"", "application/xml")

    def _answer(self, body: bytes, content_type: str) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
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


def serve(latency_s: float) -> None:
    _Handler.latency_s = latency_s
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


@contextmanager
def running(latency_s: float) -> Iterator[str]:
    """The endpoint URL of a fresh server process, stopped on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.endpoint", "--latency", str(latency_s)],
        stdout=subprocess.PIPE, text=True,
    )
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
    serve(parser.parse_args(argv).latency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
