"""Helpers shared by the benchmarks: data, definitions, timing, memory."""

from __future__ import annotations

import contextlib
import json
import platform
import time
from collections.abc import Callable
from typing import Any

import psutil

ROLE_ARN = "arn:aws:iam::123456789012:role/bench"


def machine() -> str:
    """One line describing the machine the figures were measured on."""
    memory_gb = psutil.virtual_memory().total / 2**30
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        model = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model
        )
    cores = psutil.cpu_count()
    return f"{model}, {cores} cores, {memory_gb:.0f} GiB RAM, Python {platform.python_version()}"


def csv_body(rows: int, text_width: int = 20) -> bytes:
    """``id,text`` CSV with ``rows`` data rows."""
    filler = "x" * max(0, text_width - 12)
    return ("id,text\n" + "".join(f"{i},row {i} {filler}\n" for i in range(rows))).encode()


def distributed_map_definition(
    bucket: str,
    key: str,
    processor: dict[str, Any],
    *,
    results_prefix: str = "results",
    batch_size: int | None = None,
    max_concurrency: int | None = None,
    item_selector: dict[str, Any] | None = None,
) -> str:
    """A one-state machine: a Distributed Map over a CSV with FIRST_ROW headers, results exported to S3."""
    state: dict[str, Any] = {
        "Type": "Map",
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
            "Parameters": {"Bucket": bucket, "Key": key},
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            **processor,
        },
        "ResultWriter": {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": bucket, "Prefix": results_prefix},
        },
        "End": True,
    }
    if item_selector is not None:
        state["ItemSelector"] = item_selector
    if batch_size:
        state["ItemBatcher"] = {"MaxItemsPerBatch": batch_size}
    if max_concurrency is not None:
        state["MaxConcurrency"] = max_concurrency
    return json.dumps({"StartAt": "Rows", "States": {"Rows": state}})


def lambda_processor(function_name: str) -> dict[str, Any]:
    """An ItemProcessor that invokes a Lambda function with the item (or batch) as payload."""
    return {
        "StartAt": "Invoke",
        "States": {
            "Invoke": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": function_name, "Payload.$": "$"},
                "OutputPath": "$.Payload",
                "End": True,
            }
        },
    }


def run_execution(sfn: Any, definition: str, name: str, poll: float = 0.05) -> tuple[dict[str, Any], float]:
    """Create the state machine, run one execution to its end; return (DescribeExecution, seconds)."""
    arn = sfn.create_state_machine(name=name, definition=definition, roleArn=ROLE_ARN)["stateMachineArn"]
    started = time.perf_counter()
    execution_arn = sfn.start_execution(stateMachineArn=arn, name=f"{name}-run", input="{}")["executionArn"]
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return dict(described), time.perf_counter() - started
        time.sleep(poll)


def timed(func: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``func`` once; return (its result, seconds)."""
    started = time.perf_counter()
    result = func()
    return result, time.perf_counter() - started


# -- reporting and processes ------------------------------------------------------------------------------

#: Seconds one benchmark may run before ``python -m bench`` stops it (each must end well within 10 minutes).
BENCH_TIMEOUT_SECONDS = 570
PASS_PROCESSOR: dict[str, Any] = {
    "StartAt": "Format",
    "States": {
        "Format": {
            "Type": "Pass",
            "Parameters": {"out.$": "States.Format('Processed data: {}', $.text)"},
            "End": True,
        }
    },
}


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, formatted."""
    one, five, fifteen = psutil.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def report(
    name: str, measured: str, ratio: float, target: float, unit: str = "x", *, at_most: bool = False
) -> bool:
    """Print one target's line: the figures, the ratio against the target and PASS or MISS.

    :param at_most: the target is an upper bound (memory) rather than a lower bound (speed).
    """
    ok = ratio <= target if at_most else ratio >= target
    verdict = "PASS" if ok else "MISS"
    bound = "<=" if at_most else ">="
    print(
        f"[{verdict}] {name}: {measured} -> {ratio:.2f}{unit} (target {bound} {target:g}{unit})", flush=True
    )
    return ok


def header(title: str) -> None:
    """Print the benchmark's title, the machine and the load average."""
    print(f"== {title}", flush=True)
    print(f"   machine: {machine()}; load average: {load_average()}", flush=True)


def free_port() -> int:
    """A free TCP port on loopback."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def python_json(code: str, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (cwd: the repository); its last stdout line is JSON, returned."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({done.returncode}): {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


#: The operator's ItemSelector: each item carries its index and the row's ``text`` column.
ROW_SELECTOR: dict[str, Any] = {"index.$": "$$.Map.Item.Index", "row": {"text.$": "$$.Map.Item.Value.text"}}


def map_run_counts(sfn: Any, execution_arn: str) -> dict[str, int]:
    """The Map Run's ``itemCounts`` of an execution's only Map Run."""
    runs = sfn.list_map_runs(executionArn=execution_arn)["mapRuns"]
    return dict(sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"])["itemCounts"])


def rows_succeeded(s3: Any, described: dict[str, Any]) -> int:
    """Rows whose row_handler result has an ``output`` (reads every SUCCEEDED result file)."""
    output = json.loads(described["output"])
    details = output["ResultWriterDetails"]
    manifest = json.loads(s3.get_object(Bucket=details["Bucket"], Key=details["Key"])["Body"].read())
    total = 0
    for entry in manifest["ResultFiles"].get("SUCCEEDED", []):
        body = s3.get_object(Bucket=details["Bucket"], Key=entry["Key"])["Body"].read()
        for child in json.loads(body):
            result = json.loads(child["Output"])
            rows = result.get("rows", [result])
            total += sum(1 for row in rows if "output" in row)
    return total


class EndpointProcess:
    """``airflow-distmap local`` as a subprocess on a free loopback port (the endpoint a user would run).

    :param extra: more command-line options (``--function NAME=module:callable``...).
    """

    def __init__(self, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra = extra
        self.process: Any = None

    def __enter__(self) -> EndpointProcess:
        import os
        import subprocess
        import sys
        import urllib.request
        from pathlib import Path

        root = Path(__file__).resolve().parent.parent
        command = [str(Path(sys.executable).with_name("airflow-distmap")), "local", "--port", str(self.port)]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
        }
        self.process = subprocess.Popen(
            [*command, *self.extra], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url, timeout=1):
                    pass
            except OSError as error:
                status = getattr(error, "code", None)
                if status is not None and status != 503:
                    return self  # an HTTP error answer: the endpoint is up
            else:
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"the endpoint exited with {self.process.returncode}")
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError("the endpoint did not start within 60 s")

    def __exit__(self, *exc: object) -> None:
        import subprocess

        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on this endpoint."""
        import boto3
        from botocore.config import Config

        from airflow_distmap.local.endpoint import SIGN_S3_PAYLOADS

        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(
                s3={"addressing_style": "path", "payload_signing_enabled": SIGN_S3_PAYLOADS},
                retries={"mode": "standard", "max_attempts": 3},
            ),
        )

    def rss(self) -> int:
        """Resident memory of the endpoint process and its children (the Lambda workers excluded), bytes."""
        return int(psutil.Process(self.process.pid).memory_info().rss)


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds in a thread; ``peak`` is the highest seen."""

    def __init__(self, sample: Callable[[], int], interval: float = 0.05) -> None:
        import threading

        self.sample = sample
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.sample())
            except psutil.Error:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak = self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.sample())
