from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_distmap.csv_processing import preflight
from airflow_distmap.csv_processing.preflight import (
    check_csv_input,
    check_output_location,
    ledger_uri_for,
    resolve_delimiter,
)
from airflow_distmap.exceptions import (
    BadHeaderError,
    CsvInputError,
    EmptyInputError,
    InputNotFoundError,
    MissingColumnError,
    OutputLocationError,
    UnsupportedInputError,
)
from airflow_distmap.ownership import claim_results_prefix, owner_token

BUCKET = "data"

OWNER = owner_token("dag", "task", "run-1")


def put(s3: Any, key: str, body: bytes | str) -> str:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)
    return f"s3://{BUCKET}/{key}"


def test_reads_header_and_defaults_to_all_columns(s3: Any) -> None:
    uri = put(s3, "in.csv", "id,text,note\n1,hello,x\n")
    layout = check_csv_input(s3, uri, output_column="processed")
    assert layout.headers == ("id", "text", "note")
    assert layout.columns == ("id", "text", "note")
    assert layout.header_in_file
    assert layout.header_location == "FIRST_ROW"
    assert layout.first_data_item == 0
    assert layout.skipped_items == []
    assert layout.reader_name("note") == "note"
    assert (layout.delimiter_name, layout.delimiter) == ("COMMA", ",")


@pytest.mark.parametrize(
    ("body", "columns"),
    [
        ("\ufeffid,text\n1,a\n", ["text"]),  # a BOM: whether AWS strips it is UNCONFIRMED
        ("id,the text\n1,a\n", ["the text"]),  # not addressable by a plain JSONPath
        ("id,a.b\n1,a\n", ["a.b"]),
        ("id,_distmap_item_index\n1,a\n", ["id"]),  # the re-run index field
        ("id," + "x" * 9000 + "\n1,a\n", ["id"]),  # header above FIRST_ROW's limit
    ],
)
def test_given_synthetic_headers_when_first_row_is_not_safe(s3: Any, body: str, columns: list[str]) -> None:
    uri = put(s3, "given.csv", body.encode())
    layout = check_csv_input(s3, uri, columns=columns)
    assert layout.header_location == "GIVEN"
    assert layout.first_data_item == 1
    assert layout.skipped_items == [0]
    assert layout.reader_headers == ["c0", "c1"]
    assert layout.reader_name(columns[0]) == f"c{layout.headers.index(columns[0])}"


def test_bom_is_stripped_from_the_first_name(s3: Any) -> None:
    uri = put(s3, "bom.csv", "\ufeffid;text\n1;a\n".encode())
    layout = check_csv_input(s3, uri, delimiter="SEMICOLON", columns=["id"])
    assert layout.has_bom
    assert layout.headers == ("id", "text")
    assert layout.columns == ("id",)


@pytest.mark.parametrize(
    ("body", "csv_headers"),
    [
        ('\ufeff"na\nme",text\n1,a\n', None),  # the header line's quoted name holds a line break
        ('\ufeff"x\ny",1\n2,3\n', ["a", "b"]),  # no header line: the first value holds one
        ('\ufeff"x,y",1\n2,3\n', ["a", "b"]),  # ... or the delimiter
        ('\ufeff"a""\n""b",c\n1,2\n', None),  # past a doubled quote
    ],
)
def test_a_byte_order_mark_before_a_quoted_field_that_splits_is_refused(
    s3: Any, body: str, csv_headers: list[str] | None
) -> None:
    """A reader that keeps the mark reads the quote literally and splits the file differently than one that
    strips it; which one AWS is, it does not say, so rows and results could pair wrongly either way."""
    uri = put(s3, "bom-quoted.csv", body.encode())
    with pytest.raises(UnsupportedInputError, match="byte-order mark right before a quoted field") as refused:
        check_csv_input(s3, uri, csv_headers=csv_headers)
    assert "To fix this, save the file as UTF-8 without a byte-order mark" in str(refused.value)


