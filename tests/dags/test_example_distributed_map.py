from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from airflow_distmap.results import iter_result_entries, read_manifest

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "example_distributed_map.py"
ROWS = [
    {"text": "Hello,  World! 1"},
    {"text": "Straße #2"},
    {"text": "  a  b  "},
    {"text": "x9y"},
    {"text": "ok"},
]


def _load_dag():
    spec = importlib.util.spec_from_file_location("example_distributed_map", DAG_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_dag_imports_cleanly():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    assert "example_distributed_map" in bag.dag_ids


def test_example_dag_runs_on_the_local_endpoint(aws_default_on_endpoint, capfd):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    module = _load_dag()
    s3 = aws_default_on_endpoint.client("s3")
    s3.create_bucket(Bucket=module.BUCKET)
    s3.put_object(Bucket=module.BUCKET, Key=module.INPUT_KEY, Body=json.dumps(ROWS).encode())

    dag_run = module.dag.test()
    assert dag_run.state == "success"
    logged = "".join(capfd.readouterr())
    assert "Map Run" in logged  # the task's log is captured here...
    assert "XCom not found" not in logged  # ... and a deferring task reports no missing extra-link XCom

    with create_session() as session:
        rows = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=module.dag.dag_id, key="return_value")
        ).all()
        values = {row.task_id: XComModel.deserialize_value(row) for row in rows}
    summary = values["process_rows"]
    assert summary["status"] == "SUCCEEDED"
    assert summary["counts"]["total"] == 5
    assert summary["counts"]["succeeded"] == 5
    assert summary["counts"]["failed"] == 0
    assert summary["execution_arn"].startswith(
        "arn:aws:states:us-east-1:123456789012:execution:example-distributed-map:process_rows-manual__"
    )
    assert summary["map_run_arn"].startswith(
        "arn:aws:states:us-east-1:123456789012:mapRun:example-distributed-map/DistributedMap:"
    )
    map_run_id = summary["map_run_arn"].rsplit(":", 1)[-1]
    execution = summary["execution_arn"].rsplit(":", 1)[-1]
    assert summary["manifest_uri"] == (
        f"s3://distmap-example/distmap-results/example_distributed_map/process_rows/{execution}/"
        f"{map_run_id}/manifest.json"
    )
    assert values["report"] == summary["counts"]

    # The exported results hold every row's processed value (3 batches of at most 2 rows).
    manifest = read_manifest(s3, summary["manifest_uri"])
    outputs = {}
    for entry in iter_result_entries(s3, manifest):
        assert entry.status == "SUCCEEDED"
        for row in entry.output["rows"]:
            outputs[row["index"]] = row["output"]
    assert outputs == {
        0: "Processed data: Hello World",
        1: "Processed data: Straße",
        2: "Processed data: a b",
        3: "Processed data: xy",
        4: "Processed data: ok",
    }

    # A second run exports under its own prefix and leaves the first run's results as they were.
    second = module.dag.test()
    assert second.state == "success"
    with create_session() as session:
        (row,) = session.scalars(
            XComModel.get_many(
                run_id=second.run_id, dag_ids=module.dag.dag_id, task_ids="process_rows", key="return_value"
            )
        ).all()
    second_summary = XComModel.deserialize_value(row)
    assert second_summary["manifest_uri"].rsplit("/", 2)[0] != summary["manifest_uri"].rsplit("/", 2)[0]
    # ... from the same state machine: the results prefix is not part of the definition.
    assert second_summary["state_machine_arn"] == summary["state_machine_arn"]
    first_again = {
        row["index"]: row["output"]
        for entry in iter_result_entries(s3, read_manifest(s3, summary["manifest_uri"]))
        for row in entry.output["rows"]
    }
    assert first_again == outputs
