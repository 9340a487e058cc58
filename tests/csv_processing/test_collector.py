from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow.parquet as pq
import pytest

from airflow_distmap.csv_processing.collector import CollectSummary, collect, iter_child_entries
from airflow_distmap.csv_processing.preflight import (
    CsvLayout,
    check_csv_input,
    check_output_location,
)
from airflow_distmap.exceptions import OutputLocationError
from airflow_distmap.formats.csv_records import iter_records, shape_record
from airflow_distmap.lambda_runtime import row_handler
from airflow_distmap.ownership import owner_token
from airflow_distmap.results import read_manifest

BUCKET = "data"
OWNER = owner_token("dag", "task", "run")


@row_handler
def shout(row: dict[str, str]) -> str:
    if row["text"] == "boom":
        raise ValueError("no booms allowed")
    return row["text"].upper()


def items_for(layout: CsvLayout, body: bytes) -> list[dict[str, Any]]:
    """What the ItemReader + the operator's ItemSelector send, one per item (FIRST_ROW or GIVEN)."""
    records = list(iter_records(io.BytesIO(body), delimiter=layout.delimiter))
    if layout.header_location == "FIRST_ROW":
        records, names = records[1:], list(layout.headers)
    else:
        names = layout.reader_headers
    items = []
    for index, record in enumerate(records):
        value = shape_record(names, record)
        row = {column: value[layout.reader_name(column)] for column in layout.columns}
        items.append({"index": index, "row": row})
    return items


def write_run(
    s3: Any,
    layout: CsvLayout,
    body: bytes,
    handler: Callable[[Any, Any], Any] = shout,
    batch_size: int = 3,
    failed_batches: Sequence[int] = (),
    drop_batches: Sequence[int] = (),
    shuffle: bool = True,
) -> str:
    """Run the handler over batches like a Map Run would and export result files + manifest to S3."""
    items = items_for(layout, body)
    batch_input = {"skip": layout.skipped_items}
    succeeded, failed = [], []
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    for number, batch in enumerate(batches):
        if number in drop_batches:
            continue
        child_input = {"Items": batch, "BatchInput": batch_input}
        entry: dict[str, Any] = {"ExecutionArn": f"arn:child:{number}", "Input": json.dumps(child_input)}
        if number in failed_batches:
            cause = {"errorMessage": "Task timed out after 3.00 seconds", "errorType": "Sandbox.Timedout"}
            entry.update(Status="FAILED", Error="Sandbox.Timedout", Cause=json.dumps(cause))
            failed.append(entry)
        else:
            entry.update(Status="SUCCEEDED", Output=json.dumps(handler(child_input, None)))
            succeeded.append(entry)
    if shuffle:
        random.Random(3).shuffle(succeeded)
    files: dict[str, list[dict[str, Any]]] = {"SUCCEEDED": [], "FAILED": [], "PENDING": []}
    for status, entries in (("SUCCEEDED", succeeded), ("FAILED", failed)):
        if entries:
            key = f"results/run/{status}_0.json"
            s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(entries).encode())
            files[status].append({"Key": key, "Size": 1})
    manifest = {"DestinationBucket": BUCKET, "MapRunArn": "arn:maprun:run", "ResultFiles": files}
    s3.put_object(Bucket=BUCKET, Key="results/run/manifest.json", Body=json.dumps(manifest).encode())
    return f"s3://{BUCKET}/results/run/manifest.json"


def run_collect(
    s3: Any,
    body: bytes,
    *,
    output: str = "out/result.csv",
    delimiter: str = "COMMA",
    columns: Sequence[str] | None = ("text",),
    csv_headers: Sequence[str] | None = None,
    **run_options: Any,
) -> tuple[CsvLayout, CollectSummary]:
    s3.put_object(Bucket=BUCKET, Key="in/input.csv", Body=body)
    input_uri = f"s3://{BUCKET}/in/input.csv"
    layout = check_csv_input(
        s3, input_uri, delimiter=delimiter, columns=columns, csv_headers=csv_headers, output_column="result"
    )
    given_body = body
    manifest_uri = write_run(s3, layout, given_body, **run_options)
    target = check_output_location(s3, f"s3://{BUCKET}/{output}", input_uri=input_uri, owner=OWNER)
    summary = collect(
        s3, iter_child_entries(s3, read_manifest(s3, manifest_uri)), layout, target, "result", owner=OWNER
    )
    return layout, summary


