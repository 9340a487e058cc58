"""(issue 4f) The collector alone: rows per second, and peak memory at 1,000,000 rows vs 100,000 rows.

For each size the benchmark writes to a local endpoint (a subprocess, so S3 memory is not counted) the input
CSV (``airflow_distmap.demo_data``: messy text, quoted fields, non-ASCII) and the result files of a finished
run (1,000-row batches in shuffled order, outputs as ``row_handler`` returns them), then runs
``collect()`` in a fresh interpreter, timed, with its peak RSS (``VmHWM``; ``ru_maxrss`` would report the
parent's peak, which survives ``exec``) read at the end.
"""

from __future__ import annotations

import json
import random
from typing import Any

from bench.common import EndpointProcess, header, python_json, report

SIZES = (100_000, 1_000_000)
BATCH = 1_000
TARGET_RATE = 200_000
TARGET_MEMORY_RATIO = 1.25
BUCKET = "bench"

_COLLECT = """
import json, time
from airflow_distmap.csv_processing.collector import collect, iter_child_entries
from airflow_distmap.csv_processing.preflight import check_csv_input, check_output_location
from airflow_distmap.ownership import owner_token
from airflow_distmap.results import read_manifest
from bench.common import EndpointProcess
endpoint = EndpointProcess.__new__(EndpointProcess)
endpoint.url = %(url)r
s3 = endpoint.client("s3")
owner = owner_token("bench", "collect", %(rows)r)
input_uri = "s3://bench/in/%(rows)d.csv"
layout = check_csv_input(s3, input_uri, columns=["text"], output_column="processed")
target = check_output_location(s3, "s3://bench/out/%(rows)d.csv", input_uri=input_uri, owner=owner)
manifest = read_manifest(s3, "s3://bench/results/%(rows)d/manifest.json")
def high_water_kb():
    # VmHWM: this process's peak RSS (ru_maxrss would carry the parent's peak over exec)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
before = high_water_kb()
started = time.perf_counter()
summary = collect(s3, iter_child_entries(s3, manifest), layout, target, "processed", owner=owner)
seconds = time.perf_counter() - started
peak = high_water_kb()
print(json.dumps({"seconds": seconds, "rows": summary.rows_total, "succeeded": summary.rows_succeeded,
                  "maxrss_kb": peak, "before_kb": before}))
"""


def _compact(value: Any) -> str:
    """JSON as Step Functions writes it: compact, non-ASCII as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def upload_run(s3: Any, rows: int) -> None:
    """Put the input CSV and a finished run's result files (manifest included) for ``rows`` rows."""
    from airflow_distmap.demo_data import iter_messy_rows, messy_csv_bytes

    s3.put_object(Bucket=BUCKET, Key=f"in/{rows}.csv", Body=messy_csv_bytes(rows))
    texts = [row[3] for row in iter_messy_rows(rows)]
    entries = []
    for first in range(0, rows, BATCH):
        indexes = range(first, min(first + BATCH, rows))
        items = [{"index": i, "row": {"text": texts[i]}} for i in indexes]
        output = {"rows": [{"index": i, "output": texts[i].upper()} for i in indexes]}
        entries.append(
            {
                "ExecutionArn": f"arn:aws:states:us-east-1:123456789012:execution:bench/run:{first}",
                "Input": _compact({"BatchInput": {"skip": []}, "Items": items}),
                "InputDetails": {"Included": True},
                "Name": str(first),
                "Output": _compact(output),
                "OutputDetails": {"Included": True},
                "Status": "SUCCEEDED",
            }
        )
    random.Random(5).shuffle(entries)
    key = f"results/{rows}/SUCCEEDED_0.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=_compact(entries).encode())
    manifest = {
        "DestinationBucket": BUCKET,
        "MapRunArn": "arn:aws:states:us-east-1:123456789012:mapRun:bench/run:run",
        "ResultFiles": {"SUCCEEDED": [{"Key": key, "Size": 1}], "FAILED": [], "PENDING": []},
    }
    body = json.dumps(manifest).encode()
    s3.put_object(Bucket=BUCKET, Key=f"results/{rows}/manifest.json", Body=body)


def main() -> bool:
    header(f"collector: collect() at {', '.join(f'{n:,}' for n in SIZES)} rows, each in a fresh interpreter")
    measured = {}
    with EndpointProcess() as endpoint:
        s3 = endpoint.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        for rows in SIZES:
            upload_run(s3, rows)
        for rows in SIZES:
            result = python_json(_COLLECT % {"url": endpoint.url, "rows": rows}, timeout=300)
            if result["rows"] != rows or result["succeeded"] != rows:
                raise RuntimeError(f"collect() wrote {result['rows']} rows, {result['succeeded']} succeeded")
            measured[rows] = result
            print(
                f"   {rows:>9,} rows: {result['seconds']:.2f} s ({rows / result['seconds']:,.0f} rows/s), "
                f"peak RSS {result['maxrss_kb'] / 1024:.0f} MiB (after imports and pre-flight "
                f"{result['before_kb'] / 1024:.0f} MiB)"
            )
    small, large = (measured[n] for n in SIZES)
    rate = SIZES[1] / large["seconds"]
    ok = report(
        "issue 4f collector throughput at 1,000,000 rows", f"{rate:,.0f} rows/s", rate / TARGET_RATE, 1.0
    )
    ratio = large["maxrss_kb"] / small["maxrss_kb"]
    memory_ok = report(
        "issue 4f collector peak memory, 1,000,000 vs 100,000 rows",
        f"{large['maxrss_kb'] / 1024:.0f} MiB / {small['maxrss_kb'] / 1024:.0f} MiB",
        ratio,
        TARGET_MEMORY_RATIO,
        at_most=True,
    )
    return ok and memory_ok


if __name__ == "__main__":
    main()
