"""Example: run a Lambda function over every element of a JSON file in S3 with a Distributed Map.

The task deploys (or reuses) a state machine whose Distributed Map reads ``input/rows.json``, sends the
rows to the ``post_processing`` Lambda function two at a time, and exports the results to S3. It defers
while the Map Run works, then returns a small summary (ARNs, counts, manifest URI) that ``report`` reads.

Run it against AWS by pointing the ``aws_default`` connection at your account (and ``ROLE_ARN`` at a
role Step Functions can assume), or on one machine against ``airflow-distmap local``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_distmap.definitions import INDEXED_ROW_SELECTOR, ItemBatcher, JsonItemReader
from airflow_distmap.operators.distributed_map import DistributedMapOperator

BUCKET = "distmap-example"
INPUT_KEY = "input/rows.json"
ROLE_ARN = "arn:aws:iam::123456789012:role/distmap-example"

with DAG(
    dag_id="example_distributed_map",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "distributed-map"],
) as dag:
    # [START howto_operator_distributed_map]
    process_rows = DistributedMapOperator(
        task_id="process_rows",
        state_machine_name="example-distributed-map",
        role_arn=ROLE_ARN,
        item_reader=JsonItemReader(uri=f"s3://{BUCKET}/{INPUT_KEY}"),
        # post_processing is a row_handler: with {"index", "row"} items its results name each row's index.
        item_selector=INDEXED_ROW_SELECTOR,
        item_batcher=ItemBatcher(max_items_per_batch=2),
        function_name="post_processing",
        max_concurrency=4,
        # Results go to s3://<BUCKET>/distmap-results/<dag>/<task>/<execution name>/ unless results_uri says
        # otherwise; a results_uri of your own must differ per run (e.g. template it with {{ run_id }}).
        deferrable=True,
        waiter_delay=2,  # a demo-sized job; use 30 s or more for real runs
        # A retry attaches to the task run's running execution, or reuses or redrives its closed one (README,
        # "Reliability"). It also covers Airflow 3.3 failing a resumed deferred task (apache/airflow#71580).
        retries=1,
        retry_delay=timedelta(seconds=10),
    )
    # [END howto_operator_distributed_map]

    @task
    def report(summary: dict[str, Any]) -> dict[str, int]:
        """Downstream tasks get the summary (never the rows) and read results from the manifest."""
        print(f"{summary['status']}: {summary['counts']} -> {summary['manifest_uri']}")
        return dict(summary["counts"])

    report(process_rows.output)
