"""(issue 4e) End to end, 1,000,000 rows through ``post_processing``: CsvRowProcessingOperator vs pandas.

Both read the same CSV from the same local endpoint (``airflow-distmap local``, a subprocess with the
project's ``lambda_functions``) and write an output CSV back to it:

- pandas: ``get_object`` -> ``pandas.read_csv`` -> ``df["text"].apply(clean_text)`` -> ``to_csv`` ->
  ``put_object``, sequential in this process;
- the operator: ``CsvRowProcessingOperator.execute`` with ``deferrable=False`` (pre-flight, the Distributed
  Map over ``post_processing`` in ``BATCH_SIZE``-row batches, then the collector writing the output).
"""

from __future__ import annotations

import io
import os
import time
from typing import Any
from unittest import mock

from bench.common import EndpointProcess, header, report

ROWS = 1_000_000
BATCH_SIZE = 1_000
TARGET = 1.0
BUCKET = "bench"
ROLE_ARN = "arn:aws:iam::123456789012:role/bench"


def pandas_seconds(s3: Any) -> float:
    """Seconds for the pandas pipeline against the endpoint."""
    import pandas as pd

    from lambda_functions.post_processing.handler import clean_text

    started = time.perf_counter()
    body = s3.get_object(Bucket=BUCKET, Key="in/data.csv")["Body"].read()
    frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
    frame["processed"] = frame["text"].apply(clean_text)
    out = frame.to_csv(index=False).encode()
    s3.put_object(Bucket=BUCKET, Key="out/pandas.csv", Body=out)
    return time.perf_counter() - started


def operator_seconds(endpoint: EndpointProcess) -> tuple[float, dict[str, Any]]:
    """Seconds for ``CsvRowProcessingOperator.execute`` (not deferrable) against the endpoint."""
    from airflow_distmap.local.endpoint import airflow_connection_uri
    from airflow_distmap.operators.csv_row_processing import CsvRowProcessingOperator

    os.environ["AIRFLOW_CONN_AWS_BENCH"] = airflow_connection_uri(endpoint.url)
    operator = CsvRowProcessingOperator(
        task_id="process",
        input_uri=f"s3://{BUCKET}/in/data.csv",
        function_name="post_processing",
        columns=["text"],
        output_uri=f"s3://{BUCKET}/out/operator.csv",
        output_column="processed",
        batch_size=BATCH_SIZE,
        role_arn=ROLE_ARN,
        aws_conn_id="aws_bench",
        deferrable=False,
        waiter_delay=1,
    )
    ti = mock.MagicMock()
    ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.try_number = "bench", "process", "run", -1, 1
    started = time.perf_counter()
    summary = operator.execute({"ti": ti})  # type: ignore[arg-type]
    return time.perf_counter() - started, dict(summary)


def main() -> bool:
    from airflow_distmap.demo_data import messy_csv_bytes

    header(f"csv_end_to_end: {ROWS:,} rows, post_processing, batches of {BATCH_SIZE}")
    body = messy_csv_bytes(ROWS)
    with EndpointProcess() as endpoint:
        s3 = endpoint.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="in/data.csv", Body=body)
        pandas = pandas_seconds(s3)
        seconds, summary = operator_seconds(endpoint)
    counts = summary["counts"]
    if summary["status"] != "SUCCEEDED" or summary.get("rows_succeeded", ROWS) != ROWS:
        raise RuntimeError(f"the operator's run did not process every row: {summary}")
    print(f"   input: {len(body) / 1e6:.0f} MB, {ROWS:,} rows (messy text, quoted newlines, non-ASCII)")
    print(f"   pandas read_csv -> apply -> to_csv: {pandas:.1f} s ({ROWS / pandas:,.0f} rows/s)")
    print(
        f"   CsvRowProcessingOperator: {seconds:.1f} s ({ROWS / seconds:,.0f} rows/s); "
        f"children {counts}, collector {summary.get('collect_seconds', '?')} s"
    )
    return report(
        "issue 4e operator vs pandas end to end",
        f"{pandas:.1f} s / {seconds:.1f} s",
        pandas / seconds,
        TARGET,
    )


if __name__ == "__main__":
    main()
