"""Local AWS for tests and the demo: moto in server mode, and a CDK-style deployer."""

from local_aws.server import (
    FAKE_ACCOUNT_ID,
    FAKE_CREDENTIALS,
    FAKE_REGION,
    MotoServer,
    client,
    session,
)

__all__ = [
    "FAKE_ACCOUNT_ID",
    "FAKE_CREDENTIALS",
    "FAKE_REGION",
    "MotoServer",
    "client",
    "session",
]
