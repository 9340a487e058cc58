"""Owner tokens and the claim on a results prefix."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_distmap.exceptions import ResultsPrefixInUseError
from airflow_distmap.ownership import check_results_prefix, claim_results_prefix, owner_token

BUCKET = "data"
OWNER = owner_token("dag", "task", "run-1")


def test_results_prefix_ownership(s3: Any) -> None:
    uri = "s3://data/results/run-1"
    check_results_prefix(s3, uri, owner=OWNER)  # empty: free
    claim_results_prefix(s3, uri, owner=OWNER)
    s3.put_object(Bucket=BUCKET, Key="results/run-1/abc/manifest.json", Body=b"{}")
    check_results_prefix(s3, uri, owner=OWNER)  # a retry of the same task run
    expected = r"another task run claimed it \(s3://data/results/run-1/_distmap_owner\.json\)"
    with pytest.raises(ResultsPrefixInUseError, match=expected):
        check_results_prefix(s3, uri, owner=owner_token("dag", "task", "run-2"))
    s3.put_object(Bucket=BUCKET, Key="foreign/x/manifest.json", Body=b"{}")
    with pytest.raises(ResultsPrefixInUseError, match=r"for example s3://data/foreign/x/manifest\.json"):
        check_results_prefix(s3, "s3://data/foreign/", owner=OWNER)
    check_results_prefix(s3, "s3://data/foreign-other", owner=OWNER)  # a sibling prefix is not "inside"


def test_of_two_runs_that_passed_the_check_together_only_the_first_claims_the_prefix(s3: Any) -> None:
    uri = "s3://data/results/shared"
    other = owner_token("dag", "task", "run-2")
    check_results_prefix(s3, uri, owner=OWNER)
    check_results_prefix(s3, uri, owner=other)  # both see an empty prefix (a backfill, a fixed results_uri)
    claim_results_prefix(s3, uri, owner=OWNER)
    with pytest.raises(ResultsPrefixInUseError, match="just claimed by another task run"):
        claim_results_prefix(s3, uri, owner=other)
    claim_results_prefix(s3, uri, owner=OWNER)  # a retry of the winner claims it again


def test_owner_token_is_stable_and_distinct() -> None:
    assert owner_token("d", "t", "r") == owner_token("d", "t", "r", -1)
    assert owner_token("d", "t", "r") != owner_token("d", "t", "r", 0)


def test_a_console_folder_placeholder_holds_nothing(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="results/new/", Body=b"")
    check_results_prefix(s3, "s3://data/results/new", owner=OWNER)
    s3.put_object(Bucket=BUCKET, Key="results/new/x.json", Body=b"{}")
    with pytest.raises(ResultsPrefixInUseError, match=r"for example s3://data/results/new/x\.json"):
        check_results_prefix(s3, "s3://data/results/new", owner=OWNER)
