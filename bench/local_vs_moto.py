"""(issue 3a) The local endpoint vs moto's own Distributed Map executor on one 10,000-row CSV definition.

moto runs Lambda functions only in Docker, so both run the same Pass child that formats the row
(``States.Format('Processed data: {}', $.text)``): the comparison is of the Distributed Map machinery
(ItemReader, children, ResultWriter), not of a handler. moto runs in-process (``mock_aws`` with
``execute_state_machine``) in a fresh interpreter, as its documentation shows; the local endpoint runs as
``airflow-distmap local`` (a subprocess on loopback), as users run it. Both are timed the same way: the
execution's own duration (DescribeExecution ``stopDate - startDate``), polled every 0.1 s. (Timing a 0.2 s
run from the client needs polls every few milliseconds, and on 2 cores those polls slow the run they time.)
"""

from __future__ import annotations

import json

from bench.common import (
    PASS_PROCESSOR,
    EndpointProcess,
    csv_body,
    distributed_map_definition,
    header,
    python_json,
    report,
    run_execution,
)

ROWS = 10_000
TARGET = 100.0
REPEATS = 5

_MOTO = """
import json, sys
import boto3
from moto import mock_aws
from bench.common import PASS_PROCESSOR, csv_body, distributed_map_definition, run_execution
with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="bench")
    s3.put_object(Bucket="bench", Key="in.csv", Body=csv_body(%(rows)d))
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    definition = distributed_map_definition("bench", "in.csv", PASS_PROCESSOR)
    described, _ = run_execution(sfn, definition, "moto", 0.1)
    seconds = (described["stopDate"] - described["startDate"]).total_seconds()
    print(json.dumps({"status": described["status"], "seconds": seconds}))
"""


def run_local(rows: int, repeats: int) -> list[float]:
    """Seconds per execution of the definition on the local endpoint (in-process, loopback)."""
    times = []
    with EndpointProcess("--processes", "1") as endpoint:
        s3 = endpoint.client("s3")
        s3.create_bucket(Bucket="bench")
        s3.put_object(Bucket="bench", Key="in.csv", Body=csv_body(rows))
        sfn = endpoint.client("stepfunctions")
        for attempt in range(repeats):
            definition = distributed_map_definition(
                "bench", "in.csv", PASS_PROCESSOR, results_prefix=f"r{attempt}"
            )
            described, _ = run_execution(sfn, definition, f"local-{attempt}", poll=0.1)
            seconds = (described["stopDate"] - described["startDate"]).total_seconds()
            if described["status"] != "SUCCEEDED":
                raise RuntimeError(f"local run failed: {described}")
            output = json.loads(described["output"])
            manifest = s3.get_object(Bucket="bench", Key=output["ResultWriterDetails"]["Key"])["Body"].read()
            if json.loads(manifest)["ResultFiles"]["SUCCEEDED"] == []:
                raise RuntimeError("local run wrote no results")
            times.append(seconds)
    return times


def main() -> bool:
    header(f"local_vs_moto: {ROWS:,}-row CSV, Pass child with States.Format, ResultWriter to S3")
    moto = python_json(_MOTO % {"rows": ROWS}, timeout=400)
    if moto["status"] != "SUCCEEDED":
        raise RuntimeError(f"moto run failed: {moto}")
    local = run_local(ROWS, REPEATS)
    best = min(local)
    print(f"   moto executor: {moto['seconds']:.2f} s ({ROWS / moto['seconds']:,.0f} items/s)")
    print(
        f"   local endpoint: best of {REPEATS} {best:.3f} s ({ROWS / best:,.0f} items/s); "
        f"all: {', '.join(f'{t:.3f}' for t in local)} s"
    )
    return report(
        "issue 3a local endpoint vs moto",
        f"{moto['seconds']:.2f} s / {best:.3f} s",
        moto["seconds"] / best,
        TARGET,
    )


if __name__ == "__main__":
    main()
