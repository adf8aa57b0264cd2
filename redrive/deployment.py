"""What the command found out about the deployment to recover, handed to one pipeline.

The CLI reads the stack's outputs and the function's configuration once; each pipeline's
module (``redrive.usage``, ``redrive.projection``, ``redrive.events``, ``redrive.bundles``)
takes a :class:`Deployment` and runs its recovery with it. The helpers here are what more
than one of them needs: the SDK clients, the function's stream mappings and the replay
target.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config

from .errors import RedriveError
from .replay import InvokeTarget
from .run import Say, Settings

CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5,
                       read_timeout=30)
INVOKE_CONFIG = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5,
                       read_timeout=910)
"""A synchronous invocation can take the function's whole timeout (at most 900 s)."""

Clients = Callable[..., Any]
"""``clients(service, config=CLIENT_CONFIG)``: an SDK client for the run's region/endpoint."""


@dataclass(frozen=True)
class Deployment:
    clients: Clients
    region: str
    queue_url: str
    """The dead-letter queue."""
    settings: Settings
    say: Say
    function_name: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    """The deployed function's environment variables."""
    outputs: Mapping[str, str] = field(default_factory=dict)
    """The stack's outputs (empty without ``--stack-name``)."""
    source_queue_url: str | None = None
    """The bundler's source queue, when given (``--source-queue-url``)."""
    invoke: bool = False
    ignore_filters: bool = False

    def invoke_target(self) -> InvokeTarget:
        """The deployed function, for ``--invoke``."""
        if not self.function_name:
            raise RedriveError("--invoke needs the function: --function-name or --stack-name")
        return InvokeTarget(self.clients("lambda", INVOKE_CONFIG), self.function_name)

    def handler_environment(self) -> dict[str, str]:
        """The function's environment as Lambda sets it for the handler run here."""
        return {**self.environment,
                "AWS_LAMBDA_FUNCTION_NAME": self.function_name or "redrive"}

    def stream_mappings(self, service: str) -> list[dict[str, Any]]:
        """The function's event source mappings on a ``dynamodb`` or ``kinesis`` stream."""
        if not self.function_name:
            return []
        found: list[dict[str, Any]] = []
        pages = self.clients("lambda").get_paginator("list_event_source_mappings").paginate(
            FunctionName=self.function_name)
        for page in pages:
            found.extend(m for m in page.get("EventSourceMappings", [])
                         if f":{service}:" in m.get("EventSourceArn", ""))
        return found

    def describe_mappings(self, mappings: list[dict[str, Any]],
                          filters: Mapping[str, Any]) -> None:
        """One line per mapping: its state and the filter the replay goes through."""
        for mapping in mappings:
            source = mapping["EventSourceArn"]
            self.say(f"         mapping {mapping.get('UUID')} ({mapping.get('State')}) on "
                     f"{source}; " + ("filter ignored" if self.ignore_filters else
                                      f"replayed through its filter: "
                                      f"{filters[source].describe()}"))
