"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

#: The bucket of the :func:`s3` fixture.
S3_FIXTURE_BUCKET = "data"


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a test reach a real AWS account: fake credentials and a fixed region."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def s3() -> Iterator[Any]:
    """A boto3 S3 client on moto in-process, with bucket ``data``."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=S3_FIXTURE_BUCKET)
        yield client


@pytest.fixture
def deploy_function() -> Callable[..., str]:
    """``deploy_function(name)`` creates a Lambda function in moto in-process, inside the test's ``mock_aws``.

    The operators' pre-flight asks Lambda whether the functions they invoke exist (``GetFunction``).
    """
    return _deploy_function


def _deploy_function(name: str, region: str = "us-east-1") -> str:
    import io
    import zipfile

    iam = boto3.client("iam", region_name=region)
    try:
        role = iam.get_role(RoleName="lambda-test")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName="lambda-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    created = boto3.client("lambda", region_name=region).create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )
    return str(created["FunctionArn"])


#: The throw-away Airflow home (and database directory) :func:`pytest_configure` made.
_THROWAWAY_HOME = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Give Airflow a throw-away home and SQLite database before anything imports it."""
    import os
    import tempfile

    home = tempfile.mkdtemp(prefix="airflow-distmap-tests-")
    config.stash[_THROWAWAY_HOME] = home
    os.environ.setdefault("AIRFLOW_HOME", home)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home}/airflow.db")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Delete the throw-away Airflow home, so that each test run does not leave a database in the temp dir."""
    import shutil

    home = config.stash.get(_THROWAWAY_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)