@pytest.mark.parametrize(
    "body", ['\ufeff"id","text"\n1,a\n', '"na\nme",text\n1,a\n', '\ufeff"a""b",c\n1,2\n']
)
def test_a_quoted_first_field_that_splits_nothing_or_has_no_mark_is_read(s3: Any, body: str) -> None:
    assert check_csv_input(s3, put(s3, "quoted.csv", body.encode())).headers[1] in ("text", "c")


@pytest.mark.parametrize(
    ("given", "name", "char"),
    [
        ("COMMA", "COMMA", ","),
        ("pipe", "PIPE", "|"),
        (";", "SEMICOLON", ";"),
        ("\t", "TAB", "\t"),
        (" ", "SPACE", " "),
    ],
)
def test_delimiters_by_name_or_character(given: str, name: str, char: str) -> None:
    assert resolve_delimiter(given) == (name, char)


@pytest.mark.parametrize("bad", [":", "COLON", "", ",,"])
def test_unsupported_delimiter(bad: str) -> None:
    with pytest.raises(UnsupportedInputError, match="supports only"):
        resolve_delimiter(bad)


def test_long_header_is_read_by_growing_ranges_not_the_whole_file(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"column_{i:06d}_{'x' * 100}" for i in range(1_500)]  # ~175 KB header
    rows = "\n".join(",".join("v" * 20 for _ in names) for _ in range(30))
    uri = put(s3, "wide.csv", ",".join(names) + "\n" + rows + "\n")
    ranges: list[str] = []
    real_get = s3.get_object

    def spy(**kwargs: Any) -> Any:
        ranges.append(kwargs["Range"])
        return real_get(**kwargs)

    monkeypatch.setattr(s3, "get_object", spy)
    layout = check_csv_input(s3, uri, columns=[names[-1]])
    assert len(layout.headers) == 1_500
    assert ranges == ["bytes=0-65535", "bytes=0-131071", "bytes=0-262143"]
    assert layout.size > 262_144 * 2


def test_quoted_header_with_delimiter_and_newline(s3: Any) -> None:
    uri = put(s3, "q.csv", '"a,b","line\nbreak",c\n1,2,3\n')
    assert check_csv_input(s3, uri).headers == ("a,b", "line\nbreak", "c")


def test_multibyte_character_cut_by_the_range_end(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "HEADER_PROBE_BYTES", 8)
    uri = put(s3, "u.csv", "héé,ñame\nü,ö\n")
    assert check_csv_input(s3, uri).headers == ("héé", "ñame")


def test_given_headers_for_a_file_without_header(s3: Any) -> None:
    uri = put(s3, "nohdr.csv", "1,hello\n")
    layout = check_csv_input(s3, uri, csv_headers=["id", "text"], columns=["text"])
    assert not layout.header_in_file
    assert layout.first_data_item == 0
    assert layout.headers == ("id", "text")


def test_given_headers_that_would_drop_fields_of_the_first_row_are_refused(s3: Any) -> None:
    uri = put(s3, "nohdr-wide.csv", "1,hello,0.5\n2,world,0.7\n")
    with pytest.raises(BadHeaderError, match=r"csv_headers names 2 columns, but the first row") as caught:
        check_csv_input(s3, uri, csv_headers=["id", "text"])
    assert "has 3 fields: '1,hello,0.5'; Step Functions would drop" in str(caught.value)
    # More names than fields: the missing ones are read as empty, nothing is lost.
    assert check_csv_input(s3, uri, csv_headers=["id", "text", "score", "note"]).headers[-1] == "note"