def read_csv(s3: Any, key: str, delimiter: str = ",") -> list[dict[str, str]]:
    text = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))


def test_output_keeps_input_order_and_adds_the_column(s3: Any) -> None:
    rows = [[str(i), f"text {i}"] for i in range(20)]
    rows[5][1] = "boom"
    body = ("id,text\n" + "".join(f"{a},{b}\n" for a, b in rows)).encode()
    _, summary = run_collect(s3, body, batch_size=4, shuffle=True)
    output = read_csv(s3, "out/result.csv")
    assert [r["id"] for r in output] == [str(i) for i in range(20)]
    assert output[0] == {"id": "0", "text": "text 0", "result": "TEXT 0"}
    assert output[5]["result"] == ""
    ledger = read_csv(s3, "out/result.failed.csv")
    assert ledger == [
        {
            "row_index": "5",
            "id": "5",
            "text": "boom",
            "error_type": "ValueError",
            "error_message": "no booms allowed",
        }
    ]
    assert (summary.rows_total, summary.rows_succeeded, summary.rows_failed) == (20, 19, 1)
    assert summary.errors_by_type == {"ValueError": 1}
    assert summary.failed_rows_uri == f"s3://{BUCKET}/out/result.failed.csv"
    head = s3.head_object(Bucket=BUCKET, Key="out/result.csv")
    assert head["Metadata"] == {"distmap-owner": OWNER}


def test_rows_of_a_failed_child_get_its_error_and_cause(s3: Any) -> None:
    body = ("id,text\n" + "".join(f"{i},t{i}\n" for i in range(9))).encode()
    _, summary = run_collect(s3, body, batch_size=3, failed_batches=[1])
    ledger = read_csv(s3, "out/result.failed.csv")
    # FIRST_ROW: item i is data row i, so the second batch of 3 is rows 3..5
    assert [r["row_index"] for r in ledger] == ["3", "4", "5"]
    assert {r["error_type"] for r in ledger} == {"Sandbox.Timedout"}
    assert {r["error_message"] for r in ledger} == {"Task timed out after 3.00 seconds"}
    assert summary.rows_failed == 3
    assert [r["result"] for r in read_csv(s3, "out/result.csv")][:4] == ["T0", "T1", "T2", ""]


def test_rows_without_any_result_are_reported(s3: Any) -> None:
    body = ("id,text\n" + "".join(f"{i},t{i}\n" for i in range(6))).encode()
    _, summary = run_collect(s3, body, batch_size=2, drop_batches=[1])
    assert summary.errors_by_type == {"RowNotProcessed": 2}
    assert [r["row_index"] for r in read_csv(s3, "out/result.failed.csv")] == ["2", "3"]


MESSY = (
    "id,text,note\n"
    '1,"hello, world","say ""hi"""\n'
    '2,"multi\nline\ntext",x\n'
    "3,Crème brûlée 日本語 🚚,ü\n"
    "4,short\n"
    "5,long,a,b,c\n"
    '6,"back\\\\slash",y\n'
    "7,,\n"
)


def expected_rows(body: str, delimiter: str, headers: Sequence[str]) -> list[list[str]]:
    records = list(iter_records(io.BytesIO(body.encode()), delimiter=delimiter, encoding="utf-8-sig"))[1:]
    return [list(shape_record(list(headers), r).values()) for r in records]


