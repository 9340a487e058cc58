"""(issue 3c) An I/O-bound handler (20 ms wait per row) over 20,000 rows at MaxConcurrency 500.

Ideal rate: 500 concurrent waits / 0.020 s = 25,000 rows/s. Measured twice in one run: one child per row
(20,000 Lambda invocations) and ItemBatcher batches of ``BATCH_SIZE`` rows (500 invocations, all running at
once; a batch runs its rows one after the other, so its ideal rate is the same). The endpoint runs as
``airflow-distmap local`` in a subprocess, with its default Lambda worker processes (one per core).

Each run's time is the execution's own duration (DescribeExecution ``stopDate - startDate``, as the console
shows it), polled every 0.1 s: timing it from this process would need polls every few milliseconds, and on a
2-core machine those polls (about 2 ms of CPU each, here and in the endpoint) slow the run they measure.
"""

from __future__ import annotations

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
from bench.handlers import IO_SECONDS_PER_ROW

ROWS = 20_000
CONCURRENCY = 500
BATCH_SIZE = ROWS // CONCURRENCY
TARGET_FRACTION = 0.8
REPEATS = 3


def main() -> bool:
    ideal = CONCURRENCY / IO_SECONDS_PER_ROW
    header(
        f"io_handler: {ROWS:,} rows x {IO_SECONDS_PER_ROW * 1000:.0f} ms wait, MaxConcurrency {CONCURRENCY}"
    )
    results: dict[str, float] = {}
    with EndpointProcess("--function", "io=bench.handlers:io_handler") as endpoint:
        s3 = endpoint.client("s3")
        s3.create_bucket(Bucket="bench")
        s3.put_object(Bucket="bench", Key="in.csv", Body=csv_body(ROWS))
        sfn = endpoint.client("stepfunctions")
        processor = lambda_processor("io")
        for label, batch_size in (("warm-up", BATCH_SIZE), ("per-row", None), ("batched", BATCH_SIZE)):
            for attempt in range(1 if label == "warm-up" else REPEATS):
                definition = distributed_map_definition(
                    "bench",
                    "in.csv",
                    processor,
                    batch_size=batch_size,
                    max_concurrency=CONCURRENCY,
                    item_selector=ROW_SELECTOR,
                    results_prefix=f"{label}-{attempt}",
                )
                described, _ = run_execution(sfn, definition, f"{label}-{attempt}", poll=0.1)
                seconds = (described["stopDate"] - described["startDate"]).total_seconds()
                succeeded = rows_succeeded(s3, described)
                if described["status"] != "SUCCEEDED" or succeeded != ROWS:
                    raise RuntimeError(f"{label}: {described['status']}, {succeeded} rows succeeded")
                if label != "warm-up":
                    results[label] = min(results.get(label, seconds), seconds)
    ok = True
    for label, seconds in results.items():
        rate = ROWS / seconds
        detail = "1 row per child" if label == "per-row" else f"{BATCH_SIZE} rows per batch"
        ok = (
            report(
                f"issue 3c I/O handler, {label} ({detail})",
                f"best of {REPEATS} {seconds:.2f} s = {rate:,.0f} rows/s of ideal {ideal:,.0f}",
                rate / ideal * 100,
                TARGET_FRACTION * 100,
                unit="%",
            )
            and ok
        )
    return ok


if __name__ == "__main__":
    main()
