from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
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
        # The banner's AWS CLI lines, pasted into a shell with nothing else set up, answer.
        cli_lines = re.search(
            r"^  (export AWS_ENDPOINT_URL=.*)\n  (.*list-state-machines)$", banner, re.MULTILINE
        )
        assert cli_lines is not None, banner
        pasted = subprocess.run(
            ["bash", "-c", "; ".join(cli_lines.groups())],
            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert json.loads(pasted.stdout) == {"stateMachines": []}, pasted.stderr
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


@pytest.mark.parametrize("option", ["echo", "echo=0", "echo=901", "echo=soon", "=5"])
def test_a_bad_function_timeout_is_a_usage_error(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    from airflow_distmap.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["local", "--function-timeout", option])
    assert caught.value.code == 2
    assert "Expected NAME=SECONDS" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--port", "99999"], "Expected a TCP port from 0 to 65535"),
        (["--port", "http"], "Expected a TCP port from 0 to 65535"),
        (["--functions-dir", "/no/such/folder"], "No folder '/no/such/folder'"),
        (["--processes", "0"], "Expected a whole number of at least 1, got '0'"),
    ],
)
def test_a_bad_option_value_is_a_usage_error(
    options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_distmap.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["local", *options])
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_the_default_functions_folder_name_is_found_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_distmap.cli import build_parser

    monkeypatch.chdir(tmp_path)  # no lambda_functions/ here: the project's is used, as the endpoint would
    args = build_parser("local").parse_args(["local", "--functions-dir", "lambda_functions"])
    assert args.functions_dir == "lambda_functions"


def test_a_timeout_for_an_unregistered_function_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_distmap.cli import main

    options = ["--functions-dir", str(tmp_path), "--port", "0", "--function-timeout", "nope=5"]
    assert main(["local", *options]) == 2
    assert "no function 'nope' is registered" in capsys.readouterr().err


def test_a_port_in_use_is_refused_naming_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from airflow_distmap.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["local", "--functions-dir", str(tmp_path), "--port", str(port)]) == 1
    error = capsys.readouterr().err
    assert f"Cannot listen on 127.0.0.1:{port}" in error
    assert "To fix this, stop what listens there or pass another --port (0: a free one)" in error


def _invoke(url: str, function: str, payload: object) -> str:
    """Start an execution whose one Task invokes ``function`` with ``payload``; return its ARN."""
    sfn = boto3.client("stepfunctions", endpoint_url=url, region_name="us-east-1")
    task = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True}
    task["Parameters"] = {"FunctionName": function, "Payload": payload}
    machine = sfn.create_state_machine(
        name=f"call-{function}",
        definition=json.dumps({"StartAt": "Call", "States": {"Call": task}}),
        roleArn="arn:aws:iam::123456789012:role/r",
    )["stateMachineArn"]
    return str(sfn.start_execution(stateMachineArn=machine)["executionArn"])


def _closed(url: str, execution: str) -> dict:
    sfn = boto3.client("stepfunctions", endpoint_url=url, region_name="us-east-1")
    for _ in range(400):
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.05)
    raise AssertionError(f"{execution} still running")


def test_a_function_timeout_is_applied_and_shown(tmp_path: Path) -> None:
    naps = "import time\n\ndef nap(event, context):\n    time.sleep(event)\n    return 'rested'\n"
    (tmp_path / "naps.py").write_text(naps)
    process, banner = _start(
        tmp_path, "--function", "nap=naps:nap", "--function", "short=naps:nap", "--function-timeout", "nap=60"
    )
    try:
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner).group(1)  # type: ignore[union-attr]
        executions = [_invoke(url, name, 3.5) for name in ("nap", "short")]  # 3.5 s: over Lambda's 3 s
        patient, hasty = (_closed(url, execution) for execution in executions)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    assert re.search(r"^\s+nap\s+naps:nap\s+\(sys\.path; timeout 60 s\)", banner, re.MULTILINE), banner
    assert re.search(r"^\s+short\s+naps:nap\s+\(sys\.path; timeout 3 s\)", banner, re.MULTILINE), banner
    assert (patient["status"], json.loads(patient["output"])["Payload"]) == ("SUCCEEDED", "rested")
    assert (hasty["status"], hasty["error"]) == ("FAILED", "Sandbox.Timedout")


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


def test_function_modules_are_imported_from_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "myfns.py").write_text("def shout(event, context):\n    return event.upper()\n")
    script = Path(sys.executable).with_name("airflow-distmap")  # a console script: its sys.path lacks the cwd
    process = subprocess.Popen(
        [str(script), "local", "--port", "0", "--function", "up=myfns:shout"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = ""
        for line in process.stdout:
            banner += line
            if line.startswith("Press Ctrl-C"):
                break
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner).group(1)  # type: ignore[union-attr]
        described = _closed(url, _invoke(url, "up", "abc"))
        assert described["status"] == "SUCCEEDED", described
        assert json.loads(described["output"])["Payload"] == "ABC"
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)


def test_a_function_whose_handler_will_not_load_is_warned_about(tmp_path, monkeypatch):
    from airflow_distmap.cli.local import unimportable_handlers

    (tmp_path / "mymod.py").write_text("def handler(event, context):\n    return event\n\nNUMBER = 5\n")
    (tmp_path / "broken.py").write_text("def handler(event, context)\n    return event\n")
    (tmp_path / "failing.py").write_text("import no_such_dependency\n")
    monkeypatch.chdir(tmp_path)
    warnings = unimportable_handlers(
        [
            ("mine", "mymod:handler"),
            ("std", "json:loads"),
            ("dotted", "mymod.handler"),
            ("typo", "mymdo:handler"),
            ("missing", "mymod:handle"),
            ("number", "mymod:NUMBER"),
            ("syntax", "broken:handler"),
            ("imports", "failing:handler"),
        ]
    )
    assert len(warnings) == 5, warnings
    typo, missing, number, syntax, imports = warnings
    assert "--function typo=mymdo:handler: module 'mymdo' is not found" in typo
    assert "Runtime.ImportModuleError" in typo
    assert "Runtime.HandlerNotFound: module 'mymod' has no 'handle'" in missing
    assert "mymod.NUMBER is not callable (its type is int)" in number
    assert "Runtime.UserCodeSyntaxError" in syntax
    assert "Runtime.ImportModuleError: ModuleNotFoundError: No module named 'no_such_dependency'" in imports
    assert all("To fix this" in warning for warning in warnings)


def test_the_bare_command_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    from airflow_distmap.cli import main

    assert main([]) == 2
    error = capsys.readouterr().err
    assert "usage: airflow-distmap" in error
    assert all(command in error for command in ("local", "demo", "results"))
