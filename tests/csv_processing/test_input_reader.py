from __future__ import annotations

import io

import pytest

from airflow_distmap.csv_processing import input_reader
from airflow_distmap.csv_processing.input_reader import IrregularRowsError, arrow_chunks, python_chunks
from airflow_distmap.csv_processing.preflight import CsvLayout


def layout(headers: tuple[str, ...], delimiter: str = ",", header_in_file: bool = True) -> CsvLayout:
    return CsvLayout(
        bucket="b",
        key="k",
        size=0,
        etag="",
        delimiter_name="X",
        delimiter=delimiter,
        headers=headers,
        columns=headers,
        header_in_file=header_in_file,
        has_bom=False,
    )


def rows(chunks: object) -> list[list[str]]:
    out: list[list[str]] = []
    for columns in chunks:  # type: ignore[attr-defined]
        out.extend([list(r) for r in zip(*(c.to_pylist() for c in columns), strict=True)])
    return out


CASES = [
    b'a,b\n"x,y","q""z"\n',
    b'a,b\n"multi\nline",2\n',
    b"a,b\r\n1,2\r\n3,4",
    b"a,b\nx\\,y,2\n",
    b'a,b\n"x\\"y",2\n',
    b"a,b\nx\\ny,2\n",
    b'a,b\nab"c,2\n',
    b'a,b\n"",""\n',
    b"a,b\n  ,  \n",
    "a,b\nü,日本🚚\n".encode(),
    b"\xef\xbb\xbfa,b\n1,2\n",
    b"a,b\n\\\\,x\n",
    b"a,b\n1,2\n\n3,4\n",  # an empty line is a record of empty strings in both
    b"a,b\n1,C:\\dir\\\n2,x\n",  # a backslash before a line break
    b"a,b\r\n1,C:\\dir\\\r\n2,x\r\n",
    b"a,b\n1,C:\\dir\\",  # ... or at the end of the file
]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"a,b\n1,C:\\dir\\\n2,x\n", [["1", "C:dir"], ["2", "x"]]),
        (b"a,b\r\n1,C:\\dir\\\r\n2,x\r\n", [["1", "C:dir"], ["2", "x"]]),
        (b"a,b\n1,C:\\dir\\", [["1", "C:dir"]]),
        (b"a,b\n1,C:\\\\\n2,x\n", [["1", "C:\\"], ["2", "x"]]),  # an escaped backslash stays
        (b'a,b\n1,"two\\\nlines"\n', [["1", "two\nlines"]]),  # quoted: the line break stays in the field
    ],
)
def test_a_backslash_before_a_line_break_is_dropped_and_the_line_break_ends_the_record(
    body: bytes, expected: list[list[str]]
) -> None:
    # AWS: "A backslash followed by any other character is silently removed": it does not join two records.
    shape = layout(("a", "b"))
    assert (
        rows(arrow_chunks(io.BytesIO(body), shape))
        == rows(python_chunks(io.BytesIO(body), shape))
        == expected
    )


def test_a_doubled_quote_outside_quotes_hands_the_file_to_the_python_reader() -> None:
    # The ItemReader reads "" as one quote in an unquoted field too; Arrow keeps both, so it stops.
    body = b'a,b\n{""k"":1},"x""""y"\n1,2\n'
    shape = layout(("a", "b"))
    with pytest.raises(IrregularRowsError, match="holds a doubled quote"):
        rows(arrow_chunks(io.BytesIO(body), shape))
    assert rows(python_chunks(io.BytesIO(body), shape)) == [['{"k":1}', 'x""y'], ["1", "2"]]


@pytest.mark.parametrize("body", CASES)
def test_arrow_reader_splits_records_like_the_item_reader(body: bytes) -> None:
    shape = layout(("a", "b"))
    assert rows(arrow_chunks(io.BytesIO(body), shape)) == rows(python_chunks(io.BytesIO(body), shape))


@pytest.mark.parametrize("delimiter", [";", "|", "\t", " "])
def test_other_delimiters(delimiter: str) -> None:
    body = f'a{delimiter}b\n"1{delimiter}x"{delimiter}2\n'.encode()
    shape = layout(("a", "b"), delimiter)
    assert rows(arrow_chunks(io.BytesIO(body), shape)) == [[f"1{delimiter}x", "2"]]


@pytest.mark.parametrize("body", [b"a,b\n1\n", b"a,b\n1,2,3\n"])
def test_irregular_rows_stop_the_arrow_reader_and_the_python_reader_shapes_them(body: bytes) -> None:
    shape = layout(("a", "b"))
    with pytest.raises(IrregularRowsError):
        list(arrow_chunks(io.BytesIO(body), shape))
    for row in rows(python_chunks(io.BytesIO(body), shape)):
        assert len(row) == 2


def test_without_header_line_every_record_is_data() -> None:
    shape = layout(("a", "b"), header_in_file=False)
    assert rows(arrow_chunks(io.BytesIO(b"1,2\n3,4\n"), shape)) == [["1", "2"], ["3", "4"]]


def test_python_reader_takes_fields_beyond_the_csv_module_default_limit() -> None:
    big = "x" * 300_000
    body = f"a,b\n1,{big}\n2\n".encode()  # the short row sends the collector to the Python reader
    shape = layout(("a", "b"))
    with pytest.raises(IrregularRowsError):
        list(arrow_chunks(io.BytesIO(body), shape))
    assert rows(python_chunks(io.BytesIO(body), shape)) == [["1", big], ["2", ""]]


def test_the_python_reader_bounds_its_chunks_by_text_as_well_as_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(input_reader, "PYTHON_CHUNK_CHARS", 10_000)
    body = b"id,text\n" + b"".join(b"%d,%s\n" % (i, b"x" * 1000) for i in range(5000))
    sizes = [len(chunk[0]) for chunk in python_chunks(io.BytesIO(body), layout(("id", "text")))]
    assert sum(sizes) == 5000
    assert max(sizes) <= 2 * 1024  # a step of 1,024 rows past 10,000 characters, not 32,768 rows
