"""End to end: real Airflow processes (api-server, scheduler, dag-processor, triggerer) run the
``csv_row_processing`` DAG against the local endpoint; the task defers to the triggerer and the
summary reaches XCom."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.airflow_cluster import AirflowCluster

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "csv_row_processing"
ROWS = 300


@pytest.fixture(scope="module")
def endpoint() -> Iterator[object]:
    from airflow_distmap.local import LocalEndpoint

    with LocalEndpoint(functions_dir=REPO / "lambda_functions") as running:
        yield running


@pytest.fixture(scope="module")
def cluster(endpoint: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowCluster]:
    home = tmp_path_factory.mktemp("airflow-e2e")
    running = AirflowCluster(
        home,
        REPO / "dags",
        {
            "AIRFLOW_CONN_AWS_DEFAULT": endpoint.airflow_connection_uri(),  # type: ignore[attr-defined]
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
        },
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_dag_run_defers_to_the_triggerer_and_returns_the_summary(
    endpoint: object, cluster: AirflowCluster
) -> None:
    s3 = endpoint.client("s3")  # type: ignore[attr-defined]
    s3.create_bucket(Bucket="e2e")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "text"])
    writer.writerows([str(i), f"  row   #{i}: hello, world!! "] for i in range(ROWS))
    s3.put_object(Bucket="e2e", Key="in/data.csv", Body=buffer.getvalue().encode())

    cluster.wait_for_dag(DAG_ID)
    run_id = cluster.trigger(
        DAG_ID,
        {"input_uri": "s3://e2e/in/data.csv", "output_uri": "s3://e2e/out/data.csv", "batch_size": 50},
    )
    state = cluster.wait_for_run(DAG_ID, run_id)
    assert state == "success", cluster.log_text("scheduler")[-5000:]

    summary = cluster.xcom(DAG_ID, run_id, "process_csv")
    assert summary["status"] == "SUCCEEDED"
    assert summary["counts"]["total"] == ROWS
    assert summary["counts"]["failed"] == 0
    assert summary["manifest_uri"].startswith("s3://")
    assert summary["manifest_uri"].endswith("/manifest.json")
    assert summary["output_uri"] == "s3://e2e/out/data.csv"

    output = s3.get_object(Bucket="e2e", Key="out/data.csv")["Body"].read().decode()
    rows = list(csv.DictReader(io.StringIO(output)))
    assert [row["id"] for row in rows] == [str(i) for i in range(ROWS)]
    assert rows[7]["processed"] == "Processed data: row hello world"

    # The wait happened on the triggerer, not in a worker slot: the trigger's own log shows the Map Run.
    pattern = f"dag_id={DAG_ID}/**/task_id=process_csv/*.trigger.*.log"
    trigger_logs = list((cluster.home / "logs").glob(pattern))
    assert trigger_logs, "the task never deferred to the triggerer"
    trigger_log = trigger_logs[0].read_text()
    assert f"Map Run SUCCEEDED: {ROWS} of {ROWS} items done" in trigger_log
    assert "Trigger fired event" in trigger_log
