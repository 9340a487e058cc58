"""Fixtures of the CSV processing tests: an in-process moto S3 with one bucket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

BUCKET = "data"


@pytest.fixture
def s3() -> Iterator[Any]:
    """A boto3 S3 client on moto with bucket ``data``."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client
