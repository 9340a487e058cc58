"""``airflow-distmap demo``: the main job end to end on an embedded local endpoint.

It starts the local AWS endpoint, writes a messy CSV to its S3, runs the ``csv_row_processing`` example DAG
through Airflow (``airflow dags test`` in a child process whose logs go to a file), draws a progress bar from
the Map Run counts, then prints a summary and a few rows side by side.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from airflow_distmap.cli.options import positive_int
from airflow_distmap.demo_data import messy_csv_bytes
from airflow_distmap.project_files import project_path

DAG_ID = "csv_row_processing"
TASK_ID = "process_csv"
BUCKET = "distmap-demo"
COLUMN = "text"
#: The Lambda function the demo DAG invokes (a folder of the functions directory).
FUNCTION = "post_processing"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the demo's options."""
    parser.add_argument(
        "--rows", type=positive_int, default=100_000, help="rows in the generated CSV (default 100,000)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=500, help="rows per Lambda invocation (default 500)"
    )
    parser.add_argument(
        "--workdir", default=".demo", help="where the demo keeps Airflow's home and logs (default .demo)"
    )
    parser.add_argument(
        "--dags-folder",
        default="dags",
        help="folder of the example DAGs (default ./dags, else the project's)",
    )
    parser.add_argument(
        "--functions-dir",
        default="lambda_functions",
        help="Lambda handlers to register (default ./lambda_functions, else the project's)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; return 0 when the DAG run succeeded."""
    from airflow_distmap.local import LocalEndpoint
    from airflow_distmap.local.gc_tuning import tune_garbage_collector

    console = Console()
    dags_folder = project_path(args.dags_folder, containing=f"{DAG_ID}.py").resolve()
    if not (dags_folder / f"{DAG_ID}.py").exists():
        console.print(
            f"[red]No {DAG_ID}.py in {dags_folder}. To fix this, point --dags-folder at the repository's "
            "dags/ (or leave it out)."
        )
        return 2
    functions_dir = project_path(args.functions_dir, containing=FUNCTION)
    if not (functions_dir / FUNCTION).is_dir():
        console.print(
            f"[red]No {FUNCTION} function folder in {functions_dir}. To fix this, point --functions-dir at "
            "the repository's lambda_functions/ (or leave it out)."
        )
        return 2

    workdir = Path(args.workdir).resolve()
    airflow_home = workdir / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "airflow.log"
    logging.getLogger("airflow_distmap").setLevel(logging.WARNING)
    with LocalEndpoint(functions_dir=functions_dir) as endpoint:
        tune_garbage_collector()  # this process serves the endpoint; Airflow runs in its own processes
        console.print(f"Local AWS endpoint: [bold]{endpoint.url}[/] (Step Functions, S3, Lambda)")
        s3 = endpoint.client("s3")
        sfn = endpoint.client("stepfunctions")
        s3.create_bucket(Bucket=BUCKET)
        run_tag = time.strftime("%Y%m%dT%H%M%S")
        input_key = f"input/messy-{args.rows}.csv"
        body = messy_csv_bytes(args.rows)
        s3.put_object(Bucket=BUCKET, Key=input_key, Body=body)
        input_uri = f"s3://{BUCKET}/{input_key}"
        output_uri = f"s3://{BUCKET}/output/{run_tag}/processed.csv"
        console.print(f"Wrote {args.rows:,} rows ({len(body) / 1e6:.1f} MB) to {input_uri}")

        env = _airflow_env(airflow_home, dags_folder, endpoint.airflow_connection_uri())
        conf = {"input_uri": input_uri, "output_uri": output_uri, "batch_size": args.batch_size}
        console.print(
            f"Running DAG [bold]{DAG_ID}[/] through Airflow; Airflow's logs: {escape(str(log_path))}",
            soft_wrap=True,
        )
        started = time.monotonic()
        with log_path.open("ab") as log:
            subprocess.run(
                [_airflow_bin(), "db", "migrate"], env=env, stdout=log, stderr=subprocess.STDOUT, check=True
            )
            process = subprocess.Popen(
                [_airflow_bin(), "dags", "test", DAG_ID, "--conf", json.dumps(conf)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            map_run = _follow_progress(sfn, process, args.rows)
        elapsed = time.monotonic() - started
        ok = process.returncode == 0
        _print_summary(console, s3, _read_summary(airflow_home), map_run, elapsed, ok, log_path)
    return 0 if ok else 1


def _airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def _airflow_env(home: Path, dags_folder: Path, connection_uri: str) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW_CONN_AWS_DEFAULT": connection_uri,
    }


def _follow_progress(sfn: Any, process: subprocess.Popen[bytes], rows: int) -> dict[str, Any] | None:
    """Draw a progress bar from DescribeMapRun item counts until the Airflow process exits."""
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    map_run: dict[str, Any] | None = None
    with Progress(*columns) as progress:
        task = progress.add_task("waiting for the Map Run", total=rows, detail="")
        while process.poll() is None:
            map_run = _latest_map_run(sfn) or map_run
            if map_run is not None:
                counts = map_run["itemCounts"]
                done = counts["succeeded"] + counts["failed"] + counts["timedOut"] + counts["aborted"]
                progress.update(
                    task,
                    description=f"Map Run {map_run['status'].lower()}",
                    total=max(counts["total"], rows),
                    completed=done,
                    detail=f"failed {counts['failed']:,}  running {counts['running']:,}",
                )
            time.sleep(0.5)
    return _latest_map_run(sfn) or map_run


def _latest_map_run(sfn: Any) -> dict[str, Any] | None:
    machines = sfn.list_state_machines()["stateMachines"]
    for machine in machines:
        executions = sfn.list_executions(stateMachineArn=machine["stateMachineArn"], maxResults=1)[
            "executions"
        ]
        for execution in executions:
            runs = sfn.list_map_runs(executionArn=execution["executionArn"])["mapRuns"]
            if runs:
                return dict(sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"]))
    return None


def _read_summary(airflow_home: Path) -> dict[str, Any] | None:
    """The operator's XCom summary, read from the demo's own Airflow database."""
    database = airflow_home / "airflow.db"
    if not database.exists():
        return None
    with sqlite3.connect(database) as connection:
        row = connection.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value' "
            "ORDER BY timestamp DESC LIMIT 1",
            (DAG_ID, TASK_ID),
        ).fetchone()
    if row is None:
        return None
    value: Any = row[0]
    while isinstance(value, (str, bytes)):
        value = json.loads(value)
    return dict(value)


def _print_summary(
    console: Console,
    s3: Any,
    summary: dict[str, Any] | None,
    map_run: dict[str, Any] | None,
    elapsed: float,
    ok: bool,
    log_path: Path,
) -> None:
    if not ok or summary is None:
        console.print(
            f"[red]The DAG run failed: see Airflow's logs in {escape(str(log_path))}", soft_wrap=True
        )
        return
    rows = int(summary["rows_total"])
    table = Table(title="Result", show_header=False, expand=True)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("rows", f"{rows:,}")
    table.add_row("succeeded", f"{summary['rows_succeeded']:,}")
    table.add_row("failed", f"{summary['rows_failed']:,}  {summary.get('errors_by_type') or ''}")
    if map_run is not None and map_run.get("stopDate"):
        seconds = (map_run["stopDate"] - map_run["startDate"]).total_seconds()
        table.add_row("throughput, Map Run", f"{rows / seconds:,.0f} rows/s ({seconds:.1f} s)")
    table.add_row("collect and write output", f"{summary.get('collect_seconds', 0):.1f} s")
    table.add_row("whole DAG run, Airflow start-up included", f"{elapsed:.1f} s")
    console.print(table)
    # Outside the table and never wrapped by rich, so each location copies whole from the terminal.
    for label, location in (
        ("manifest", summary["manifest_uri"]),
        ("output", summary["output_uri"]),
        ("failed rows", summary.get("failed_rows_uri")),
        ("Airflow logs", log_path),
    ):
        console.print(f"{label + ':':<14}{location}", soft_wrap=True, highlight=False, markup=False)

    sample = Table(title="A few rows, input and output side by side")
    sample.add_column(f"input {COLUMN}", overflow="fold")
    sample.add_column("output processed", overflow="fold")
    bucket, _, key = summary["output_uri"][len("s3://") :].partition("/")
    head = s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-65535")["Body"].read()
    reader = csv.DictReader(io.StringIO(head.decode("utf-8", errors="ignore")))
    for row in itertools.islice(reader, 6):
        sample.add_row(repr(row.get(COLUMN, "")), repr(row.get("processed", "")))
    console.print(sample)
