"""``python -m redrive``: arguments, errors, and the module entry point."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from redrive.cli import main
from tests.moto_fixtures import LocalAws

from .support import create_queue

REPO = Path(__file__).resolve().parents[2]


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_the_module_runs_and_documents_its_options() -> None:
    result = subprocess.run([sys.executable, "-m", "redrive", "--help"], cwd=REPO,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    for option in ("--queue-url", "--function-name", "--stack-name", "--region",
                   "--endpoint-url", "--max-messages", "--batch-size", "--dry-run",
                   "--invoke", "--discard-expired", "--discard-shadowed"):
        assert option in result.stdout


def test_it_needs_a_queue_and_a_function(aws: LocalAws) -> None:
    code, out = run("--region", "us-east-1", "--endpoint-url", aws.endpoint_url)
    assert code == 2
    assert out == ("error: give --stack-name, or --queue-url (and --function-name for a "
                   "stream pipeline)\n")


def test_an_unknown_function_is_a_clear_error(aws: LocalAws) -> None:
    code, out = run("--queue-url", create_queue(aws), "--function-name", "nope",
                    "--region", "us-east-1", "--endpoint-url", aws.endpoint_url)
    assert code == 2
    assert out.startswith("error: An error occurred (ResourceNotFoundException)")


def test_an_unknown_stack_is_a_clear_error(aws: LocalAws) -> None:
    code, out = run("--stack-name", "StreamAggregator-nowhere", "--region", "us-east-1",
                    "--endpoint-url", aws.endpoint_url)
    assert code == 2
    assert "StreamAggregator-nowhere" in out


@pytest.mark.parametrize("argv", [["--batch-size", "0"], ["--max-attempts", "-1"],
                                  ["--wait-seconds", "21"]])
def test_bad_numbers_are_refused_by_the_parser(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv, out=io.StringIO())
    assert exit_info.value.code == 2
