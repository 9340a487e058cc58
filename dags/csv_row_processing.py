"""The user's case end to end: ``df[column].apply(f)`` over an S3 CSV, at Distributed Map scale.

``process_csv`` checks the input (header read with a ranged GET, delimiter, columns...), fans the rows of
``input_uri`` out to the ``post_processing`` Lambda function in batches through a Step Functions
Distributed Map, waits in the triggerer, then writes ``output_uri``: every input row, in input order, plus
a ``processed`` column; rows that failed go to ``<output stem>.failed.csv``. ``report`` reads the summary
(never the rows) that the operator pushes to XCom.

Trigger it with a conf to process another file: ``{"input_uri": "s3://...", "output_uri": "s3://...",
"batch_size": 500}`` (``airflow-distmap demo`` does this against the embedded local endpoint). Against AWS,
set ``role_arn`` to a role Step Functions can assume and deploy ``post_processing`` (``make lambda-zip``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_distmap.operators.csv_row_processing import CsvRowProcessingOperator

BUCKET = "distmap-demo"
INPUT_URI = f"s3://{BUCKET}/input/messy.csv"
ROLE_ARN = "arn:aws:iam::123456789012:role/distmap-demo"

with DAG(
    dag_id="csv_row_processing",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    # Templates render to Python values: an empty output_uri Param becomes None, the operator's "not given".
    render_template_as_native_obj=True,
    params={
        "input_uri": Param(INPUT_URI, type="string", description="s3://bucket/key.csv to process"),
        "output_uri": Param(
            "", type="string", description="s3://.../name.csv or .parquet; empty: beside the run's results"
        ),
        "batch_size": Param(500, type="integer", minimum=1, description="rows per Lambda invocation"),
        "role_arn": Param(ROLE_ARN, type="string", description="IAM role Step Functions assumes"),
    },
    tags=["example", "distributed-map", "csv"],
) as dag:
    # [START howto_operator_csv_row_processing]
    process_csv = CsvRowProcessingOperator(
        task_id="process_csv",
        input_uri="{{ params.input_uri }}",
        function_name="post_processing",
        columns=["text"],
        output_uri="{{ params.output_uri or None }}",  # empty: <results_uri>/output.csv
        output_column="processed",
        batch_size="{{ params.batch_size }}",
        role_arn="{{ params.role_arn }}",
        max_concurrency=100,
        tolerated_failure_percentage=1,  # up to 1 % of rows may fail; the ledger lists them
        deferrable=True,
        waiter_delay=2,  # a demo-sized job; use 30 s or more for real runs
        # A retry attaches to the task run's running execution, or reuses or redrives its closed one (README,
        # "Reliability"). It also covers Airflow 3.3 failing a resumed deferred task (apache/airflow#71580).
        retries=1,
        retry_delay=timedelta(seconds=10),
    )
    # [END howto_operator_csv_row_processing]

    @task
    def report(summary: dict[str, Any]) -> dict[str, Any]:
        """A downstream task reads the summary: counts and where the output and the failed rows are."""
        print(
            f"{summary['rows_succeeded']:,} of {summary['rows_total']:,} rows processed "
            f"({summary['rows_failed']:,} failed) -> {summary['output_uri']}"
        )
        if summary["rows_failed"]:
            print(f"Failed rows by error: {summary['errors_by_type']}; see {summary['failed_rows_uri']}")
        return {
            "output_uri": summary["output_uri"],
            "failed_rows_uri": summary["failed_rows_uri"],
            "rows": summary["counts"],
        }

    report(process_csv.output)
