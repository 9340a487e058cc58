from __future__ import annotations

import datetime
import decimal
import gzip
import io
import json
from typing import Any
from unittest import mock

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from botocore.exceptions import IncompleteReadError
from moto import mock_aws

from airflow_distmap.definitions.readers import GET_OBJECT, LIST_OBJECTS_V2
from airflow_distmap.local.errors import StatesError
from airflow_distmap.local.runtime import readers as readers_module
from airflow_distmap.local.runtime.map_run import skip_items
from airflow_distmap.local.runtime.readers import (
    iter_reader_items,
    open_body,
    read_csv,
    read_json,
    read_jsonl,
)

BUCKET = "data"  # the s3 fixture's bucket


def one_source(segments: Any) -> tuple[str, Any]:
    """The ``(source, items)`` of a reader that reads one object or one listing."""
    [segment] = list(segments)
    return segment


def flattened(segments: Any) -> list[tuple[str, Any]]:
    """Every ``(source, item)`` of a flattened listing."""
    return [(source, item) for source, items in segments for item in items]


def csv_rows(text: str, **config: object) -> list[dict[str, str]]:
    return list(read_csv(io.BufferedReader(io.BytesIO(text.encode())), config))  # type: ignore[arg-type]


def test_csv_quoted_fields_keep_delimiters_quotes_and_newlines() -> None:
    rows = csv_rows('a,b\n"x,1","say ""hi""\nthere"\n')
    assert rows == [{"a": "x,1", "b": 'say "hi"\nthere'}]


def test_csv_parses_aws_documented_example_with_doubled_quotes_outside_quotes_too() -> None:
    # "How Step Functions parses input CSV files": "You can preserve double quotes by repeating them", and
    # the page's one-row file reads MyObject as {"MyKey":"MyValue"} (an unquoted field).
    body = (
        'abc,123,"This string contains commas, a double quotation marks (""), and a newline (\n)",'
        '{""MyKey"":""MyValue""},"[1,2,3]"\n'
    )
    headers = ["MyLetters", "MyNumbers", "MyString", "MyObject", "MyArray"]
    [row] = csv_rows(body, CSVHeaderLocation="GIVEN", CSVHeaders=headers)
    assert json.loads(row["MyObject"]) == {"MyKey": "MyValue"}
    assert row["MyString"] == 'This string contains commas, a double quotation marks ("), and a newline (\n)'
    assert row["MyArray"] == "[1,2,3]"


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        ('ab""cd,x', ['ab"cd', "x"]),
        ('a"b,x', ['a"b', "x"]),  # a lone quote inside an unquoted field stays
        ('"x""""y",z', ['x""y', "z"]),  # two escaped quotes inside quotes stay two
        ('a\\"\\"b,c', ['a""b', "c"]),  # two backslash-escaped quotes stay two
        ('"",b""', ["", 'b"']),
        ('a,"b\n""c""",d""e', ["a", 'b\n"c"', 'd"e']),
        ('"{""k"":""""}",x', ['{"k":""}', "x"]),  # JSON with an empty string, quoted
        ('"ab"cd""ef,x', ['abcd"ef', "x"]),  # quoted, then unquoted with ""
        ('"a""b"c""d,x', ['a"bc"d', "x"]),
    ],
)
def test_csv_doubled_quotes_read_as_one_only_where_they_escape_a_quote(line: str, fields: list[str]) -> None:
    [row] = csv_rows("\n".join(["h1,h2,h3", line]) + "\n")
    assert list(row.values())[: len(fields)] == fields


def test_csv_values_stay_strings_and_whitespace_rows_are_kept() -> None:
    rows = csv_rows("Col1,Col2,Col3\ntrue,1,'x'\nNull,None,\n   \n")
    assert rows == [
        {"Col1": "true", "Col2": "1", "Col3": "'x'"},
        {"Col1": "Null", "Col2": "None", "Col3": ""},
        {"Col1": "   ", "Col2": "", "Col3": ""},
    ]


