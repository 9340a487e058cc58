from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

CLI = [sys.executable, "-m", "airflow_distmap.cli"]


def _start(tmp_path: Path, *options: str) -> tuple[subprocess.Popen[str], str]:
    functions = tmp_path / "lambda_functions"
    (functions / "shout").mkdir(parents=True)
    (functions / "shout" / "handler.py").write_text(
        "def handler(event, context):\n    return event.upper()\n"
    )
    process = subprocess.Popen(
        [*CLI, "local", "--port", "0", *options],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    banner = "".join(seen)
    assert "listening on http://127.0.0.1:" in banner, banner
    return process, banner


def test_local_serves_until_ctrl_c_and_prints_the_airflow_connection(tmp_path: Path) -> None:
    process, banner = _start(tmp_path, "--function", "echo=json:loads")
    try:
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner).group(1)  # type: ignore[union-attr]
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        s3.create_bucket(Bucket="cli-bucket")
        s3.put_object(Bucket="cli-bucket", Key="k", Body=b"v")
        assert s3.get_object(Bucket="cli-bucket", Key="k")["Body"].read() == b"v"
        sfn = boto3.client("stepfunctions", endpoint_url=url, region_name="us-east-1")
        assert sfn.list_state_machines()["stateMachines"] == []
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)

    assert process.returncode == 0, out
    assert "Stopped." in out
    exported = re.search(r"export AIRFLOW_CONN_AWS_DEFAULT='([^']+)'", banner)
    assert exported is not None, banner
    from airflow.models.connection import Connection

    connection = Connection.from_json(exported.group(1), conn_id="aws_default")
    assert connection.extra_dejson["endpoint_url"] == url
    assert "airflow connections add aws_default --conn-type aws" in banner
    assert re.search(r"^\s+shout\s+handler:handler", banner, re.MULTILINE)
    assert re.search(r"^\s+echo\s+json:loads", banner, re.MULTILINE)


def test_sigterm_also_stops_cleanly(tmp_path: Path) -> None:
    process, _banner = _start(tmp_path)

    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)

    assert process.returncode == 0, out


def test_bad_function_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from airflow_distmap.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["local", "--function", "no-handler"])

    assert caught.value.code == 2
    assert "Expected NAME=module:callable" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_a_host_other_than_loopback_is_flagged(host: str, loopback: bool) -> None:
    from airflow_distmap.cli.local import _is_loopback

    assert _is_loopback(host) is loopback