@pytest.mark.parametrize(
    ("delimiter", "char"), [("COMMA", ","), ("SEMICOLON", ";"), ("PIPE", "|"), ("TAB", "\t")]
)
@pytest.mark.parametrize("bom", [False, True])
def test_messy_csv_round_trips(s3: Any, delimiter: str, char: str, bom: bool) -> None:
    text = MESSY.replace(",", char) if char != "," else MESSY
    body = ("\ufeff" if bom else "") + text
    layout, summary = run_collect(s3, body.encode(), delimiter=delimiter, columns=None, batch_size=2)
    assert layout.headers == ("id", "text", "note")
    output = read_csv(s3, "out/result.csv", delimiter=char)
    assert [list(r.values())[:3] for r in output] == expected_rows(body, char, layout.headers)
    assert [r["result"] for r in output] == [r["text"].upper() for r in output]
    assert output[3] == {"id": "4", "text": "short", "note": "", "result": "SHORT"}
    assert output[4]["note"] == "a"
    assert summary.rows_failed == 0


def test_given_headers_item_zero_is_data(s3: Any) -> None:
    body = b"1,alpha\n2,boom\n3,gamma\n"
    layout, summary = run_collect(s3, body, csv_headers=["id", "text"], batch_size=2)
    assert summary.rows_failed == 1
    assert not layout.header_in_file
    output = read_csv(s3, "out/result.csv")
    assert [(r["id"], r["result"]) for r in output] == [("1", "ALPHA"), ("2", ""), ("3", "GAMMA")]
    assert [r["row_index"] for r in read_csv(s3, "out/result.failed.csv")] == ["1"]


def test_parquet_output_and_ledger(s3: Any, tmp_path: Any) -> None:
    body = ("id,text\n" + "".join(f"{i},{'boom' if i == 2 else f't{i}'}\n" for i in range(5))).encode()
    run_collect(s3, body, output="out/result.parquet")
    s3.download_file(BUCKET, "out/result.parquet", str(tmp_path / "o.parquet"))
    s3.download_file(BUCKET, "out/result.failed.parquet", str(tmp_path / "f.parquet"))
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.column_names == ["id", "text", "result"]
    assert table.column("result").to_pylist() == ["T0", "T1", None, "T3", "T4"]
    ledger = pq.read_table(tmp_path / "f.parquet").to_pylist()
    assert ledger == [
        {
            "row_index": 2,
            "id": "2",
            "text": "boom",
            "error_type": "ValueError",
            "error_message": "no booms allowed",
        }
    ]


def test_json_outputs_are_written_as_json_text(s3: Any) -> None:
    @row_handler
    def structured(row: dict[str, str]) -> Any:
        return {"len": len(row["text"]), "word": row["text"]} if row["text"] != "none" else None

    body = b"text\nab\nnone\n"
    run_collect(s3, body, handler=structured)
    assert [r["result"] for r in read_csv(s3, "out/result.csv")] == ['{"len":2,"word":"ab"}', ""]


def test_output_not_following_the_contract_fails_those_rows(s3: Any) -> None:
    def plain(event: Any, context: Any) -> Any:
        return [item["row"]["text"] for item in event["Items"]]

    body = b"text\na\nb\n"
    _, summary = run_collect(s3, body, handler=plain, batch_size=5)
    assert summary.errors_by_type == {"RowContractError": 2}


def test_a_batch_answering_no_rows_fails_its_rows_and_no_other(s3: Any) -> None:
    def silent_on_second_batch(event: Any, context: Any) -> Any:
        if event["Items"][0]["index"] == 2:
            return {"rows": []}
        return shout(event, context)

    body = b"text\na\nb\nc\nd\n"
    _, summary = run_collect(s3, body, handler=silent_on_second_batch, batch_size=2)
    assert summary.errors_by_type == {"RowContractError": 2}
    assert [r["result"] for r in read_csv(s3, "out/result.csv")] == ["A", "B", "", ""]


