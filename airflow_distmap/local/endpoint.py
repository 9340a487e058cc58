"""``LocalEndpoint``: the local AWS endpoint (HTTP server, Step Functions service, Lambda pool) in-process."""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from airflow_distmap.local.lambda_api import LambdaApi
from airflow_distmap.local.lambdas.pool import LambdaPool
from airflow_distmap.local.lambdas.registry import FunctionRegistry
from airflow_distmap.local.server import Dispatcher, EndpointServer, LocalEndpointApp
from airflow_distmap.project_files import project_path

log = logging.getLogger(__name__)

#: Credentials the endpoint accepts (it does not check them); anything non-empty works.
TEST_ACCESS_KEY_ID = "testing"
TEST_SECRET_ACCESS_KEY = "testing"
#: Default folder of the user's Lambda functions, relative to the working directory (else the project's own).
DEFAULT_FUNCTIONS_DIR = "lambda_functions"

ServiceFactory = Callable[..., Dispatcher]


def _default_service_factory() -> ServiceFactory:
    # Imported lazily: the runtime package is heavy and the server is usable (and testable) without it.
    from airflow_distmap.local.runtime import StepFunctionsService  # type: ignore[attr-defined]

    factory: ServiceFactory = StepFunctionsService
    return factory


class LocalEndpoint:
    """The local AWS endpoint as a context manager: Step Functions + S3 (moto) + Lambda on one loopback URL.

    Use it in tests and demos::

        with LocalEndpoint(functions={"double": "my_pkg.handlers:double"}) as endpoint:
            s3 = endpoint.client("s3")
            sfn = endpoint.client("stepfunctions")

    moto's backends are process-global: do not use moto's ``mock_aws`` while an endpoint runs in the same
    process, and expect two endpoints in one process to share their S3 state.

    :param host: interface to bind; loopback by default.
    :param port: TCP port; 0 picks a free port.
    :param functions: extra or overriding Lambda functions, ``NAME -> "module:callable"``.
    :param functions_dir: folder whose ``<name>/handler.py`` files define functions ``<name>``. A relative
        folder missing from the working directory is the project's own, if it has one
        (:func:`~airflow_distmap.project_files.project_path`), else ignored; ``None`` disables discovery.
    :param region: the region reported in ARNs and the Airflow connection.
    :param processes: Lambda worker processes per function; defaults to the number of CPUs.
    :param registry: a ready-made function registry (overrides ``functions`` and ``functions_dir``).
    :param service_factory: builds the Step Functions service (keyword arguments ``s3_client_factory``,
        ``lambdas``, ``region``); the project's ``StepFunctionsService`` by default.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        functions: Mapping[str, str] | None = None,
        functions_dir: str | Path | None = DEFAULT_FUNCTIONS_DIR,
        region: str = "us-east-1",
        processes: int | None = None,
        *,
        registry: FunctionRegistry | None = None,
        service_factory: ServiceFactory | None = None,
    ) -> None:
        self.host = host
        self.region = region
        self.processes = processes
        if registry is None:
            if functions_dir is not None:
                functions_dir = project_path(functions_dir)
            registry = FunctionRegistry.build(functions_dir=functions_dir, functions=functions)
        self.registry = registry
        self._service_factory = service_factory
        self._server = EndpointServer(app=self._unstarted_app, host=host, port=port)
        self.lambdas: LambdaPool | None = None
        self._lambda_api: LambdaApi | None = None
        self.service: Dispatcher | None = None
        self.url = ""

    @staticmethod
    def _unstarted_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"local endpoint is starting"]

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> LocalEndpoint:
        """Start the HTTP server, the Lambda pool and the Step Functions service."""
        self._server.start()
        self.url = f"http://{_url_host(self.host)}:{self._server.port}"
        try:
            self.lambdas = LambdaPool(
                self.registry,
                processes=self.processes,
                environment={
                    "AWS_ENDPOINT_URL": self.url,
                    "AWS_REGION": self.region,
                    "AWS_DEFAULT_REGION": self.region,
                    "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID),
                    "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY),
                },
                region=self.region,
            )
            factory = self._service_factory or _default_service_factory()
            self.service = factory(
                s3_client_factory=lambda: self.client("s3"), lambdas=self.lambdas, region=self.region
            )
            self._lambda_api = LambdaApi(self.registry, self.lambdas)
            self._server.app = LocalEndpointApp(self.service, lambda_api=self._lambda_api)
        except BaseException:
            self.stop()
            raise
        log.info("Local AWS endpoint ready at %s (functions: %s)", self.url, ", ".join(self.registry.names()))
        return self

    def stop(self) -> None:
        """Stop the service (running executions), the Lambda workers and the server; safe to call twice."""
        service, self.service = self.service, None
        close = getattr(service, "close", None)
        if callable(close):
            close()
        lambda_api, self._lambda_api = self._lambda_api, None
        if lambda_api is not None:
            lambda_api.close()
        pool, self.lambdas = self.lambdas, None
        if pool is not None:
            pool.close()
        self._server.stop()

    def __enter__(self) -> LocalEndpoint:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- clients and connections -------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` pointed at this endpoint, with the test credentials.

        :param service: boto3 service name, e.g. ``"s3"`` or ``"stepfunctions"``.
        """
        import boto3
        from botocore.config import Config

        if not self.url:
            raise RuntimeError("Start the endpoint before asking for a client")
        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=TEST_ACCESS_KEY_ID,
            aws_secret_access_key=TEST_SECRET_ACCESS_KEY,
            config=Config(
                s3={"addressing_style": "path", "payload_signing_enabled": SIGN_S3_PAYLOADS},
                retries={"mode": "standard", "max_attempts": 3},
            ),
        )

    def airflow_connection(self) -> dict[str, Any]:
        """The Airflow ``aws`` connection for this endpoint, as a dict (``Connection(**...)`` arguments)."""
        return airflow_connection(self.url, self.region)

    def airflow_connection_uri(self) -> str:
        """The Airflow connection as a URI, e.g. for ``AIRFLOW_CONN_AWS_DEFAULT``."""
        return airflow_connection_uri(self.url, self.region)

    def airflow_connection_json(self) -> str:
        """The Airflow connection as JSON (Airflow also accepts this form in ``AIRFLOW_CONN_*``)."""
        return json.dumps(self.airflow_connection())


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


