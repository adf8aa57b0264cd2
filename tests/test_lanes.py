"""A new test lands in its lane by what it uses, without a decorator (tests/lanes.py).

One collection of a small suite (a pytest session costs seconds to start).
"""

from __future__ import annotations

import textwrap

import pytest

from tests.lanes import lanes

CONFTEST = '''
    from collections.abc import Iterator
    from pathlib import Path

    import pytest

    from local_aws.server import MotoServer


    @pytest.fixture
    def server() -> Iterator[MotoServer]:
        yield MotoServer()


    @pytest.fixture
    def clients(server: MotoServer) -> str:
        return "clients"


    @pytest.fixture
    def stack_assembly() -> Path:
        return Path("cdk.out")
'''

SUITE = {
    "test_pure": "from local_aws.events_harness import kinesis_record",
    "test_cdk": "from aws_cdk import App",
    "test_cdk_module": "from aws_cdk import aws_s3 as s3",
    "test_processes": "import subprocess",
    "test_proof": "from local_aws.harness import compare",
    "test_harness": "from local_aws import projection_harness",
    "test_fixtures": "",
}
"""Test modules by name: each imports one thing and holds ``test_it``."""


def test_each_test_is_in_the_lanes_of_what_its_module_and_fixtures_use(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest(textwrap.dedent(CONFTEST))
    pytester.makepyfile(**{name: f"{imports}\n\ndef test_it() -> None: ...\n"
                           for name, imports in SUITE.items()})
    pytester.makepyfile(test_fixtures=textwrap.dedent('''
        def test_on_moto(clients: str) -> None: ...
        def test_reads_an_assembly(stack_assembly: object) -> None: ...
        def test_it() -> None: ...
    '''))
    items, _ = pytester.inline_genitems()

    found = {item.nodeid: lanes(item) for item in items}

    assert found == {
        "test_pure.py::test_it": set(),
        "test_cdk.py::test_it": {"synth"},
        "test_cdk_module.py::test_it": {"synth"},
        "test_processes.py::test_it": {"slow"},
        "test_proof.py::test_it": {"slow"},
        "test_harness.py::test_it": {"slow"},
        "test_fixtures.py::test_on_moto": {"moto"},
        "test_fixtures.py::test_reads_an_assembly": {"synth"},
        "test_fixtures.py::test_it": set(),
    }
