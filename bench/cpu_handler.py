"""(issue 3b) A CPU-heavy handler (about 1 ms of CPU per row) over 100,000 rows vs sequential ``df.apply``.

The local endpoint runs ``bench.handlers.cpu_handler`` (``row_handler(burn_cpu)``) in its Lambda worker
processes (one per core), in ItemBatcher batches of ``BATCH_SIZE`` rows; pandas applies ``burn_cpu`` to the
same column in this process. Both are timed in this run, one after the other. The endpoint runs as
``airflow-distmap local`` in a subprocess (its Lambda workers: one process per core).
"""

from __future__ import annotations

import io
import time

from bench.common import (
    ROW_SELECTOR,
    EndpointProcess,
    csv_body,
    distributed_map_definition,
    header,
    lambda_processor,
    report,
    rows_succeeded,
    run_execution,
)
from bench.handlers import burn_cpu

ROWS = 100_000
BATCH_SIZE = 250
TARGET = 1.8


def pandas_seconds(body: bytes) -> float:
    """Seconds for ``read_csv`` + ``df["text"].apply`` of the row function, sequentially."""
    import pandas as pd

    started = time.perf_counter()
    frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
    frame["out"] = frame["text"].apply(lambda text: burn_cpu({"text": text}))
    return time.perf_counter() - started


def local_seconds(body: bytes, rows: int) -> float:
    """Seconds for the Distributed Map run of ``cpu_handler`` on the local endpoint."""
    with EndpointProcess("--function", "cpu=bench.handlers:cpu_handler") as endpoint:
        s3 = endpoint.client("s3")
        s3.create_bucket(Bucket="bench")
        s3.put_object(Bucket="bench", Key="warm.csv", Body=csv_body(200))
        s3.put_object(Bucket="bench", Key="in.csv", Body=body)
        sfn = endpoint.client("stepfunctions")
        processor = lambda_processor("cpu")
        warm = distributed_map_definition(
            "bench", "warm.csv", processor, batch_size=10, item_selector=ROW_SELECTOR
        )
        run_execution(sfn, warm, "warm-up")  # starts the worker processes
        definition = distributed_map_definition(
            "bench",
            "in.csv",
            processor,
            batch_size=BATCH_SIZE,
            item_selector=ROW_SELECTOR,
            results_prefix="cpu",
        )
        described, seconds = run_execution(sfn, definition, "cpu", poll=0.05)
        succeeded = rows_succeeded(s3, described)
        if described["status"] != "SUCCEEDED" or succeeded != rows:
            raise RuntimeError(f"run did not process every row: {described['status']}, {succeeded} rows")
    return seconds


def main() -> bool:
    header(f"cpu_handler: {ROWS:,} rows x ~1 ms CPU, ItemBatcher {BATCH_SIZE} rows per batch")
    body = csv_body(ROWS)
    local = local_seconds(body, ROWS)
    pandas = pandas_seconds(body)
    print(f"   pandas df.apply: {pandas:.1f} s ({ROWS / pandas:,.0f} rows/s)")
    print(f"   local endpoint: {local:.1f} s ({ROWS / local:,.0f} rows/s)")
    return report(
        "issue 3b CPU handler vs df.apply", f"{pandas:.1f} s / {local:.1f} s", pandas / local, TARGET
    )


if __name__ == "__main__":
    main()
