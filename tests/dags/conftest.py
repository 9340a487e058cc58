"""Fixtures for running the example DAGs with ``dag.test()`` against the project's local AWS endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_distmap.local import LocalEndpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Create Airflow's metadata tables in the test SQLite database (``dag.test()`` needs them)."""
    from airflow.utils import db

    db.initdb()


@pytest.fixture(scope="module")
def dag_endpoint() -> Iterator[LocalEndpoint]:
    """A local endpoint serving the repository's ``lambda_functions/`` with one worker per function."""
    with LocalEndpoint(functions_dir=REPO / "lambda_functions", processes=1) as endpoint:
        yield endpoint


@pytest.fixture
def aws_default_on_endpoint(
    airflow_db: None, dag_endpoint: LocalEndpoint, monkeypatch: pytest.MonkeyPatch
) -> LocalEndpoint:
    """Point Airflow's ``aws_default`` connection at the local endpoint and its DAG folder at ``dags/``."""
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", dag_endpoint.airflow_connection_uri())
    # dag.test() serialises the DAGs of the configured dags folder before it creates the run.
    # The "dags-folder" bundle reads airflow.settings.DAGS_FOLDER, computed when Airflow was imported.
    from airflow import settings

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(REPO / "dags"))
    return dag_endpoint