#: botocore's ``payload_signing_enabled`` for S3 clients of the endpoint. Over plain HTTP botocore hashes
#: every upload (SHA-256) for its signature, which it skips over HTTPS to AWS; the endpoint checks no payload
#: hash, so its clients skip the hash too (a 227 MB output: 0.9 s less CPU in the uploading process).
SIGN_S3_PAYLOADS: Final = False


def airflow_connection(url: str, region: str = "us-east-1") -> dict[str, Any]:
    """The Airflow ``aws`` connection (conn type, test credentials, ``endpoint_url``, region, S3 options).

    :param url: the endpoint URL, e.g. ``http://127.0.0.1:4566``.
    :param region: region name for clients made from the connection.
    """
    return {
        "conn_type": "aws",
        "login": TEST_ACCESS_KEY_ID,
        "password": TEST_SECRET_ACCESS_KEY,
        "extra": {
            "endpoint_url": url,
            "region_name": region,
            "config_kwargs": {"s3": {"payload_signing_enabled": SIGN_S3_PAYLOADS}},
        },
    }


def airflow_connection_uri(url: str, region: str = "us-east-1") -> str:
    """The Airflow ``aws`` connection for ``url`` in URI form (``aws://testing:testing@/?__extra__=...``).

    The extra travels as JSON in Airflow's ``__extra__`` query parameter, as it holds ``config_kwargs``.

    :param url: the endpoint URL.
    :param region: region name for clients made from the connection.
    """
    extra = json.dumps(airflow_connection(url, region)["extra"], separators=(",", ":"))
    query = urllib.parse.urlencode({"__extra__": extra})
    return f"aws://{TEST_ACCESS_KEY_ID}:{TEST_SECRET_ACCESS_KEY}@/?{query}"
