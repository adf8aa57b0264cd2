"""moto's server, in-process, on a free loopback port; and clients that point at it.

Nothing here talks to real AWS: the credentials are fake and every client needs an
explicit ``endpoint_url``.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
import warnings
from types import TracebackType
from typing import Any, Self

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

logger = logging.getLogger(__name__)

FAKE_ACCOUNT_ID = "123456789012"
"""The account moto uses by default."""
FAKE_REGION = "us-east-1"
FAKE_CREDENTIALS: dict[str, str] = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}
"""moto's documented fake credentials, as boto3 keyword arguments."""
_LOOPBACK = "127.0.0.1"


class MotoServer:
    """A moto server on ``127.0.0.1`` and a port the OS picks, for the ``with`` block.

    The server runs in a daemon thread of this process, so ``moto.backends`` state is
    shared with it (handy in tests) and nothing is left running if the process dies.

    Usage::

        with MotoServer() as moto:
            ddb = client("dynamodb", moto.endpoint_url)
    """

    def __init__(self, *, ready_timeout: float = 10.0, quiet: bool = True) -> None:
        """Args:
            ready_timeout: seconds to wait for the server to answer before giving up.
            quiet: silence werkzeug's per-request access log (it goes to stderr).
        """
        self._ready_timeout = ready_timeout
        self._quiet = quiet
        self._server: ThreadedMotoServer | None = None
        self._endpoint_url: str | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``; only while the server runs."""
        if self._endpoint_url is None:
            raise RuntimeError("MotoServer is not running: use it in a `with` block")
        return self._endpoint_url

    def start(self) -> None:
        """Start the server and wait until it answers."""
        if self._server is not None:
            raise RuntimeError("MotoServer is already running")
        if self._quiet:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            # moto says, per template, which resource types it skips; the deployer
            # reports them once, in DeployedStack.skipped_resources.
            logging.getLogger("moto").setLevel(logging.ERROR)
            warnings.filterwarnings("ignore", message="Tried to parse AWS::",
                                    category=UserWarning)
        # Port 0: the OS picks a free port when the socket binds, so there is no race
        # between choosing a port and using it.
        server = ThreadedMotoServer(ip_address=_LOOPBACK, port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self._endpoint_url = f"http://{host}:{port}"
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        logger.info("moto server listening on %s", self._endpoint_url)

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        server, self._server, self._endpoint_url = self._server, None, None
        if server is not None:
            server.stop()

    def reset(self) -> None:
        """Forget every resource (moto's ``/moto-api/reset``)."""
        request = urllib.request.Request(  # noqa: S310 - a loopback http URL we built
            f"{self.endpoint_url}/moto-api/reset", method="POST"
        )
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310
            pass

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._ready_timeout
        # moto's dashboard page is static: it answers at once however much state the
        # servers of this process hold (``data.json`` dumps all of it, and under a long
        # suite that took longer than the probe's timeout).
        url = f"{self.endpoint_url}/moto-api/"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback
                    return
            except urllib.error.HTTPError:
                return  # it answered
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto server at {url} did not answer") from exc
                time.sleep(0.05)


def session() -> boto3.session.Session:
    """A boto3 session with fake credentials in ``us-east-1``; never real AWS."""
    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
        region_name=FAKE_REGION,
    )


def client(service: str, endpoint_url: str, **kwargs: Any) -> Any:
    """A boto3 client for ``service`` at ``endpoint_url`` (fake credentials, us-east-1).

    ``kwargs`` go to ``Session.client`` (e.g. ``config=``). Typed as Any because the
    service is only known at run time; annotate the result with the ``mypy_boto3_*``
    client type where you use it.
    """
    if not endpoint_url.startswith(f"http://{_LOOPBACK}:"):
        raise ValueError(f"refusing non-loopback endpoint {endpoint_url!r}")
    kwargs.setdefault("config", Config(retries={"max_attempts": 2, "mode": "standard"}))
    return session().client(service, endpoint_url=endpoint_url, **kwargs)  # type: ignore[call-overload]