def test_a_success_replaces_a_failure_of_the_same_batch(s3: Any) -> None:
    """After a redrive the manifest may list the failed attempt and the successful one."""
    body = b"text\na\nb\n"
    s3.put_object(Bucket=BUCKET, Key="in/input.csv", Body=body)
    layout = check_csv_input(s3, f"s3://{BUCKET}/in/input.csv", output_column="result")
    child_input = {"Items": items_for(layout, body), "BatchInput": {"skip": layout.skipped_items}}
    ok = {
        "ExecutionArn": "arn:child",
        "Status": "SUCCEEDED",
        "Input": json.dumps(child_input),
        "Output": json.dumps(shout(child_input, None)),
    }
    bad = {"ExecutionArn": "arn:child", "Status": "FAILED", "Input": json.dumps(child_input)}
    bad.update({"Error": "Lambda.Unknown", "Cause": "x"})
    s3.put_object(Bucket=BUCKET, Key="r/SUCCEEDED_0.json", Body=json.dumps([ok]).encode())
    s3.put_object(Bucket=BUCKET, Key="r/FAILED_0.json", Body=json.dumps([bad]).encode())
    files = {
        "SUCCEEDED": [{"Key": "r/SUCCEEDED_0.json"}],
        "FAILED": [{"Key": "r/FAILED_0.json"}],
        "PENDING": [],
    }
    manifest = {"DestinationBucket": BUCKET, "MapRunArn": "arn", "ResultFiles": files}
    s3.put_object(Bucket=BUCKET, Key="r/manifest.json", Body=json.dumps(manifest).encode())
    target = check_output_location(s3, f"s3://{BUCKET}/o.csv", input_uri=layout.uri, owner=OWNER)
    summary = collect(
        s3,
        iter_child_entries(s3, read_manifest(s3, f"s3://{BUCKET}/r/manifest.json")),
        layout,
        target,
        "result",
    )
    assert (summary.rows_succeeded, summary.rows_failed) == (2, 0)


def test_rows_of_an_aborted_child_are_reported_under_its_status(s3: Any) -> None:
    body = b"text\na\nb\n"
    s3.put_object(Bucket=BUCKET, Key="in/input.csv", Body=body)
    layout = check_csv_input(s3, f"s3://{BUCKET}/in/input.csv", output_column="result")
    aborted = {
        "ExecutionArn": "arn:child",
        "Status": "ABORTED",
        "Input": json.dumps({"Items": items_for(layout, body)}),
    }
    s3.put_object(Bucket=BUCKET, Key="r/FAILED_0.json", Body=json.dumps([aborted]).encode())
    files = {"SUCCEEDED": [], "FAILED": [{"Key": "r/FAILED_0.json"}], "PENDING": []}
    manifest = {"DestinationBucket": BUCKET, "MapRunArn": "arn", "ResultFiles": files}
    s3.put_object(Bucket=BUCKET, Key="r/manifest.json", Body=json.dumps(manifest).encode())
    target = check_output_location(s3, f"s3://{BUCKET}/o.csv", input_uri=layout.uri, owner=OWNER)
    entries = iter_child_entries(s3, read_manifest(s3, f"s3://{BUCKET}/r/manifest.json"))
    summary = collect(s3, entries, layout, target, "result")
    assert summary.errors_by_type == {"ABORTED": 2}
    assert read_csv(s3, "o.failed.csv")[0]["error_message"] == "The child execution ended ABORTED."


def test_result_elements_are_decoded_typed_with_the_input_left_as_text() -> None:
    from airflow_distmap.csv_processing.collector import ChildEntry, ChildRecord, decode_child_records

    child_input = {"Items": [{"index": 4, "row": {"text": 'a},{"b'}}]}
    element = {
        "ExecutionArn": "arn:child",
        "Status": "FAILED",
        "Input": json.dumps(child_input),
        "Error": "E",
    }
    element.update({"Cause": "c", "Name": "n"})
    (record,) = decode_child_records(json.dumps([element]).encode())
    assert isinstance(record, ChildRecord)
    entry = ChildEntry(record, "FAILED")
    assert (entry.status, entry.input, entry.output, entry.error, entry.cause) == (
        "FAILED",
        child_input,
        None,
        "E",
        "c",
    )


