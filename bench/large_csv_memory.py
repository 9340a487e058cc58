"""(issue 3d) A 1 GB CSV through ItemReader with ItemBatcher: peak resident memory of the endpoint < 500 MB.

The endpoint runs as its own process (``airflow-distmap local``); a thread samples its RSS (psutil) every
50 ms. The CSV is written to a temporary file and uploaded with boto3 ``upload_file`` (a multipart upload,
ten 8 MB parts at a time, which moto hashes and spools as they arrive); the upload's peak is reported
separately from the execution's, which is the target. The children are Pass states that return the batch's
row count (``States.ArrayLength``); their inputs still go to the result files (AWS's NONE shape).
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from bench.common import (
    EndpointProcess,
    RssSampler,
    distributed_map_definition,
    header,
    report,
    run_execution,
)

TARGET_BYTES = 1_000_000_000
TEXT_WIDTH = 1000
BATCH_SIZE = 200
LIMIT_MB = 500.0
MB = 1_000_000


def write_csv(path: str) -> tuple[int, int]:
    """Write an ``id,text`` CSV of at least ``TARGET_BYTES`` bytes; return (rows, bytes)."""
    filler = ("lorem ipsum dolor sit amet " * (TEXT_WIDTH // 27 + 1))[:TEXT_WIDTH]
    rows = 0
    size = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("id,text\n")
        while size < TARGET_BYTES:
            block = "".join(f"{rows + i},{filler}\n" for i in range(10_000))
            out.write(block)
            rows += 10_000
            size += len(block)
    return rows, os.path.getsize(path)


def main() -> bool:
    header(f"large_csv_memory: ~1 GB CSV, ItemBatcher {BATCH_SIZE} rows, endpoint as a subprocess")
    processor = {
        "StartAt": "Count",
        "States": {
            "Count": {"Type": "Pass", "Parameters": {"rows.$": "States.ArrayLength($.Items)"}, "End": True}
        },
    }
    with tempfile.TemporaryDirectory(prefix="distmap-bench-") as tmp:
        path = os.path.join(tmp, "big.csv")
        rows, size = write_csv(path)
        with EndpointProcess() as endpoint:
            s3 = endpoint.client("s3")
            sfn = endpoint.client("stepfunctions")
            s3.create_bucket(Bucket="bench")
            idle = endpoint.rss()
            with RssSampler(endpoint.rss) as upload:
                started = time.perf_counter()
                s3.upload_file(path, "bench", "big.csv")
                upload_seconds = time.perf_counter() - started
            os.unlink(path)
            time.sleep(1.0)
            before = endpoint.rss()
            definition = distributed_map_definition("bench", "big.csv", processor, batch_size=BATCH_SIZE)
            with RssSampler(endpoint.rss) as execution:
                described, seconds = run_execution(sfn, definition, "big", poll=0.5)
            if described["status"] != "SUCCEEDED":
                raise RuntimeError(f"the run failed: {described.get('error')}: {described.get('cause')}")
            runs = sfn.list_map_runs(executionArn=described["executionArn"])["mapRuns"]
            counts = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"])["itemCounts"]
            if counts["succeeded"] != rows:
                raise RuntimeError(f"{counts['succeeded']} of {rows} items succeeded")
            json.loads(described["output"])
    print(f"   input: {size / MB:,.0f} MB, {rows:,} rows of {TEXT_WIDTH + 8} bytes")
    print(
        f"   endpoint RSS idle: {idle / MB:.0f} MB; during upload_file ({upload_seconds:.0f} s): "
        f"peak {upload.peak / MB:,.0f} MB"
    )
    print(
        f"   execution: {seconds:.0f} s ({rows / seconds:,.0f} rows/s); RSS before {before / MB:.0f} MB, "
        f"peak during the execution {execution.peak / MB:.0f} MB"
    )
    peak_mb = execution.peak / MB
    return report(
        "issue 3d 1 GB CSV, endpoint peak RSS during the execution",
        f"RSS sampled every 50 ms (upload peak {upload.peak / MB:,.0f} MB, reported apart)",
        peak_mb,
        LIMIT_MB,
        unit=" MB",
        at_most=True,
    )


if __name__ == "__main__":
    main()