def test_the_layout_is_announced_once_and_a_second_check_is_quiet(
    s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    uri = put(s3, "announced.csv", "id,text\n1,a\n")
    with caplog.at_level(logging.DEBUG):
        check_csv_input(s3, uri)
        check_csv_input(s3, uri, announce=False)
    levels = [r.levelno for r in caplog.records if r.getMessage().startswith("Pre-flight of")]
    assert levels == [logging.INFO, logging.DEBUG]


def test_a_byte_order_mark_without_a_header_line_is_warned_about(
    s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    uri = put(s3, "bom-nohdr.csv", "\ufeff1,hello\n".encode())
    with caplog.at_level(logging.WARNING):
        check_csv_input(s3, uri, csv_headers=["id", "text"], columns=["text"])
        check_csv_input(s3, put(s3, "bom-hdr.csv", "\ufeffid,text\n1,a\n".encode()), columns=["text"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # a header line takes the mark away with it
    assert "bom-nohdr.csv starts with a UTF-8 byte-order mark and has no header line" in warnings[0]


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        ("", EmptyInputError, "is empty"),
        ("id,text\n", EmptyInputError, "only a header"),
        ("id,text", EmptyInputError, "only a header"),
        ("id,text\n\n\r\n", EmptyInputError, r"and no rows \(empty lines aside\)"),
        ("id,,text\n1,2,3\n", BadHeaderError, "empty column name at position 2"),
        ("id,text,id\n1,2,3\n", BadHeaderError, "duplicate column names: 'id'"),
        (b"id,t\xe9xt\n1,2\n", UnsupportedInputError, "not UTF-8"),
        ('{"k": 1, "v": 1}\n{"k": 2, "v": 2}\n', UnsupportedInputError, "looks like JSON or JSON Lines"),
        ('[{"k": 1}]\n', UnsupportedInputError, "JsonItemReader or JsonlItemReader"),
        (
            '{"k":1,"v":1}\n{"k":2,"v":2}\n',
            UnsupportedInputError,
            "looks like JSON",
        ),  # compact, as jq -c writes
        ('[\n  {"k": 1}\n]\n', UnsupportedInputError, "looks like JSON"),  # pretty-printed
        ('["a","b"]\n', UnsupportedInputError, "looks like JSON"),
    ],
)
def test_bad_files(s3: Any, body: str | bytes, error: type[Exception], message: str) -> None:
    uri = put(s3, "bad.csv", body)
    with pytest.raises(error, match=message):
        check_csv_input(s3, uri)


def test_a_file_with_more_columns_than_a_10_kib_header_can_name_is_refused(s3: Any) -> None:
    wide = put(s3, "wide.csv", ",".join(f"col{i}" for i in range(2000)) + "\n" + ",".join("1" * 2000) + "\n")
    with pytest.raises(BadHeaderError, match=r"has 2000 columns, too many for Step Functions: .* 10 KiB"):
        check_csv_input(s3, wide, columns=["col1"])
    fits = put(s3, "fits.csv", ",".join(f"col{i}" for i in range(1500)) + "\n" + ",".join("1" * 1500) + "\n")
    assert check_csv_input(s3, fits, columns=["col1"]).header_location == "GIVEN"  # c0..c1499: 8,389 bytes


@pytest.mark.parametrize("body", ['name\n""\n', "name\n\nx\n", "id,text\n,\n"])
def test_a_row_of_empty_values_is_a_row_unlike_an_empty_line(s3: Any, body: str) -> None:
    assert check_csv_input(s3, put(s3, "empty-values.csv", body)).headers


def test_missing_column_lists_the_header_and_hints_the_delimiter(s3: Any) -> None:
    uri = put(s3, "semi.csv", "id;text\n1;a\n")
    with pytest.raises(MissingColumnError) as info:
        check_csv_input(s3, uri, columns=["text"])
    assert "'text'" in str(info.value)
    assert "delimiter='SEMICOLON'" in str(info.value)


def test_output_column_must_be_new(s3: Any) -> None:
    uri = put(s3, "in.csv", "id,processed\n1,a\n")
    with pytest.raises(MissingColumnError, match="already a column"):
        check_csv_input(s3, uri, output_column="processed")


def test_missing_bucket_and_key_and_compressed(s3: Any) -> None:
    with pytest.raises(InputNotFoundError, match="Bucket 'nope'"):
        check_csv_input(s3, "s3://nope/in.csv")
    with pytest.raises(InputNotFoundError, match=r"No object at s3://data/missing\.csv"):
        check_csv_input(s3, "s3://data/missing.csv")
    with pytest.raises(InputNotFoundError, match="Invalid input_uri"):
        check_csv_input(s3, "data/in.csv")
    with pytest.raises(UnsupportedInputError, match="compressed"):
        check_csv_input(s3, put(s3, "in.csv.gz", b"x"))


def test_access_denied_on_the_input_names_both_causes() -> None:
    from unittest import mock

    from botocore.exceptions import ClientError

    s3 = mock.Mock()
    s3.head_object.side_effect = ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")
    denied = r"(?s)Access to s3://data/in\.csv was denied.*s3:ListBucket"
    with pytest.raises(InputNotFoundError, match=denied):
        check_csv_input(s3, "s3://data/in.csv")


def test_preflight_errors_are_not_retried() -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_distmap.exceptions import DistributedMapError

    assert issubclass(CsvInputError, AirflowFailException)
    assert issubclass(CsvInputError, DistributedMapError)


def test_output_location(s3: Any) -> None:
    target = check_output_location(s3, "s3://data/out/x.parquet", input_uri="s3://data/in.csv", owner=OWNER)
    assert (target.format, target.ledger_uri) == ("parquet", "s3://data/out/x.failed.parquet")
    assert ledger_uri_for("s3://data/a.b/c.csv") == "s3://data/a.b/c.failed.csv"
    with pytest.raises(OutputLocationError, match=r"\.csv or \.parquet"):
        check_output_location(s3, "s3://data/out/x.json", input_uri="s3://data/in.csv", owner=OWNER)
    with pytest.raises(OutputLocationError, match="is the input"):
        check_output_location(s3, "s3://data/in.csv", input_uri="s3://data/in.csv", owner=OWNER)
    with pytest.raises(OutputLocationError, match="Bucket 'elsewhere'"):
        check_output_location(s3, "s3://elsewhere/x.csv", input_uri="s3://data/in.csv", owner=OWNER)


def test_an_output_inside_another_task_runs_results_prefix_is_refused(s3: Any) -> None:
    claim_results_prefix(s3, "s3://data/results/run-1", owner=OWNER)
    check_output_location(s3, "s3://data/results/run-1/output.csv", input_uri="s3://data/in.csv", owner=OWNER)
    other = owner_token("dag", "task", "run-2")
    with pytest.raises(OutputLocationError, match=r"lies inside another task run's results prefix"):
        check_output_location(
            s3, "s3://data/results/run-1/x/out.csv", input_uri="s3://data/in.csv", owner=other
        )


def test_existing_output_is_refused_unless_this_task_run_wrote_it(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="out/mine.csv", Body=b"a\n", Metadata={"distmap-owner": OWNER})
    check_output_location(s3, "s3://data/out/mine.csv", input_uri="s3://data/in.csv", owner=OWNER)
    other = owner_token("dag", "task", "run-2")
    with pytest.raises(OutputLocationError, match=r"already exists .* \{\{ ti\.map_index \}\} in a mapped"):
        check_output_location(s3, "s3://data/out/mine.csv", input_uri="s3://data/in.csv", owner=other)
    s3.put_object(Bucket=BUCKET, Key="out/theirs.failed.csv", Body=b"a\n")
    with pytest.raises(OutputLocationError, match=r"theirs\.failed\.csv already exists"):
        check_output_location(s3, "s3://data/out/theirs.csv", input_uri="s3://data/in.csv", owner=OWNER)


def test_a_first_row_with_a_huge_field_is_a_data_row(s3: Any) -> None:
    uri = put(s3, "huge.csv", "id,text\n1," + "x" * 300_000 + "\n")
    layout = check_csv_input(s3, uri)
    assert layout.headers == ("id", "text")
