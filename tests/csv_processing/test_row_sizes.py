from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_distmap.csv_processing import input_reader
from airflow_distmap.csv_processing.preflight import CsvLayout, check_csv_input
from airflow_distmap.csv_processing.row_sizes import check_row_sizes, largest_item
from airflow_distmap.exceptions import RowTooLargeError, UnsupportedInputError

BUCKET = "data"


@pytest.mark.parametrize("ragged", [False, True])
def test_the_largest_selected_row_is_found_with_or_without_ragged_rows(s3: Any, ragged: bool) -> None:
    rows = ["1,short", "2," + "é" * 1000, "3,mid" if not ragged else "3"]
    s3.put_object(Bucket=BUCKET, Key="in.csv", Body=("id,text\n" + "\n".join(rows) + "\n").encode())
    layout = check_csv_input(s3, f"s3://{BUCKET}/in.csv", columns=["text"])
    largest = check_row_sizes(s3, layout, 10_000)
    assert 2000 < largest < 2100  # 1000 two-byte characters plus the envelope
    with pytest.raises(RowTooLargeError, match=r"Row 1 \(0-based"):
        check_row_sizes(s3, layout, 1000)


def test_the_scan_warns_where_aws_reads_csv_unlike_pandas(s3: Any, caplog: pytest.LogCaptureFixture) -> None:
    body = b'id,path\n1,C:\\Users\\new\n2,plain,extra\n3,"a\\\\b"\n'
    s3.put_object(Bucket=BUCKET, Key="in.csv", Body=body)
    layout = check_csv_input(s3, f"s3://{BUCKET}/in.csv", columns=["path"])
    with caplog.at_level(logging.WARNING):
        check_row_sizes(s3, layout, 10_000)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("more or fewer fields than the header: 1 (the first is row 1," in w for w in warnings)
    assert any("holds 4 backslashes" in w and "double it" in w for w in warnings)

    s3.put_object(Bucket=BUCKET, Key="plain.csv", Body=b"id,path\n1,a\n2,b\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        check_row_sizes(s3, check_csv_input(s3, f"s3://{BUCKET}/plain.csv", columns=["path"]), 10_000)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("ragged", [False, True])
def test_the_scan_warns_about_empty_lines_read_as_rows(
    s3: Any, caplog: pytest.LogCaptureFixture, ragged: bool
) -> None:
    body = b"id,text\n1,a\n\n2,b\n" + (b"3\n" if ragged else b"") + b"\r\n4,c\n"
    s3.put_object(Bucket=BUCKET, Key="in.csv", Body=body)
    layout = check_csv_input(s3, f"s3://{BUCKET}/in.csv", columns=["text"])
    assert "with every field empty: 2 (the first is row 1," in scan_warnings(s3, caplog, layout, None)


def scan_warnings(s3: Any, caplog: pytest.LogCaptureFixture, layout: CsvLayout, max_rows: int | None) -> str:
    """The warnings one scan of ``layout``'s rows logs, reading at most ``max_rows``."""
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        largest_item(s3, layout, 10_000, envelope=True, max_rows=max_rows)
    return caplog.text


def test_the_irregular_rows_warning_counts_only_rows_the_reader_reaches(
    s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    body = b"id,text\n0,a\n1\n2,b\n3,c,extra\n4\n5,d\n"
    s3.put_object(Bucket=BUCKET, Key="in.csv", Body=body)
    layout = check_csv_input(s3, f"s3://{BUCKET}/in.csv", columns=["text"])
    assert ": 3 (the first is row 1," in scan_warnings(s3, caplog, layout, None)
    assert ": 2 (the first is row 1," in scan_warnings(s3, caplog, layout, 4)
    assert "more or fewer fields" not in scan_warnings(s3, caplog, layout, 1)  # the short row 1 is never read


def test_irregular_rows_are_counted_across_chunks(
    s3: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(input_reader, "PYTHON_CHUNK_ROWS", 2)
    monkeypatch.setattr(input_reader, "_PYTHON_STEP_ROWS", 1)
    rows = ["0,a", "1", "2,b", "3,c", "4", "5,d,extra", "6,e"]  # chunks of 2: the short/long rows in 3 of 4
    s3.put_object(Bucket=BUCKET, Key="in.csv", Body=("id,text\n" + "\n".join(rows) + "\n").encode())
    layout = check_csv_input(s3, f"s3://{BUCKET}/in.csv", columns=["text"])
    assert ": 3 (the first is row 1," in scan_warnings(s3, caplog, layout, None)
    assert ": 2 (the first is row 1," in scan_warnings(s3, caplog, layout, 5)


@pytest.mark.parametrize(
    ("body", "warned"),
    [
        (b'id,text\n1,a\n2,"b\n3,c\n4,d\n', True),  # rows 3 and 4 become part of row 2's value
        (b'id,text\n1,"a ""quoted"" word"\n2,"multi\nline"\n3,\\"\n', False),  # closed, doubled, escaped
        (b'id,text\n1,a 5" screen\n2,b\n', False),  # a literal quote inside an unquoted value
        (b'id,text\n1,"multi\nline"\n2,"ends in a backslash\\\\"\n', False),
    ],
)
def test_the_scan_warns_about_a_quote_never_closed(
    s3: Any, caplog: pytest.LogCaptureFixture, body: bytes, warned: bool
) -> None:
    s3.put_object(Bucket=BUCKET, Key="in.csv", Body=body)
    layout = check_csv_input(s3, f"s3://{BUCKET}/in.csv", columns=["text"])
    with caplog.at_level(logging.WARNING):
        check_row_sizes(s3, layout, 10_000)
    warnings = [r.getMessage() for r in caplog.records if "probably not closed" in r.getMessage()]
    assert bool(warnings) is warned


@pytest.mark.parametrize("ragged", [False, True])  # the Arrow reader, or the Python one it falls back to
def test_bytes_that_are_not_utf8_past_the_start_are_named(s3: Any, ragged: bool) -> None:
    rows = b"1,abc\n" * 20_000 + (b"2\n" if ragged else b"") + b"3,\xff\xfe\n"
    s3.put_object(Bucket=BUCKET, Key="in.csv", Body=b"id,text\n" + rows)
    layout = check_csv_input(s3, f"s3://{BUCKET}/in.csv")  # the start is UTF-8
    with pytest.raises(UnsupportedInputError, match=r"holds bytes that are not UTF-8 text past its start"):
        check_row_sizes(s3, layout, 10_000)
