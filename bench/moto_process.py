"""moto's server in a process of its own, for the pipelines' benchmarks over HTTP.

    python -m bench.moto_process      # prints the endpoint URL, then serves until killed

:class:`local_aws.server.MotoServer` runs moto in a thread of the caller's process, where
its request handling would share the GIL with the handler under measurement and count
as the handler's time. Here it gets its own process (and, on two cores, its own core),
as AWS's endpoints are elsewhere: what a batch's wall time shows is the handler's CPU
and the round trips it waits for. moto's TransactWriteItems copies the whole table
without a lock, so two at once can fail with a 500 and it slows down as the table
grows; DynamoDB has neither limit, which is why :class:`SerialTransactions` exists.
Loopback only, fake credentials (``local_aws.server``).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import WSGIRequestHandler

from local_aws.server import MotoServer


@contextmanager
def running() -> Iterator[str]:
    """The endpoint URL of a fresh moto server process, stopped on exit."""
    process = subprocess.Popen([sys.executable, "-m", "bench.moto_process"],
                               stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"moto server process did not start (said {url!r})")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


class SerialTransactions:
    """A DynamoDB client whose TransactWriteItems calls go one at a time (the bundler's
    proof does the same, ``local_aws.bundles_harness``): moto's limit, not DynamoDB's."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        with self._lock:
            return self._inner.transact_write_items(**kwargs)


def main() -> int:
    # Answers go out at once, as AWS's do: with Nagle's algorithm on, each response's
    # second segment waits for the client's delayed ACK, 40 ms a request.
    WSGIRequestHandler.disable_nagle_algorithm = True
    with MotoServer() as moto:
        print(moto.endpoint_url, flush=True)
        sys.stdin.read()  # serves until the parent closes our stdin or terminates us
    return 0


if __name__ == "__main__":
    sys.exit(main())
