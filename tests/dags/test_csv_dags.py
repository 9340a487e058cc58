from __future__ import annotations

import csv
import importlib.util
import io
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow.parquet as pq
import pytest

from airflow_distmap.demo_data import iter_messy_rows, messy_csv_bytes

DAGS = Path(__file__).resolve().parents[2] / "dags"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, DAGS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def xcoms(dag_id: str, run_id: str) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run_id, dag_ids=dag_id, key="return_value")).all()
        return {row.task_id: XComModel.deserialize_value(row) for row in rows}


@pytest.mark.parametrize("name", ["csv_row_processing", "daily_csv_batch"])
def test_dag_imports_cleanly(name: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / f"{name}.py"))
    assert bag.import_errors == {}
    assert name in bag.dag_ids


def test_csv_row_processing_runs_end_to_end(aws_default_on_endpoint: Any) -> None:
    module = load("csv_row_processing")
    s3 = aws_default_on_endpoint.client("s3")
    s3.create_bucket(Bucket=module.BUCKET)
    rows = 300
    s3.put_object(Bucket=module.BUCKET, Key="input/test.csv", Body=messy_csv_bytes(rows))
    conf = {
        "input_uri": f"s3://{module.BUCKET}/input/test.csv",
        "output_uri": f"s3://{module.BUCKET}/output/test.csv",
        "batch_size": 40,
    }
    dag_run = module.dag.test(run_conf=conf)
    assert dag_run.state == "success"
    values = xcoms(module.dag.dag_id, dag_run.run_id)
    summary = values["process_csv"]
    assert summary["status"] == "SUCCEEDED"
    assert summary["counts"] == {"total": rows, "succeeded": rows, "failed": 0}
    assert values["report"]["output_uri"] == conf["output_uri"]
    body = s3.get_object(Bucket=module.BUCKET, Key="output/test.csv")["Body"].read().decode()
    output = list(csv.DictReader(io.StringIO(body, newline="")))
    expected = list(iter_messy_rows(rows))
    assert [r["id"] for r in output] == [e[0] for e in expected]  # input order
    assert [r["text"] for r in output] == [e[3] for e in expected]  # quotes, newlines, non-ASCII intact
    assert all(r["processed"].startswith("Processed data: ") for r in output)
    assert output[0]["processed"] == "Processed data: " + " ".join(
        "".join(c for c in expected[0][3] if c.isalpha() or c.isspace()).split()
    )


def test_csv_row_processing_runs_with_its_default_params(aws_default_on_endpoint: Any) -> None:
    module = load("csv_row_processing")
    s3 = aws_default_on_endpoint.client("s3")
    s3.create_bucket(Bucket=module.BUCKET)
    bucket, key = module.INPUT_URI.removeprefix("s3://").split("/", 1)
    s3.put_object(Bucket=bucket, Key=key, Body=messy_csv_bytes(50))
    dag_run = module.dag.test()  # as the Trigger button sends it: output_uri "" means beside the results
    assert dag_run.state == "success"
    summary = xcoms(module.dag.dag_id, dag_run.run_id)["process_csv"]
    assert summary["counts"] == {"total": 50, "succeeded": 50, "failed": 0}
    assert summary["output_uri"] == summary["results_uri"].rstrip("/") + "/output.csv"
    output_bucket, output_key = summary["output_uri"].removeprefix("s3://").split("/", 1)
    assert s3.head_object(Bucket=output_bucket, Key=output_key)["ContentLength"] > 0


def test_daily_batch_reads_and_writes_the_data_interval_keys(
    aws_default_on_endpoint: Any, tmp_path: Path
) -> None:
    module = load("daily_csv_batch")
    s3 = aws_default_on_endpoint.client("s3")
    s3.create_bucket(Bucket=module.BUCKET)
    days = {"2025-01-02": 25, "2025-01-03": 30}
    for day, rows in days.items():
        s3.put_object(
            Bucket=module.BUCKET, Key=f"incoming/{day}/events.csv", Body=messy_csv_bytes(rows, seed=rows)
        )
    manifests = set()
    for day, rows in days.items():
        logical_date = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
        dag_run = module.dag.test(logical_date=logical_date)
        assert dag_run.state == "success"
        values = xcoms(module.dag.dag_id, dag_run.run_id)
        assert values["record_day"] == {
            "day": day,
            "output_uri": f"s3://{module.BUCKET}/processed/{day}/events.parquet",
            "rows": rows,
        }
        manifests.add(values["process_day"]["manifest_uri"])
        target = tmp_path / f"{day}.parquet"
        s3.download_file(module.BUCKET, f"processed/{day}/events.parquet", str(target))
        table = pq.read_table(target)
        assert table.num_rows == rows
        assert table.column("id").to_pylist() == [str(i) for i in range(rows)]
    assert len(manifests) == 2  # each run exported under its own prefix
