"""What every suite shares: fake credentials, the lanes, and the app synthesized once.

The app's one synth (``app_assembly``) and its one checkov run (``app_checkov``) live here
because four suites read them: the usage aggregator's (tests/infra) and the three example
systems' (tests/events, tests/bundles, tests/projection).
"""

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.lambda_code import PIPELINES
from streamagg_engine.logs import ENGINE_LOGGER
from tests.infra.support import CheckovReport, checkov, synth_app
from tests.lanes import lanes

pytest_plugins = ["tests.moto_fixtures", "pytester"]


def pytest_configure(config: pytest.Config) -> None:
    """Fake credentials for every client, so no test can ever reach a real account."""
    os.environ.update({
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
    })
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test lands in its lanes by what it uses, so ``-m`` can leave lanes out."""
    for item in items:
        for lane in lanes(item):
            item.add_marker(lane)


@pytest.fixture(autouse=True)
def _package_logger_reaches_caplog() -> Iterator[None]:
    """configure_logging() detaches the packages' loggers from root; undo it per test."""
    yield
    for name in (ENGINE_LOGGER, *PIPELINES):
        logger = logging.getLogger(name)
        logger.propagate = True
        logger.handlers.clear()
    logger.setLevel(logging.NOTSET)


@pytest.fixture(scope="session")
def app_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``app.py``'s four stacks as ``cdk synth`` writes them (cdk.json context, cdk-nag on),
    synthesized once per session for every test that reads the app's templates."""
    return synth_app(tmp_path_factory.mktemp("app.out"))


@pytest.fixture(scope="session")
def app_checkov(app_assembly: Path) -> dict[str, CheckovReport]:
    """checkov's report on each of the app's templates (by stack name), from one run."""
    return checkov(app_assembly.glob("*.template.json"))
