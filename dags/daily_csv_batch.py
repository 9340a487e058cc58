"""A scheduled daily batch: each day's CSV is processed into that day's Parquet dataset.

Keys come from the data interval (``{{ ds }}``), never from "now", so backfills (``catchup``) and retries
process exactly their own day. Each run is isolated: its own execution (named after the run), its own
results prefix (``distmap-results/<dag>/<task>/<run>/``) and its own output; the output check refuses to
overwrite another run's file, and a retry of the same run may replace only what it wrote itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_distmap.operators.csv_row_processing import CsvRowProcessingOperator

BUCKET = "distmap-daily"
ROLE_ARN = "arn:aws:iam::123456789012:role/distmap-daily"

with DAG(
    dag_id="daily_csv_batch",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=True,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["example", "distributed-map", "csv", "daily"],
) as dag:
    # [START howto_operator_csv_row_processing_daily]
    process_day = CsvRowProcessingOperator(
        task_id="process_day",
        input_uri=f"s3://{BUCKET}/incoming/{{{{ ds }}}}/events.csv",
        output_uri=f"s3://{BUCKET}/processed/{{{{ ds }}}}/events.parquet",
        function_name="post_processing",
        columns=["text"],
        output_column="processed",
        role_arn=ROLE_ARN,
        batch_size=200,
        max_concurrency=50,
        tolerated_failure_count=0,
        deferrable=True,
        waiter_delay=2,  # a demo-sized job; use 30 s or more for real runs
    )
    # [END howto_operator_csv_row_processing_daily]

    @task
    def record_day(summary: dict[str, Any], ds: str | None = None) -> dict[str, Any]:
        """What a downstream consumer of the day's dataset needs: where it is and how complete it is."""
        return {"day": ds, "output_uri": summary["output_uri"], "rows": summary["rows_total"]}

    record_day(process_day.output)