@pytest.mark.parametrize("location", ["FIRST_ROW", "GIVEN"])
def test_a_csv_header_over_10_kib_fails_the_reader(location: str) -> None:
    headers = [f"column_{i:05d}" for i in range(800)]  # 800 x 13 bytes with the delimiters: 10,399 bytes
    config: dict[str, object] = {"CSVHeaderLocation": location}
    if location == "GIVEN":
        config["CSVHeaders"] = headers
    with pytest.raises(StatesError) as failed:
        csv_rows(",".join(headers) + "\n" + ",".join("1" * 800) + "\n", **config)
    assert failed.value.error == "States.ItemReaderFailed"
    assert "CSV headers exceed the maximum size of 10 KiB (10399 bytes)" in failed.value.cause
    assert len(csv_rows(",".join(headers[:780]) + "\n1\n")) == 1  # 10,139 bytes: read


def test_csv_short_rows_are_padded_and_long_rows_truncated() -> None:
    rows = csv_rows("a,b,c\n1\n1,2,3,4,5\n")
    assert rows == [{"a": "1", "b": "", "c": ""}, {"a": "1", "b": "2", "c": "3"}]


@pytest.mark.parametrize(
    ("name", "char"), [("COMMA", ","), ("PIPE", "|"), ("SEMICOLON", ";"), ("SPACE", " "), ("TAB", "\t")]
)
def test_csv_every_delimiter(name: str, char: str) -> None:
    text = f"h1{char}h2\nv1{char}v2\n"
    assert csv_rows(text, CSVDelimiter=name) == [{"h1": "v1", "h2": "v2"}]


def test_csv_unknown_delimiter_fails_the_reader() -> None:
    with pytest.raises(StatesError) as caught:
        csv_rows("a\n1\n", CSVDelimiter="COLON")
    assert caught.value.error == "States.ItemReaderFailed"


def test_csv_given_headers_read_every_line_as_data() -> None:
    rows = csv_rows("1,2,3\n4,5,6\n", CSVHeaderLocation="GIVEN", CSVHeaders=["H1"])
    assert rows == [{"H1": "1"}, {"H1": "4"}]


def test_csv_given_duplicate_headers_fail_like_aws() -> None:
    with pytest.raises(StatesError) as caught:
        csv_rows("1,2\n", CSVHeaderLocation="GIVEN", CSVHeaders=["H1", "H1"])
    assert (caught.value.error, caught.value.cause) == (
        "States.ItemReaderFailed",
        "CSV headers cannot contain duplicates.",
    )


def test_gzip_is_detected_by_extension_and_by_magic_bytes() -> None:
    data = gzip.compress(b"a\n1\n2\n")
    for key in ("rows.csv.gz", "rows.csv"):
        stream = open_body(io.BytesIO(data), key)
        assert list(read_csv(stream, {})) == [{"a": "1"}, {"a": "2"}]


def test_json_array_items_and_items_pointer() -> None:
    body = json.dumps({"data": {"rows": [{"x": 1}, {"x": 2.5}]}}).encode()
    items = list(read_json(io.BufferedReader(io.BytesIO(body)), {"ItemsPointer": "/data/rows"}))
    assert items == [{"x": 1}, {"x": 2.5}]
    assert list(read_json(io.BufferedReader(io.BytesIO(b' [1, "a", null]')), {})) == [1, "a", None]


def test_json_top_level_object_fails_like_aws() -> None:
    with pytest.raises(StatesError) as caught:
        list(read_json(io.BufferedReader(io.BytesIO(b'{"a": 1}')), {}))
    assert caught.value.cause == "Attempting to map over non-iterable node."


