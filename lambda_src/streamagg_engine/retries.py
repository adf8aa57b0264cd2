"""In-invocation retries of refused writes: the policy, and the ports that follow it.

Why: a write refused beyond the SDK's own retries (a retryable :class:`StoreError`) used to
fail its records at once. On a stream, Lambda then redelivers the whole tail of the batch
from the lowest of them, and every item of that tail is written again: a conditional
no-op, but still a request and a write unit, each of which can be refused again. Under
steady throttling most batches then never finish within the mapping's retries and reach
the DLQ although they were counted. Trying the one refused write again, after a jittered
exponential pause, costs one request per attempt instead of one per item of the tail.

Retries are bounded twice: by :attr:`RetryPolicy.max_attempts`, and by the invocation's
deadline, which keeps a safety margin before Lambda's timeout so the handler always
returns its partial batch response. A write is tried again only if its pause and another
attempt as long as the last one still end before the deadline. Only retryable errors are
retried: a permanent one, or one a deployment must fix, fails at once.

The ports of every pipeline are safe to call again after a failure, because each write
already survives Lambda's own redelivery, which repeats it: snapshot updates and counter
transactions are conditioned on their watermarks and markers, archive keys and bodies are
deterministic, bundle claims name the invocation that holds them, user sets and
dashboard puts and deletes are idempotent. Reads are repeated as they are.

:class:`RetryPolicy` is pure arithmetic; :class:`Retrier` applies it with a clock, a
source of randomness and a pause that tests and benchmarks replace.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass, replace
from functools import partial
from typing import Any, ParamSpec, TypeVar, cast

from .errors import StoreError

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a refused write is tried again within an invocation."""

    max_attempts: int = 5
    """Attempts per write, the first included; 1 turns in-invocation retries off."""
    base_delay_s: float = 0.05
    """The first pause is drawn from [0, base); each further one from twice the range."""
    max_delay_s: float = 1.0
    """No pause is drawn from a range wider than this."""
    margin_share: float = 0.1
    """Share of the invocation's remaining time kept free of retries..."""
    min_margin_s: float = 1.0
    """...and at least this much: the handler must still settle, log and return."""
    default_budget_s: float = 30.0
    """Retries' time budget when no deadline is known (the redrive, tools, tests)."""
    pause: Callable[[float], None] = time.sleep
    """How a pause is taken; a benchmark that only counts requests passes a no-op."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        for name in ("base_delay_s", "max_delay_s", "margin_share", "min_margin_s",
                     "default_budget_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def backoff(self, retry: int, draw: float) -> float:
        """The pause before retry number ``retry`` (1 for the first), ``draw`` in [0, 1).

        "Full jitter": uniform over the whole exponential range, so writes refused together
        (a throttled partition refuses many at once) do not come back together.
        """
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** min(retry - 1, 64))
        return draw * ceiling

    def deadline(self, now_s: float, remaining_s: float | None) -> float:
        """The clock time by which every retry must be over.

        ``remaining_s`` is Lambda's remaining time at the start of the invocation; the
        margin it leaves grows with it (a share), but never below ``min_margin_s``.
        """
        if remaining_s is None:
            return now_s + self.default_budget_s
        return now_s + remaining_s - max(self.min_margin_s, self.margin_share * remaining_s)

    def next_pause(self, attempts: int, *, now_s: float, last_attempt_s: float,
                   deadline_s: float, draw: float) -> float | None:
        """The pause before another attempt, or None to give up.

        ``attempts`` were made so far, the last taking ``last_attempt_s``: another one is
        made only if the pause and an attempt as long end before ``deadline_s``.
        """
        if attempts >= self.max_attempts:
            return None
        pause = self.backoff(attempts, draw)
        if now_s + pause + max(0.0, last_attempt_s) > deadline_s:
            return None
        return pause


NO_RETRIES = RetryPolicy(max_attempts=1)
"""The behaviour before in-invocation retries: a refused write fails its records at once."""


class Retrier:
    """One invocation's retries: its deadline and what they did; shared by its threads."""

    def __init__(self, policy: RetryPolicy, deadline_s: float, *,
                 clock: Callable[[], float] = time.monotonic,
                 draw: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self.deadline_s = deadline_s
        self._clock = clock
        self._draw = draw
        self._lock = threading.Lock()
        self.retries = 0
        """Attempts made after a refusal, over every write of the invocation."""

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)``, tried again while it raises a retryable StoreError and
        the policy allows; the last error is raised when it does not."""
        attempts = 0
        while True:
            attempts += 1
            started = self._clock()
            try:
                return fn(*args, **kwargs)
            except StoreError as exc:
                if not exc.retryable:
                    raise
                now = self._clock()
                pause = self.policy.next_pause(attempts, now_s=now, last_attempt_s=now - started,
                                               deadline_s=self.deadline_s, draw=self._draw())
                if pause is None:
                    logger.info("refused write not retried again", extra={
                        "error_code": exc.code, "attempts": attempts,
                        "retry_limit": "attempts" if attempts >= self.policy.max_attempts
                        else "deadline",
                    })
                    raise
                with self._lock:
                    self.retries += 1
                logger.debug("refused write retried", extra={
                    "error_code": exc.code, "attempt": attempts + 1,
                    "pause_ms": round(pause * 1000, 1),
                })
                self.policy.pause(pause)


class RetryingPort:
    """A port (a store adapter) whose every method call goes through a :class:`Retrier`;
    its other attributes pass through unchanged."""

    def __init__(self, port: Any, retrier: Retrier) -> None:
        self._port = port
        self._retrier = retrier

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._port, name)
        if not callable(attribute):
            return attribute
        method = partial(self._retrier.call, attribute)
        setattr(self, name, method)  # found directly from now on, without this lookup
        return method


def retrying_ports(stores: S, retrier: Retrier) -> S:
    """A pipeline's stores with every port retrying: each field of a dataclass of ports
    (a missing port, None, stays None), or the one port a pipeline may have instead."""
    if is_dataclass(stores) and not isinstance(stores, type):
        ports = {field.name: getattr(stores, field.name) for field in fields(stores)
                 if field.init}
        return cast(S, replace(stores, **{name: None if port is None
                                          else RetryingPort(port, retrier)
                                          for name, port in ports.items()}))
    return cast(S, RetryingPort(stores, retrier))
