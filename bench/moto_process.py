"""moto's server in a process of its own, for the pipelines' benchmarks over HTTP.

    python -m bench.moto_process      # prints the endpoint URL, then serves until killed

:class:`local_aws.server.MotoServer` runs moto in a thread of the caller's process, where
its request handling would share the GIL with the handler under measurement and count
as the handler's time. Here it gets its own process (and, on two cores, its own core),
as AWS's endpoints are elsewhere: what a batch's wall time shows is the handler's CPU
and the round trips it waits for. moto's TransactWriteItems copies the whole table
without a lock, so a write at the same time can fail or be lost, and it slows down as
the table grows; DynamoDB has neither limit, hence :class:`SerialWrites`.
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


class SerialWrites:
    """A DynamoDB client whose writes go one at a time. moto's TransactWriteItems copies
    the table without a lock to roll back from: a write landing meanwhile makes it fail
    with a 500, or is undone by the rollback (the bundler's proof queues transactions
    likewise, ``local_aws.bundles_harness``). moto's limit, not DynamoDB's: the figures
    at ``bench.endpoint`` run without it."""

    _WRITES = frozenset({"transact_write_items", "update_item", "put_item", "delete_item",
                         "batch_write_item"})

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in self._WRITES:
            return attribute

        def one_at_a_time(**kwargs: Any) -> Any:
            with self._lock:
                return attribute(**kwargs)
        return one_at_a_time


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