@pytest.mark.parametrize("pointer", ["/data", "/data/nope", "/missing"])
def test_an_items_pointer_to_anything_but_an_array_fails_the_reader(pointer: str) -> None:
    body = json.dumps({"data": {"rows": [1, 2], "empty": []}}).encode()
    with pytest.raises(StatesError) as caught:
        list(read_json(io.BufferedReader(io.BytesIO(body)), {"ItemsPointer": pointer}))
    assert (caught.value.error, caught.value.cause) == (
        "States.ItemReaderFailed",
        "Attempting to map over non-iterable node.",
    )
    assert list(read_json(io.BufferedReader(io.BytesIO(body)), {"ItemsPointer": "/data/empty"})) == []
    an_object_with_an_item_key = b'{"a": {"item": 5}}'  # ijson's prefixes would read 5 as the node's element
    with pytest.raises(StatesError):
        list(read_json(io.BufferedReader(io.BytesIO(an_object_with_an_item_key)), {"ItemsPointer": "/a"}))
    with pytest.raises(StatesError):
        list(read_json(io.BufferedReader(io.BytesIO(body)), {"ItemsPointer": "/data/rows/0"}))  # a number


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("/a.b", [1, 2]),  # one key holding a dot...
        ("/a/b", [9]),  # ...is not the path a, then b
        ("/data/1/rows", [3]),  # through an array, by index
        ("/data/0/rows", [{"deep": [1]}, 2]),
        ("/", [7]),  # RFC 6901: the member whose key is empty
        ("/m~1n/~0", ["slash and tilde"]),
        ("/item", ["a key named item"]),
    ],
)
def test_an_items_pointer_names_exactly_one_node(pointer: str, expected: list[object]) -> None:
    body = json.dumps(
        {
            "a": {"b": [9]},
            "data": [{"rows": [{"deep": [1]}, 2], "skip": {"rows": [0]}}, {"rows": [3]}],
            "a.b": [1, 2],
            "": [7],
            "m/n": {"~": ["slash and tilde"]},
            "item": ["a key named item"],
        }
    ).encode()
    assert list(read_json(io.BufferedReader(io.BytesIO(body)), {"ItemsPointer": pointer})) == expected


def test_jsonl_one_item_per_line_blank_lines_skipped() -> None:
    stream = io.BytesIO(b'{"a": 1}\n\n[2]\n"three"\n')
    assert list(read_jsonl(stream)) == [{"a": 1}, [2], "three"]


def test_jsonl_bad_line_fails_the_reader_naming_the_line() -> None:
    with pytest.raises(StatesError, match="Line 2"):
        list(read_jsonl(io.BytesIO(b"1\nnot json\n")))


def test_a_jsonl_line_over_8_mb_fails_the_reader() -> None:
    line = b'{"a": "' + b"z" * (8 * 1024 * 1024) + b'"}\n'
    with pytest.raises(StatesError, match="larger than the 8 MB") as caught:
        list(read_jsonl(io.BytesIO(b"1\n" + line)))
    assert "line 2" in caught.value.cause
    exactly = b'"' + b"z" * (8 * 1024 * 1024 - 2) + b'"\r\n'  # 8 MiB, its line break not counted
    assert len(list(read_jsonl(io.BytesIO(exactly)))) == 1


def test_a_pointer_without_its_leading_slash_fails_the_reader() -> None:
    body = json.dumps({"ows": [1], "rows": [2]}).encode()
    with pytest.raises(StatesError, match="is not a JSON Pointer"):
        list(read_json(io.BufferedReader(io.BytesIO(body)), {"ItemsPointer": "rows"}))


def test_a_stream_cut_while_reading_fails_the_reader() -> None:
    class CutBody(io.RawIOBase):
        """The first bytes of an object, then the connection drops (botocore's own error, not an OSError)."""

        served = False

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            if self.served:
                raise IncompleteReadError(actual_bytes=10, expected_bytes=100)
            self.served = True
            buffer[:10] = b"a\n1\n2\n3\n4\n"
            return 10

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="cut-bucket")
        s3.put_object(Bucket="cut-bucket", Key="rows.csv", Body=b"a\n1\n")
        with mock.patch.object(readers_module, "_open_in_process", return_value=(CutBody(), '"x"')):
            _, items = one_source(
                iter_reader_items(
                    s3, GET_OBJECT, {"Bucket": "cut-bucket", "Key": "rows.csv"}, {"InputType": "CSV"}
                )
            )
            with pytest.raises(StatesError) as caught:
                list(items)
    assert caught.value.error == "States.ItemReaderFailed"
    assert "Could not read s3://cut-bucket/rows.csv" in caught.value.cause


