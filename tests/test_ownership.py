"""Owner tokens, the claim on a results prefix, and uploads that replace only what they saw."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_distmap.exceptions import ResultsPrefixInUseError
from airflow_distmap.ownership import (
    check_results_prefix,
    claim_results_prefix,
    foreign_claim_above,
    owner_token,
    upload_unless_replaced,
)

BUCKET = "data"
OWNER = owner_token("dag", "task", "run-1")


def upload(s3: Any, path: Any, key: str, seen_etag: str | None, extra_args: Any = None) -> bool:
    return upload_unless_replaced(
        s3, str(path), f"s3://{BUCKET}/{key}", seen_etag=seen_etag, owner=OWNER, extra_args=extra_args or {}
    )


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


def test_a_results_prefix_inside_another_task_runs_prefix_is_refused(s3: Any) -> None:
    claim_results_prefix(s3, "s3://data/shared-results/", owner=OWNER)
    other = owner_token("dag", "task", "run-2")
    inside = r"lies inside another task run's results prefix \(claimed by s3://data/shared-results/_distmap"
    for uri in ("s3://data/shared-results/sub", "s3://data/shared-results/a/b/"):
        with pytest.raises(ResultsPrefixInUseError, match=inside):
            check_results_prefix(s3, uri, owner=other)
        check_results_prefix(s3, uri, owner=OWNER)  # the run that claimed it may nest its own prefixes
    check_results_prefix(s3, "s3://data/shared-results-2/sub", owner=other)  # a sibling, not a parent
    assert foreign_claim_above(s3, BUCKET, "", owner=other) is None  # the whole bucket has no parent


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


def test_an_upload_to_a_free_key_does_not_overwrite_what_another_writer_put_there_meanwhile(
    s3: Any, tmp_path: Any
) -> None:
    path = tmp_path / "out.csv"
    path.write_bytes(b"a\n1\n")
    assert upload(s3, path, "out.csv", None)
    # A second task run that also found the key free when it checked:
    path.write_bytes(b"a\n2\n")
    assert not upload(s3, path, "out.csv", None)
    assert s3.get_object(Bucket=BUCKET, Key="out.csv")["Body"].read() == b"a\n1\n"


def test_an_upload_replaces_only_the_object_it_saw(s3: Any, tmp_path: Any) -> None:
    path = tmp_path / "out.csv"
    path.write_bytes(b"mine, second try")
    first = s3.put_object(Bucket=BUCKET, Key="out.csv", Body=b"mine, first try")["ETag"]
    metadata = {"Metadata": {"distmap-owner": OWNER}}
    assert upload(s3, path, "out.csv", first, metadata)
    stored = s3.get_object(Bucket=BUCKET, Key="out.csv")
    assert (stored["Body"].read(), stored["Metadata"]) == (b"mine, second try", {"distmap-owner": OWNER})
    # Replaced by someone else after this task run looked: left alone.
    s3.put_object(Bucket=BUCKET, Key="out.csv", Body=b"theirs")
    assert not upload(s3, path, "out.csv", first)
    assert s3.get_object(Bucket=BUCKET, Key="out.csv")["Body"].read() == b"theirs"


def test_a_multipart_upload_to_a_free_key_is_conditional_too(s3: Any, tmp_path: Any) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"x" * (9 * 1024 * 1024))  # over boto3's 8 MiB multipart threshold
    s3.put_object(Bucket=BUCKET, Key="big.csv", Body=b"theirs")
    assert not upload(s3, path, "big.csv", None)
    assert s3.get_object(Bucket=BUCKET, Key="big.csv")["Body"].read() == b"theirs"
    assert upload(s3, path, "big-free.csv", None)
    assert s3.head_object(Bucket=BUCKET, Key="big-free.csv")["ContentLength"] == 9 * 1024 * 1024


def test_the_condition_applies_to_that_upload_only(s3: Any, tmp_path: Any) -> None:
    path = tmp_path / "out.csv"
    path.write_bytes(b"new")
    s3.put_object(Bucket=BUCKET, Key="out.csv", Body=b"old")
    assert not upload(s3, path, "out.csv", None)
    s3.upload_file(str(path), BUCKET, "out.csv")  # the client's other writes carry no condition afterwards
    assert s3.get_object(Bucket=BUCKET, Key="out.csv")["Body"].read() == b"new"


def test_a_write_whose_answer_was_lost_and_retried_counts_as_done(s3: Any, tmp_path: Any) -> None:
    # botocore retries a write whose answer was lost; the retry's If-None-Match then fails on our own object.
    path = tmp_path / "out.csv"
    path.write_bytes(b"mine")
    s3.put_object(Bucket=BUCKET, Key="out.csv", Body=b"mine", Metadata={"distmap-owner": OWNER})
    assert upload(s3, path, "out.csv", None)


def test_an_earlier_output_deleted_meanwhile_is_written_as_to_a_free_key(s3: Any, tmp_path: Any) -> None:
    path = tmp_path / "out.csv"
    path.write_bytes(b"second try")
    first = s3.put_object(Bucket=BUCKET, Key="out.csv", Body=b"first try")["ETag"]
    s3.delete_object(Bucket=BUCKET, Key="out.csv")
    assert upload(s3, path, "out.csv", first)
    assert s3.get_object(Bucket=BUCKET, Key="out.csv")["Body"].read() == b"second try"
