"""Clients and executors for the benchmarks: real botocore clients that never reach a network.

``answering_client`` is a botocore client whose requests are built, validated and
serialized as usual, then answered the way :class:`botocore.stub.Stubber` answers them
(a ``before-call`` hook returns a canned 200 response), after an optional sleep that stands
in for AWS's round trip. Unlike a Stubber it needs no queue of expected calls, so it can
serve thousands of concurrent requests. Its endpoint is a closed loopback port and its
credentials are fake: nothing can reach AWS even if the hook were bypassed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, Literal, ParamSpec, TypeVar

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.config import Config

P = ParamSpec("P")
T = TypeVar("T")

_ENDPOINT = "http://127.0.0.1:9"  # the discard port: nothing listens there


class CallLog:
    """Counts the requests that reached the (fake) wire, per operation; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    def record(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] += 1

    def total(self) -> int:
        return sum(self.calls.values())


def answering_client(service: Literal["dynamodb", "s3"], *, latency_s: float = 0.0,
                     log: CallLog | None = None, config: Config | None = None) -> Any:
    """A botocore client for ``service`` answering every call with an empty 200 response.

    ``config`` is the client's botocore configuration: pass the handler's
    (``streamagg_engine.clients.sdk_config``) to measure what the Lambda's clients cost; the
    default is botocore's own, as a straightforward implementation would use.
    """
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing",
        aws_session_token="testing", region_name="us-east-1",
    )
    client: Any = session.client(
        service, endpoint_url=_ENDPOINT,
        config=config or Config(retries={"mode": "standard", "max_attempts": 5}),
    )

    def answer(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        if latency_s:
            time.sleep(latency_s)
        if log is not None:
            log.record(model.name)
        return AWSResponse(_ENDPOINT, 200, HTTPHeaders(), None), {}

    client.meta.events.register(f"before-call.{client.meta.service_model.service_id.hyphenize()}",
                                answer)
    return client


class InlineExecutor(Executor):
    """Runs each job at once on the calling thread: the pipeline's pure cost, no threads."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, as a pool does
            future.set_exception(exc)
        return future


class NullDynamoDB:
    """Accepts the adapters' DynamoDB calls and does nothing: request building, no SDK."""

    def __init__(self, *, keep: bool = False) -> None:
        self.calls = 0
        self.requests: list[dict[str, Any]] = []
        self._keep = keep

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.calls += 1
        if self._keep:
            self.requests.append(request)
        return {}


class NullS3:
    """Accepts ``put_object`` and keeps the bodies (for the archive figures)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, *, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:  # noqa: N803
        self.objects[Key] = Body
        return {}
