from __future__ import annotations

import importlib.util
import json
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

BUCKET = "distmap-daily"
DAG_SOURCE = f"""
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_distmap.definitions import JsonItemReader
from airflow_distmap.operators.distributed_map import DistributedMapOperator

with DAG(dag_id="daily_templated_key", schedule="@daily", start_date=datetime(2025, 1, 1)) as dag:
    DistributedMapOperator(
        task_id="process_day",
        role_arn="arn:aws:iam::123456789012:role/distmap-example",
        item_reader=JsonItemReader(uri="s3://{BUCKET}/input/{{{{ ds }}}}.json"),
        item_selector={{"index.$": "$$.Map.Item.Index", "row.$": "$$.Map.Item.Value"}},
        function_name="post_processing",
        deferrable=True,
        waiter_delay=1,
    )
"""


def _load_dag(folder: Path, monkeypatch: pytest.MonkeyPatch):
    """Write the DAG into its own DAG folder (``dag.test()`` serialises that folder's DAGs) and import it."""
    from airflow import settings

    path = folder / "daily_templated_key.py"
    path.write_text(textwrap.dedent(DAG_SOURCE))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(folder))
    spec = importlib.util.spec_from_file_location("daily_templated_key", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def test_daily_runs_of_a_templated_key_share_one_state_machine_and_read_their_own_day(
    aws_default_on_endpoint, tmp_path, monkeypatch
):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    s3 = aws_default_on_endpoint.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    days = {"2025-03-01": 3, "2025-03-02": 5}
    for day, count in days.items():
        rows = [{"text": f"{day} row {index}"} for index in range(count)]
        s3.put_object(Bucket=BUCKET, Key=f"input/{day}.json", Body=json.dumps(rows).encode())
    dag = _load_dag(tmp_path, monkeypatch)

    summaries = {}
    for day in days:
        dag_run = dag.test(logical_date=datetime.fromisoformat(day).replace(tzinfo=timezone.utc))
        assert dag_run.state == "success"
        with create_session() as session:
            (row,) = session.scalars(
                XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag.dag_id, key="return_value")
            ).all()
        summaries[day] = XComModel.deserialize_value(row)

    assert {day: summary["counts"]["succeeded"] for day, summary in summaries.items()} == days
    assert len({summary["state_machine_arn"] for summary in summaries.values()}) == 1
    assert len(aws_default_on_endpoint.client("stepfunctions").list_state_machines()["stateMachines"]) == 1
