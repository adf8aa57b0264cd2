"""Every hostile input, in front of valid records, replayed as Lambda replays a batch.

For each case: the handler returns on every delivery (a raise would retry the batch
forever), the batch settles on its first delivery (the bad record is never reported
failed, so it can never fail every delivery), the bad record is skipped or isolated as
its case says, and the valid records have exactly their effect, also after the whole
batch is delivered again (Lambda delivers at least once).
"""

from __future__ import annotations

import pytest

from tests.hostile.corpus import CORPUS, WORLDS, Case
from tests.hostile.worlds import log_lines, replay

SKIPPED = ("skipped malformed record", "skipped malformed event: no Records list")


def _params() -> list[object]:
    return [pytest.param(case, id=case.id, marks=[pytest.mark.xfail(strict=True,
                                                                    reason=case.xfail)]
                         if case.xfail else []) for case in CORPUS]


@pytest.mark.parametrize("case", _params())
def test_a_hostile_input_never_fails_its_batch_nor_its_neighbours(
    case: Case, capsys: pytest.CaptureFixture[str],
) -> None:
    world = WORLDS[case.pipeline]()
    batch = [*case.build(world), *world.valid()]
    capsys.readouterr()

    replayed = replay(world.invoke, batch, ordered=world.ordered,
                      identifier=world.identifier)
    logged = log_lines(capsys.readouterr().out)

    assert replayed.raised == []
    assert replayed.settled
    assert len(replayed.deliveries) == 1, replayed.failed_ids()
    skipped = [line for line in logged if line.get("message") in SKIPPED]
    if case.outcome == "skipped":
        assert skipped, "the bad record was neither skipped nor logged"
        assert all(line.get("reason") or line.get("records_type") for line in skipped)
        # A check named what was wrong: no skip fell through to the guard for odd shapes.
        assert not [line for line in skipped
                    if str(line.get("reason")).startswith("unexpected shape")]
    elif case.outcome == "processed":
        assert skipped == []
    world.check()
    if case.check is not None:
        case.check(world)

    again = replay(world.invoke, batch, ordered=world.ordered, identifier=world.identifier)
    assert again.raised == []
    assert len(again.deliveries) == 1
    world.check()
    if case.check is not None:
        case.check(world)


def test_the_corpus_covers_each_pipeline_with_150_inputs_or_more() -> None:
    per_pipeline = {name: sum(c.pipeline == name for c in CORPUS) for name in WORLDS}
    assert len({c.id for c in CORPUS}) == len(CORPUS)
    assert sum(per_pipeline.values()) >= 150
    assert min(per_pipeline.values()) >= 25


@pytest.mark.parametrize("pipeline", sorted(WORLDS))
@pytest.mark.parametrize("event", [None, [], "Records", {"Records": {}}, {"Records": "x"},
                                   {"Records": None}, {}],
                         ids=["null", "a list", "a string", "Records a map",
                              "Records a string", "Records null", "no Records"])
def test_an_event_that_is_not_a_batch_returns_without_failures(pipeline: str,
                                                               event: object) -> None:
    assert WORLDS[pipeline]().handle_event(event) == {"batchItemFailures": []}
