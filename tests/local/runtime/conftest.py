"""Fixtures for the local Step Functions runtime: the service over moto's in-process S3 and a fake Lambda."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from airflow_distmap.local.runtime import StepFunctionsService
from tests.local.runtime.helpers import BUCKET, FakeLambdas, Harness


@pytest.fixture
def harness() -> Iterator[Harness]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        lambdas = FakeLambdas()
        service = StepFunctionsService(
            s3_client_factory=lambda: boto3.client("s3", region_name="us-east-1"), lambdas=lambdas
        )
        try:
            yield Harness(service, lambdas, s3)
        finally:
            service.close()
