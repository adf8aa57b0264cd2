from __future__ import annotations

import random
from typing import Any

import pytest
from botocore.exceptions import ClientError

from streamagg_engine.errors import StoreError
from streamagg_projection.config import ProjectionConfig
from streamagg_projection.stores import DashboardStore

CONFIG = ProjectionConfig(dashboard_table_name="dash", write_attempts=3,
                          backoff_base_seconds=0.1, backoff_max_seconds=0.15)


def put(n: int) -> dict[str, Any]:
    return {"PutRequest": {"Item": {"day_partition": {"S": "d"}, "sk": {"S": str(n)}}}}


class Client:
    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[list[dict[str, Any]]] = []

    def batch_write_item(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self.calls.append(RequestItems["dash"])
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return {"UnprocessedItems": {"dash": answer} if answer else {}}


def store(client: Client, pauses: list[float]) -> DashboardStore:
    return DashboardStore(client, CONFIG, sleep=pauses.append,  # type: ignore[arg-type]
                          rng=random.Random(1))


def test_unprocessed_items_are_sent_again_with_growing_jittered_pauses() -> None:
    client, pauses = Client([put(2), put(3)], [put(3)], []), list[float]()
    outcome = store(client, pauses).write([put(1), put(2), put(3)])
    assert outcome.unprocessed == []
    assert outcome.calls == 3
    assert client.calls[1:] == [[put(2), put(3)], [put(3)]]
    assert len(pauses) == 2
    assert 0 <= pauses[0] <= 0.1
    assert 0 <= pauses[1] <= 0.15


def test_what_stays_unprocessed_after_every_attempt_is_handed_back() -> None:
    client, pauses = Client([put(2)], [put(2)], [put(2)]), list[float]()
    outcome = store(client, pauses).write([put(1), put(2)])
    assert outcome.unprocessed == [put(2)]
    assert outcome.calls == 3


@pytest.mark.parametrize(("code", "retryable"), [
    ("ProvisionedThroughputExceededException", True), ("ValidationException", False)])
def test_a_failed_call_becomes_a_sorted_store_error(code: str, retryable: bool) -> None:
    error = ClientError({"Error": {"Code": code, "Message": "no"}}, "BatchWriteItem")
    with pytest.raises(StoreError) as raised:
        store(Client(error), []).write([put(1)])
    assert raised.value.code == code
    assert raised.value.retryable is retryable
