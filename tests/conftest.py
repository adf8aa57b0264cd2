import logging
import os
from collections.abc import Iterator

import pytest

from infra.lambda_code import PIPELINES
from streamagg_engine.logs import ENGINE_LOGGER

pytest_plugins = ["tests.moto_fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    """Fake credentials for every client, so no test can ever reach a real account."""
    os.environ.update({
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
    })
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)


@pytest.fixture(autouse=True)
def _package_logger_reaches_caplog() -> Iterator[None]:
    """configure_logging() detaches the packages' loggers from root; undo it per test."""
    yield
    for name in (ENGINE_LOGGER, *PIPELINES):
        logger = logging.getLogger(name)
        logger.propagate = True
        logger.handlers.clear()
    logger.setLevel(logging.NOTSET)
