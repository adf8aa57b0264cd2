import logging
from collections.abc import Iterator

import pytest
from aggregator.logs import PACKAGE_LOGGER


@pytest.fixture(autouse=True)
def _package_logger_reaches_caplog() -> Iterator[None]:
    """configure_logging() detaches the package logger from root; undo it per test."""
    yield
    logger = logging.getLogger(PACKAGE_LOGGER)
    logger.propagate = True
    logger.handlers.clear()
    logger.setLevel(logging.NOTSET)
