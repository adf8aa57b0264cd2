"""Which zae-limiter table schemas this profile knows, and saying so when it meets another
(pure: no I/O, no clock).

zae-limiter records its table's schema in one item, ``_/SYSTEM#`` / ``#VERSION``
(``schema_version``, e.g. ``"0.10.0"``), written when a table is created and by every
upgrade or migration, so the change arrives on the stream. The profile was tested against
zae-limiter 0.17.0, whose schema is 0.10.0; older schemas down to 0.7 (namespaces) are
read too (the pre-0.9 bucket layout included). A newer schema may move or rename what the
aggregator reads, so it is reported, once per container per version (a WARNING line) and
per batch (the ``UnknownSchemaVersions`` metric), never per record; the records are still
processed as before, since refusing them would stall the stream.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable

from streamagg_engine.ddb_json import get_string
from streamagg_engine.errors import StoreError
from streamagg_engine.records import StreamRecord

logger = logging.getLogger(__name__)

TESTED_ZAE_LIMITER = "0.17.0"
KNOWN_SCHEMA_VERSION = "0.10.0"
"""``zae_limiter.version.CURRENT_SCHEMA_VERSION`` of the release above."""
VERSION_PK = "_/SYSTEM#"
VERSION_SK = "#VERSION"
"""The version item's key (zae-limiter's reserved namespace ``_``)."""
UNKNOWN_SCHEMA = "unknown zae-limiter schema version"
"""The warning's message (a saved query or an alarm can select it)."""

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def schema_version_of(record: StreamRecord) -> str | None:
    """The schema version a record of the version item carries (None for any other
    record, or a removal)."""
    if record.partition_key != VERSION_PK or get_string(record.keys, "SK") != VERSION_SK:
        return None
    image = record.new_image
    if image is None:
        return None
    return get_string(image, "schema_version") or ""


def is_known(version: str) -> bool:
    """True for a schema this profile reads: at most :data:`KNOWN_SCHEMA_VERSION`.

    A version that does not parse is unknown.
    """
    found = _VERSION.match(version)
    if found is None:
        return False
    parts = tuple(int(part or 0) for part in found.groups())
    return parts <= _parts(KNOWN_SCHEMA_VERSION)


def _parts(version: str) -> tuple[int, ...]:
    found = _VERSION.match(version)
    assert found is not None
    return tuple(int(part or 0) for part in found.groups())


class SchemaWatch:
    """What a container has said about schema versions, so each is said once."""

    def __init__(self) -> None:
        self._reported: set[str] = set()
        self._pending = 0
        self._lock = threading.Lock()

    def start(self, read: Callable[[], str | None]) -> None:
        """At container start: the schema the table holds (``read`` returns its version,
        None when it has no version item). An unknown one is logged now and counted in
        the first batch's metric; a failed read is logged and costs nothing else."""
        try:
            version = read()
        except StoreError as exc:
            logger.info("zae-limiter schema version not read", extra={
                "error_code": exc.code, "error": str(exc)})
            return
        if version is not None:
            found = self.observe(version, source="table")
            with self._lock:
                self._pending += found

    def take_pending(self) -> int:
        """What :meth:`start` found and no batch has counted yet (0 or 1)."""
        with self._lock:
            pending, self._pending = self._pending, 0
        return pending

    def observe(self, version: str, *, source: str) -> int:
        """1 when ``version`` is unknown (logged the first time this container meets it),
        else 0. ``source`` says where it was read: ``stream`` or ``table``."""
        if is_known(version):
            return 0
        with self._lock:
            first = version not in self._reported
            self._reported.add(version)
        if first:
            logger.warning(UNKNOWN_SCHEMA, extra={
                "schema_version": version, "known_schema_version": KNOWN_SCHEMA_VERSION,
                "tested_zae_limiter": TESTED_ZAE_LIMITER, "source": source,
                "advice": "records are still counted as before; check the compatibility "
                          "table of the README for this zae-limiter release before relying "
                          "on the snapshots",
            })
        return 1


SCHEMA_WATCH = SchemaWatch()
"""Per container (a Lambda container is one process)."""