def test_s3_sources_and_missing_objects() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="reader-bucket")
        s3.put_object(Bucket="reader-bucket", Key="in/a.jsonl", Body=b'{"n": 1}\n{"n": 2}\n')
        s3.put_object(Bucket="reader-bucket", Key="in/b.txt", Body=b"hello")
        source, items = one_source(
            iter_reader_items(
                s3, GET_OBJECT, {"Bucket": "reader-bucket", "Key": "in/a.jsonl"}, {"InputType": "JSONL"}
            )
        )
        assert (source, list(items)) == ("S3://reader-bucket/in/a.jsonl", [{"n": 1}, {"n": 2}])

        source, listing = one_source(
            iter_reader_items(s3, LIST_OBJECTS_V2, {"Bucket": "reader-bucket", "Prefix": "in/"}, {})
        )
        entries = list(listing)
        assert source == "S3://reader-bucket"
        assert [e["Key"] for e in entries] == ["in/a.jsonl", "in/b.txt"]
        assert set(entries[1]) == {"Etag", "Key", "LastModified", "Size", "StorageClass"}
        assert isinstance(entries[1]["LastModified"], int)
        assert entries[1]["Size"] == 5

        with pytest.raises(StatesError) as caught:
            iter_reader_items(
                s3, GET_OBJECT, {"Bucket": "reader-bucket", "Key": "nope.csv"}, {"InputType": "CSV"}
            )
        assert caught.value.error == "States.ItemReaderFailed"
        assert "NoSuchKey" in caught.value.cause

        with pytest.raises(StatesError) as caught:
            flattened(iter_reader_items(s3, LIST_OBJECTS_V2, {"Bucket": "no-such-bucket-x"}, {}))
        assert "NoSuchBucket" in caught.value.cause


def test_zstd_objects_are_read_as_a_stream_by_extension_or_content() -> None:
    rows = "".join(f"{i},text {i}\n" for i in range(50_000)).encode()
    compressor = zstandard.ZstdCompressor()
    two_frames = compressor.compress(b"id,text\n" + rows[:1000]) + compressor.compress(rows[1000:])
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="reader-bucket")
        s3.put_object(Bucket="reader-bucket", Key="in/rows.csv.zstd", Body=two_frames)
        s3.put_object(Bucket="reader-bucket", Key="in/rows-no-extension", Body=two_frames)
        s3.put_object(Bucket="reader-bucket", Key="in/broken.csv.zst", Body=two_frames[:-100] + b"x" * 100)
        s3.put_object(Bucket="reader-bucket", Key="in/truncated.csv.zst", Body=two_frames[:-100])
        config = {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}
        for key in ("in/rows.csv.zstd", "in/rows-no-extension"):
            _, items = one_source(
                iter_reader_items(s3, GET_OBJECT, {"Bucket": "reader-bucket", "Key": key}, config)
            )
            read = list(items)
            assert len(read) == 50_000
            assert read[0] == {"id": "0", "text": "text 0"}
            assert read[-1] == {"id": "49999", "text": "text 49999"}

        for key in ("in/broken.csv.zst", "in/truncated.csv.zst"):  # corrupt or cut short: never read shorter
            _, items = one_source(
                iter_reader_items(s3, GET_OBJECT, {"Bucket": "reader-bucket", "Key": key}, config)
            )
            with pytest.raises(StatesError) as caught:
                list(items)
            assert caught.value.error == "States.ItemReaderFailed"
            assert f"s3://reader-bucket/{key}" in caught.value.cause


