"""Fixtures for tests that talk to the local endpoint over HTTP (boto3 on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_distmap.local.endpoint import LocalEndpoint
from airflow_distmap.local.lambdas.registry import FunctionRegistry, FunctionSpec

REPO = Path(__file__).resolve().parents[2]
SAMPLE_HANDLERS_DIR = str(Path(__file__).resolve().parent / "lambdas")

#: Test functions every ``local_endpoint`` serves, besides the repository's ``lambda_functions/``
#: (see ``tests/local/lambdas/sample_handlers.py``):
#: ``echo`` returns ``{"event": ..., "function": ..., "request_id": ...}``; ``fail`` raises ``RowRejected``
#: (``bad row <event["row"]>``); ``behave`` sleeps ``event["sleep"]`` seconds then returns
#: ``{"pid", "value": event["value"]}`` or, by ``event["action"]``, crashes (``exit``/``kill``),
#: hangs (``hang``, 2 s timeout), allocates ``event["mb"]`` MB (``allocate``) or creates the file
#: ``event["path"]`` (``touch``).
SAMPLE_FUNCTIONS = {"echo": "echo", "fail": "fail", "behave": "behave"}


def sample_registry() -> FunctionRegistry:
    """The repository's ``lambda_functions/`` plus the sample test handlers."""
    registry = FunctionRegistry.build(functions_dir=REPO / "lambda_functions")
    for name, attr in SAMPLE_FUNCTIONS.items():
        registry.add(
            FunctionSpec(
                name=name,
                handler=f"sample_handlers:{attr}",
                code_dir=SAMPLE_HANDLERS_DIR,
                timeout=2.0 if name == "behave" else 3.0,
            )
        )
    return registry


@pytest.fixture(scope="module")
def local_endpoint() -> Iterator[LocalEndpoint]:
    """A running :class:`LocalEndpoint` (free port, 2 Lambda processes per function) shared by a test module.

    Use ``local_endpoint.client("s3")`` / ``client("stepfunctions")``; create uniquely named buckets, since
    moto's state is process-wide. Do not combine with moto's ``mock_aws`` in the same module: both use moto's
    global backends, and ``mock_aws`` would intercept the HTTP calls made to the endpoint.
    """
    with LocalEndpoint(registry=sample_registry(), processes=2) as endpoint:
        yield endpoint
