"""The ItemReader pre-flight of the DistributedMapOperator: what it refuses, and what it lets through."""

from __future__ import annotations

import gzip
import io
import json
import logging
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ResponseStreamingError

from airflow_distmap.exceptions import ItemSourceContentError, ItemSourceNotFoundError
from airflow_distmap.item_sources import (
    CHILD_INPUT_LIMIT,
    PROBE_BYTES,
    check_object_items,
    check_prefix_items,
    item_size_limit,
)

CSV = {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}
JSON = {"InputType": "JSON"}
JSONL = {"InputType": "JSONL"}
PARQUET = {"InputType": "PARQUET"}
BUCKET = "data"  # the s3 fixture's bucket


def _check(s3, body: bytes, config: dict, selector=None, key: str = "in/items", item_limit=None) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    reader = {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": config}
    check_object_items(s3, "Rows", reader, selector, BUCKET, key, item_limit=item_limit)


@pytest.mark.parametrize(
    ("body", "config", "selector", "message"),
    [
        (b"", CSV, None, r"which is empty: the Map would run no items"),
        (b"id,text\n", CSV, None, r"holds only a header line \(id, text\) and no rows"),
        (b"id,id\n1,2\n", CSV, None, r"its header line has duplicate column names \('id'\)"),
        (
            b"1,2\n",
            {"InputType": "CSV", "CSVHeaderLocation": "GIVEN", "CSVHeaders": ["a", "a"]},
            None,
            r"CSVHeaders has duplicate column names \('a'\).* unique in CSVHeaders",
        ),
        (
            b"id,text\n1,a\n",
            CSV,
            {"row": {"text.$": "$$.Map.Item.Value.Text"}, "i.$": "$$.Map.Item.Index"},
            r"columns are 'id', 'text', but the ItemSelector reads \$\$\.Map\.Item\.Value\.Text",
        ),
        (b'[{"a": 1},', JSON, None, r"is not valid JSON"),
        (b'{"a": [1]}', JSON, None, r"the file holds a JSON object, not an array"),
        (b" [ ] ", JSON, None, r"the file holds an empty array"),
        (
            b'{"a": {"b": 1}}',
            {**JSON, "ItemsPointer": "/a/b"},
            None,
            r"ItemsPointer '/a/b' holds a JSON number",
        ),
        (b'{"a": 1}', {**JSON, "ItemsPointer": "/x"}, None, r"ItemsPointer '/x' finds nothing"),
        (b'["\xff"]', JSON, None, r"is not UTF-8 text"),
        (b'{"a": 1}\n{bad\n', JSONL, None, r"its line 2 is not valid JSON"),
        (b"\n \n", JSONL, None, r"holds no JSON lines"),
        (b"id,text\n1,\xff\n", CSV, None, r"The ItemReader of 'Rows' reads .*: .* is not UTF-8 text"),
    ],
)
def test_sources_the_reader_would_fail_on_or_find_empty_are_refused(s3, body, config, selector, message):
    with pytest.raises(ItemSourceContentError, match=message) as info:
        _check(s3, body, config, selector)
    assert "To fix this" in str(info.value)
    assert str(info.value).endswith("nothing was created.")


@pytest.mark.parametrize(
    ("body", "config", "selector"),
    [
        (b"id,text\n1,a\n", CSV, {"text.$": "$$.Map.Item.Value.text", "all.$": "$$.Map.Item.Value"}),
        (b"1,a\n", {"InputType": "CSV", "CSVHeaderLocation": "GIVEN", "CSVHeaders": ["id", "text"]}, None),
        (b'[{"a": 1}]', JSON, None),
        (b'{"a": {"b": [1]}}', {**JSON, "ItemsPointer": "/a/b"}, None),
        (b'{"a.b": [1], "a": {"b": 2}}', {**JSON, "ItemsPointer": "/a.b"}, None),
        (b'{"a": [{"b": 1}, {"b": [1]}]}', {**JSON, "ItemsPointer": "/a/1/b"}, None),
        (b'{"": [1]}', {**JSON, "ItemsPointer": "/"}, None),
        (b'{"a": 1}\n\n{"a": 2}\n', JSONL, None),
        # Only the start is read: a problem past it is the reader's to report.
        (b"[" + b'{"a": 1},' * (PROBE_BYTES // 8) + b"oops", JSON, None),
        # "/" names the member whose key is empty (RFC 6901), in a file past the probe too.
        (b'{"": [' + b'{"a": 1},' * (PROBE_BYTES // 8) + b'{"a": 1}]}', {**JSON, "ItemsPointer": "/"}, None),
        (b'{"a": 1}\n' * (PROBE_BYTES // 8) + b"oops\n", JSONL, None),
        # A config the checks do not know is left to Step Functions, and so is an Athena manifest.
        (b"anything", {"InputType": "MANIFEST"}, None),
        (b"s3://b/data/part-0.csv\n", {**CSV, "ManifestType": "ATHENA_DATA"}, None),
        (b"s3://b/data/part-0.json\n", {**JSONL, "ManifestType": "ATHENA_DATA"}, None),
        # Whether AWS accepts a byte-order mark before JSON is UNCONFIRMED: left to the reader.
        (b"\xef\xbb\xbf[" + b'{"a": 1},' * (PROBE_BYTES // 8) + b'{"a": 1}]', JSON, None),
        (b'\xef\xbb\xbf[{"a": 1}]', JSON, None),
    ],
)
def test_readable_sources_pass(s3, body, config, selector):
    _check(s3, body, config, selector)


def test_compressed_objects_are_only_checked_for_existence_and_size(s3):
    _check(s3, gzip.compress(b"id,id\n"), CSV, key="in/items.csv.gz")
    _check(s3, gzip.compress(b"id,id\n"), CSV, key="in/items-without-extension")
    _check(s3, gzip.compress(json.dumps({"not": "an array"}).encode()), JSON, key="in/items.json")
    with pytest.raises(ItemSourceContentError, match="is empty"):
        _check(s3, b"", CSV, key="in/empty.csv.gz")


def test_a_missing_object_is_named(s3):
    reader = {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": CSV}
    with pytest.raises(ItemSourceNotFoundError, match=r"s3://.*/in/absent.csv, which does not exist"):
        check_object_items(s3, "Rows", reader, None, BUCKET, "in/absent.csv")


def test_an_empty_prefix_is_refused_and_a_listed_one_passes(s3):
    with pytest.raises(ItemSourceContentError, match=r"lists s3://.*/daily/, which holds no objects"):
        check_prefix_items(s3, "Rows", BUCKET, "daily/")
    s3.put_object(Bucket=BUCKET, Key="daily/a.json", Body=b"{}")
    check_prefix_items(s3, "Rows", BUCKET, "daily/")


def test_a_prefix_whose_records_are_read_needs_an_object_with_bytes(s3):
    s3.put_object(Bucket=BUCKET, Key="parts/", Body=b"")  # a console folder marker
    s3.put_object(Bucket=BUCKET, Key="parts/_SUCCESS", Body=b"")  # Spark's marker
    check_prefix_items(s3, "Rows", BUCKET, "parts/")  # listed as they are, the markers are two items
    with pytest.raises(ItemSourceContentError, match=r"parts/, which holds no objects with any bytes"):
        check_prefix_items(s3, "Rows", BUCKET, "parts/", reads_objects=True)
    s3.put_object(Bucket=BUCKET, Key="parts/part-00000.csv", Body=b"id\n1\n")
    check_prefix_items(s3, "Rows", BUCKET, "parts/", reads_objects=True)


BIG = "x" * CHILD_INPUT_LIMIT  # one value that alone fills a child's input


@pytest.mark.parametrize(
    ("body", "config", "index"),
    [
        (f"id,text\n1,a\n2,{BIG}\n3,c\n".encode(), CSV, 1),
        # Under GIVEN every line is an item: the big one is item 2.
        (
            f"1,a\n2,b\n3,{BIG}\n".encode(),
            {"InputType": "CSV", "CSVHeaderLocation": "GIVEN", "CSVHeaders": ["id", "text"]},
            2,
        ),
        (f'{{"a": 1}}\n\n{{"a": "{BIG}"}}\n'.encode(), JSONL, 1),
    ],
)
def test_an_item_too_large_for_a_child_is_refused_with_its_index(s3, body, config, index):
    with pytest.raises(ItemSourceContentError, match=rf"whose item {index} \(0-based.* 256 KiB") as info:
        _check(s3, body, config, item_limit=CHILD_INPUT_LIMIT)
    assert "fails the Map Run on that item" in str(info.value)
    assert "add an ItemSelector" in str(info.value)
    assert str(info.value).endswith("nothing was created.")


def test_a_long_line_past_the_start_that_does_not_parse_is_named(s3):
    body = b'{"a": 1}\n' * (PROBE_BYTES // 8) + b'{"a": "' + BIG.encode() + b"\n"
    with pytest.raises(ItemSourceContentError, match=rf"its line {PROBE_BYTES // 8 + 1} is not valid JSON"):
        _check(s3, body, JSONL, item_limit=CHILD_INPUT_LIMIT)


@pytest.mark.parametrize(
    ("body", "config"),
    [
        # Just under the limit as an item: {"id":"1","text":"..."}.
        (("id,text\n1," + "x" * (CHILD_INPUT_LIMIT - len('{"id":"1","text":""}')) + "\n").encode(), CSV),
        # The big row is past MaxItems: the reader never reads it.
        (f"id,text\n1,a\n2,{BIG}\n".encode(), {**CSV, "MaxItems": 1}),
        # A field past what AWS reads, but past MaxItems too.
        (b"id,text\n1,a\n2," + b"x" * (8 * 1024 * 1024 + 10) + b"\n", {**CSV, "MaxItems": 1}),
        # MaxItemsPath is known at run time only: the scan is skipped.
        (f"id,text\n1,a\n2,{BIG}\n".encode(), {**CSV, "MaxItemsPath": "$.limit"}),
        # A line padded with spaces is measured as the compact item it makes.
        (b'{"a": ' + b" " * CHILD_INPUT_LIMIT + b'"b"}\n', JSONL),
        # A JSON array is not scanned (it would need a streaming parser).
        (f'[{{"a": "{BIG}"}}]'.encode(), JSON),
    ],
)
def test_items_that_fit_or_are_not_scanned_pass(s3, body, config):
    _check(s3, body, config, item_limit=CHILD_INPUT_LIMIT)


def test_the_size_scan_runs_only_when_items_reach_the_children_as_they_are(s3):
    body = f"id,text\n1,{BIG}\n".encode()
    _check(s3, body, CSV)  # no limit given: the operator's check_item_sizes=False
    assert item_size_limit({"Type": "Map"}) == CHILD_INPUT_LIMIT
    assert item_size_limit({"Type": "Map", "ItemBatcher": {"MaxItemsPerBatch": 10}}) < CHILD_INPUT_LIMIT
    assert item_size_limit({"Type": "Map", "ItemSelector": {"text.$": "$$.Map.Item.Value.text"}}) is None


def test_bytes_that_are_not_utf8_past_the_start_are_found_by_the_size_scan(s3):
    body = b"id,text\n" + b"1,abc\n" * (PROBE_BYTES // 6) + b"3,\xff\n"
    _check(s3, body, CSV)  # the start alone is fine
    with pytest.raises(ItemSourceContentError, match=r"not UTF-8 text past its start.*nothing was created"):
        _check(s3, body, CSV, item_limit=CHILD_INPUT_LIMIT)


@pytest.mark.parametrize(
    ("body", "config"),
    [
        # Past what AWS reads for one item (8 MB): a field too long for any reader.
        (b"id,text\n1,a\n2," + b"x" * (8 * 1024 * 1024 + 10) + b"\n", CSV),
        # No line break in sight: refused once the line passes 8 MB, without reading the rest.
        (b'{"a": "' + b"x" * (9 * 1024 * 1024), JSONL),
    ],
)
def test_items_past_what_aws_reads_are_refused(s3, body, config):
    with pytest.raises(
        ItemSourceContentError, match=r"whose item 1 .* is over 8,388,608 bytes as JSON: a child"
    ):
        _check(s3, b'{"a": 1}\n' + body if config is JSONL else body, config, item_limit=CHILD_INPUT_LIMIT)


def test_a_row_wider_than_arrows_blocks_is_not_called_irregular(s3, caplog):
    body = b"id,text\n1,a\n2," + b"x" * 2_000_000 + b"\n"
    with caplog.at_level(logging.WARNING), pytest.raises(ItemSourceContentError, match="whose item 1 "):
        _check(s3, body, CSV, item_limit=CHILD_INPUT_LIMIT)
    assert "more or fewer fields" not in caplog.text


@pytest.mark.parametrize(
    "config",
    [
        {**CSV, "MaxItems": "{% $states.input.limit %}"},  # JSONata: known at run time
        {"InputType": "CSV", "CSVHeaderLocation": "GIVEN", "CSVHeaders": []},  # left to the validation
    ],
)
def test_sizes_the_scan_cannot_know_are_left_to_the_run(s3, config):
    _check(s3, f"id,text\n1,{BIG}\n".encode(), config, item_limit=CHILD_INPUT_LIMIT)


def test_bytes_past_max_items_are_not_held_against_the_source(s3, caplog):
    body = b"id,text\n1,a\n" + b"2,b\n" * 200_000 + b"3,\xff\n"
    with caplog.at_level(logging.WARNING):
        _check(s3, body, {**CSV, "MaxItems": 1}, item_limit=CHILD_INPUT_LIMIT)
    assert "Could not check every item" in caplog.text


def test_a_read_cut_short_during_the_scan_lets_the_run_go_on(s3, caplog):
    cut = ResponseStreamingError(error="Connection broken")
    with (
        mock.patch("airflow_distmap.item_sources.largest_item", side_effect=cut),
        caplog.at_level(logging.WARNING),
    ):
        _check(s3, b"id,text\n1,a\n", CSV, item_limit=CHILD_INPUT_LIMIT)
    assert "Could not read" in caplog.text


def test_a_parquet_source_is_checked_for_its_magic_bytes_and_refused_with_a_version_id(s3):
    sink = io.BytesIO()
    pq.write_table(pa.table({"n": [1, 2]}), sink)
    _check(s3, sink.getvalue(), PARQUET)
    with pytest.raises(ItemSourceContentError, match=r"which is not a Parquet file \(it does not start with"):
        _check(s3, b"id,text\n1,a\n", PARQUET)
    reader = {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": PARQUET,
        "Parameters": {"Bucket": BUCKET, "Key": "in/items", "VersionId": "v1"},
    }
    with pytest.raises(
        ItemSourceContentError, match="VersionId, which Step Functions does not read for Parquet"
    ):
        check_object_items(s3, "Rows", reader, None, BUCKET, "in/items")