class CountingStream(io.RawIOBase):
    """A raw stream that counts how many bytes were pulled from it."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)
        self.pulled = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        chunk = self._inner.read(len(buffer))
        buffer[: len(chunk)] = chunk
        self.pulled += len(chunk)
        return len(chunk)


def test_csv_is_read_as_a_stream_not_loaded_whole() -> None:
    data = b"id,text\n" + b"".join(b"%d,%s\n" % (i, b"x" * 100) for i in range(200_000))  # ~20 MB
    raw = CountingStream(data)
    rows = read_csv(open_body(raw, "rows.csv"), {})
    first = next(rows)
    assert first == {"id": "0", "text": "x" * 100}
    assert raw.pulled < 4 * 1024 * 1024 < len(data)


def test_json_array_is_parsed_incrementally() -> None:
    data = json.dumps([{"i": i, "pad": "y" * 100} for i in range(100_000)]).encode()  # ~11 MB
    raw = CountingStream(data)
    items = read_json(open_body(raw, "rows.json"), {})  # type: ignore[arg-type]
    assert next(items) == {"i": 0, "pad": "y" * 100}
    assert raw.pulled < 4 * 1024 * 1024 < len(data)


def parquet_bytes(table: pa.Table, **options: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def test_parquet_rows_are_items_with_json_values(s3: Any) -> None:
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "name": ["a", None],
            "score": [0.5, float("nan")],
            "ok": [True, False],
            "day": pa.array([datetime.date(2026, 1, 2), None], pa.date32()),
            "at": pa.array([datetime.datetime(2026, 1, 2, 3, 4, 5), None], pa.timestamp("ms")),
            "price": pa.array([decimal.Decimal("1.50"), decimal.Decimal("2")], pa.decimal128(5, 2)),
            "raw": [b"\x00\x01", b""],
            "tags": [["x", "y"], []],
            "meta": pa.array([[("k", 1)], []], pa.map_(pa.string(), pa.int64())),
            "point": [{"x": 1, "y": 2}, None],
        }
    )
    # Internal compression, no extension: read as Parquet all the same.
    s3.put_object(Bucket=BUCKET, Key="in/data", Body=parquet_bytes(table, compression="zstd"))
    source, items = one_source(
        iter_reader_items(s3, GET_OBJECT, {"Bucket": BUCKET, "Key": "in/data"}, {"InputType": "PARQUET"})
    )
    assert source == "S3://data/in/data"
    assert list(items) == [
        {
            "id": 1,
            "name": "a",
            "score": 0.5,
            "ok": True,
            "day": "2026-01-02",
            "at": "2026-01-02T03:04:05",
            "price": 1.5,
            "raw": "AAE=",
            "tags": ["x", "y"],
            "meta": {"k": 1},
            "point": {"x": 1, "y": 2},
        },
        {
            "id": 2,
            "name": None,
            "score": "NaN",
            "ok": False,
            "day": None,
            "at": None,
            "price": 2,
            "raw": "",
            "tags": [],
            "meta": {},
            "point": None,
        },
    ]


def test_a_parquet_reader_refuses_a_version_id_and_a_file_that_is_not_parquet(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="in.parquet", Body=b"id,text\n1,a\n")
    where = {"Bucket": BUCKET, "Key": "in.parquet"}
    with pytest.raises(StatesError, match="VersionId is not supported for InputType PARQUET"):
        iter_reader_items(s3, GET_OBJECT, {**where, "VersionId": "v1"}, {"InputType": "PARQUET"})
    with pytest.raises(StatesError) as caught:
        flattened(iter_reader_items(s3, GET_OBJECT, where, {"InputType": "PARQUET"}))
    assert caught.value.error == "States.ItemReaderFailed"
    assert "Could not read s3://data/in.parquet" in caught.value.cause


def test_a_parquet_file_is_decoded_a_batch_at_a_time() -> None:
    rows = readers_module.PARQUET_BATCH_ROWS * 3
    body = parquet_bytes(pa.table({"n": list(range(rows))}), row_group_size=rows)
    decoded: list[int] = []
    original = pq.ParquetFile.iter_batches

    def iter_batches(parquet: pq.ParquetFile, *args: Any, **kwargs: Any) -> Any:
        for batch in original(parquet, *args, **kwargs):
            decoded.append(batch.num_rows)
            yield batch

    with mock.patch.object(pq.ParquetFile, "iter_batches", iter_batches):
        items = readers_module.read_parquet(io.BytesIO(body))
        assert next(items) == {"n": 0}
        assert decoded == [readers_module.PARQUET_BATCH_ROWS]  # one batch decoded, not the row group
        assert len(list(items)) == rows - 1


@pytest.mark.parametrize(
    ("config", "bodies", "expected"),
    [
        (
            {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
            [b"id,text\n1,a\n2,b\n", b"id,text\n3,c\n"],
            [{"id": "1", "text": "a"}, {"id": "2", "text": "b"}, {"id": "3", "text": "c"}],
        ),
        ({"InputType": "JSONL"}, [b'{"n": 1}\n{"n": 2}\n', b'{"n": 3}\n'], [{"n": 1}, {"n": 2}, {"n": 3}]),
        ({"InputType": "JSON"}, [b"[1, 2]", b"[3]"], [1, 2, 3]),
        (
            {"InputType": "PARQUET"},
            [parquet_bytes(pa.table({"n": [1, 2]})), parquet_bytes(pa.table({"n": [3]}))],
            [{"n": 1}, {"n": 2}, {"n": 3}],
        ),
    ],
)
def test_a_flattened_listing_reads_every_object_in_key_order_with_its_own_source(
    s3: Any, config: dict[str, Any], bodies: list[bytes], expected: list[Any]
) -> None:
    s3.put_object(Bucket=BUCKET, Key="parts/", Body=b"")  # a console folder marker
    s3.put_object(Bucket=BUCKET, Key="parts/_SUCCESS", Body=b"")  # Spark's marker: no bytes
    for number, body in reversed(list(enumerate(bodies))):
        compressed = body if config["InputType"] == "PARQUET" else gzip.compress(body)
        s3.put_object(Bucket=BUCKET, Key=f"parts/part-{number}", Body=compressed)
    s3.put_object(Bucket=BUCKET, Key="other/x", Body=b"not read")
    segments = iter_reader_items(
        s3,
        LIST_OBJECTS_V2,
        {"Bucket": BUCKET, "Prefix": "parts/"},
        {**config, "Transformation": "LOAD_AND_FLATTEN"},
    )
    read = flattened(segments)
    assert [item for _, item in read] == expected
    # $$.Map.Item.Source: each item's object (spec section 1.6: "otherwise the object URI").
    assert [source for source, _ in read] == ["S3://data/parts/part-0"] * 2 + ["S3://data/parts/part-1"]


def test_a_flattened_listing_fails_on_an_object_it_cannot_read(s3: Any) -> None:
    flatten = {"InputType": "JSONL", "Transformation": "LOAD_AND_FLATTEN"}
    s3.put_object(Bucket=BUCKET, Key="parts/a.jsonl", Body=b'{"n": 1}\n')
    s3.put_object(Bucket=BUCKET, Key="parts/b.jsonl", Body=b"not json\n")
    segments = iter_reader_items(s3, LIST_OBJECTS_V2, {"Bucket": BUCKET, "Prefix": "parts/"}, flatten)
    with pytest.raises(StatesError, match="Line 1 of the JSONL file is not valid JSON"):
        flattened(segments)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s3: s3.put_object(Bucket=BUCKET, Key="parts/b.jsonl", Body=b'{"n": 9}\n'),
            "b.jsonl changed",
        ),
        (lambda s3: s3.delete_object(Bucket=BUCKET, Key="parts/a.jsonl"), "now it is parts/b.jsonl"),
        (
            lambda s3: s3.put_object(Bucket=BUCKET, Key="parts/0.jsonl", Body=b'{"n": 0}\n'),
            "now it is",
        ),
        (lambda s3: s3.delete_object(Bucket=BUCKET, Key="parts/c.jsonl"), "c.jsonl was deleted"),
    ],
)
def test_a_redrive_of_a_flattened_listing_refuses_objects_changed_added_or_removed(
    s3: Any, change: Any, message: str
) -> None:
    flatten = {"InputType": "JSONL", "Transformation": "LOAD_AND_FLATTEN"}
    where = {"Bucket": BUCKET, "Prefix": "parts/"}
    s3.put_object(Bucket=BUCKET, Key="parts/a.jsonl", Body=b'{"n": 1}\n{"n": 2}\n')
    s3.put_object(Bucket=BUCKET, Key="parts/b.jsonl", Body=b'{"n": 3}\n')
    pin = readers_module.ObjectPin()
    assert [item for _, item in flattened(iter_reader_items(s3, LIST_OBJECTS_V2, where, flatten, pin))] == [
        {"n": 1},
        {"n": 2},
        {"n": 3},
    ]
    # Another object after them is read on as new items.
    s3.put_object(Bucket=BUCKET, Key="parts/c.jsonl", Body=b'{"n": 4}\n')
    read_on = skip_items(iter_reader_items(s3, LIST_OBJECTS_V2, where, flatten, pin), 2)
    assert [item for source, items in read_on for item in items] == [{"n": 3}, {"n": 4}]
    change(s3)
    with pytest.raises(readers_module.SourceChangedError, match=message):
        flattened(iter_reader_items(s3, LIST_OBJECTS_V2, where, flatten, pin))


def test_json_and_json_lines_files_may_start_with_a_byte_order_mark() -> None:
    bom = "\ufeff".encode()
    assert list(read_json(io.BytesIO(bom + b'[1, {"a": 2}]'), {})) == [1, {"a": 2}]
    assert list(read_json(io.BytesIO(bom + b'{"rows": [3]}'), {"ItemsPointer": "/rows"})) == [3]
    assert list(read_jsonl(io.BytesIO(bom + b'{"a": 1}\n{"a": 2}\n'))) == [{"a": 1}, {"a": 2}]