def test_result_elements_of_other_shapes_are_decoded_as_json() -> None:
    from airflow_distmap.csv_processing.collector import ChildEntry, decode_child_records

    records = decode_child_records(b'[{"Status": 3, "Output": {"rows": []}}, [1], "x"]')
    assert records == [{"Status": 3, "Output": {"rows": []}}, [1], "x"]
    entry = ChildEntry(records[0], "SUCCEEDED")
    assert (entry.status, entry.output) == ("3", {"rows": []})
    with pytest.raises(ValueError, match="Expecting"):
        decode_child_records(b'[{"Status": "SUCCEEDED"},')


def _entry(output: Any) -> Any:
    from airflow_distmap.csv_processing.collector import ChildEntry, decode_child_records

    element = {
        "ExecutionArn": "arn:child",
        "Status": "SUCCEEDED",
        "Input": "{}",
        "Output": json.dumps(output),
    }
    return ChildEntry(decode_child_records(json.dumps([element]).encode())[0], "SUCCEEDED")


def test_batches_whose_rows_all_succeeded_are_read_typed() -> None:
    plain = {"rows": [{"index": 3, "output": "a"}, {"index": 4, "output": {"k": [1]}}]}
    assert _entry(plain).succeeded_rows() == ([3, 4], ["a", {"k": [1]}])
    for other in (
        {"rows": [{"index": 3, "output": "a"}, {"index": 4, "error": {"type": "E", "message": "m"}}]},
        {"rows": [{"index": 3, "skipped": True}]},
        {"rows": [{"index": "3", "output": "a"}]},
        {"index": 3, "output": "a"},
        "text",
    ):
        assert _entry(other).succeeded_rows() is None


def test_rows_of_a_batch_in_any_order_are_stored_by_index(tmp_path: Any) -> None:
    from airflow_distmap.csv_processing.collector import store_entry
    from airflow_distmap.csv_processing.result_store import ResultStore

    rows = [{"index": 5, "output": "f"}, {"index": 3, "output": "d"}, {"index": 4, "output": None}]
    with ResultStore(tmp_path / "r.sqlite") as store:
        store_entry(store, _entry({"rows": rows}))
        runs = [(run.start, run.values.to_pylist(), run.errors) for run in store.iter_runs()]
    assert runs == [(3, ["d", None, "f"], {})]


def test_an_output_written_by_someone_else_during_the_collection_is_left_alone(s3: Any) -> None:
    body = b"id,text\n1,a\n2,b\n"
    s3.put_object(Bucket=BUCKET, Key="in/input.csv", Body=body)
    input_uri = f"s3://{BUCKET}/in/input.csv"
    layout = check_csv_input(s3, input_uri, delimiter="COMMA", columns=("text",), output_column="result")
    manifest_uri = write_run(s3, layout, body)
    target = check_output_location(s3, f"s3://{BUCKET}/out/shared.csv", input_uri=input_uri, owner=OWNER)
    # Another task run with the same fixed output_uri finishes first.
    s3.put_object(Bucket=BUCKET, Key="out/shared.csv", Body=b"their rows")
    entries = iter_child_entries(s3, read_manifest(s3, manifest_uri))
    with pytest.raises(OutputLocationError, match=r"out/shared\.csv was written by someone else"):
        collect(s3, entries, layout, target, "result", owner=OWNER)
    assert s3.get_object(Bucket=BUCKET, Key="out/shared.csv")["Body"].read() == b"their rows"


def test_a_retry_replaces_the_output_its_earlier_try_wrote(s3: Any) -> None:
    body = b"id,text\n1,a\n2,b\n"
    run_collect(s3, body, output="out/mine.csv")
    _, summary = run_collect(s3, body.replace(b"b", b"c"), output="out/mine.csv")
    assert [r["result"] for r in read_csv(s3, "out/mine.csv")] == ["A", "C"]
    assert summary.rows_total == 2
