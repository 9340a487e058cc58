"""``airflow-distmap local``: serve the local AWS endpoint in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import errno
import importlib.util
import ipaddress
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

from airflow_distmap.cli.options import positive_int
from airflow_distmap.local.endpoint import DEFAULT_FUNCTIONS_DIR, LocalEndpoint
from airflow_distmap.local.gc_tuning import tune_garbage_collector
from airflow_distmap.local.lambdas.registry import parse_function_option
from airflow_distmap.project_files import project_path

log = logging.getLogger(__name__)

DEFAULT_PORT = 4566


def _function_option(text: str) -> tuple[str, str]:
    try:
        return parse_function_option(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: Lambda's longest function timeout.
MAX_TIMEOUT_SECONDS = 900


def _timeout_option(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not sep or not name.strip() or not 0 < seconds <= MAX_TIMEOUT_SECONDS:
        raise argparse.ArgumentTypeError(
            f"Expected NAME=SECONDS with 0 < SECONDS <= {MAX_TIMEOUT_SECONDS} (Lambda's limit), got {text!r}"
        )
    return name.strip(), seconds


def _port_option(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"Expected a TCP port from 0 to 65535 (0: a free one), got {text!r}")
    return port


def _folder_option(text: str) -> str:
    if not project_path(text).is_dir():  # as the endpoint finds it: here, else the project's
        raise argparse.ArgumentTypeError(f"No folder {text!r} (from {os.getcwd()})")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``local`` sub-command's options.

    :param parser: the sub-command's parser.
    """
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: loopback only)"
    )
    parser.add_argument(
        "--port", type=_port_option, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0: any)"
    )
    parser.add_argument(
        "--function",
        dest="functions",
        action="append",
        default=[],
        type=_function_option,
        metavar="NAME=module:callable",
        help="register (or override) a Lambda function, its module importable from the current directory or "
        "PYTHONPATH; repeatable",
    )
    parser.add_argument(
        "--function-timeout",
        dest="timeouts",
        action="append",
        default=[],
        type=_timeout_option,
        metavar="NAME=SECONDS",
        help="timeout of a registered function (default 3 s, Lambda's; a function folder's function.json "
        "may set it too); repeatable",
    )
    parser.add_argument(
        "--functions-dir",
        type=_folder_option,
        default=None,
        help="folder of <name>/handler.py Lambda functions (default ./lambda_functions, if present, or the "
        "project's)",
    )
    parser.add_argument(
        "--region", default="us-east-1", help="AWS region of the endpoint (default us-east-1)"
    )
    parser.add_argument(
        "--processes",
        type=positive_int,
        default=None,
        help="Lambda worker processes per function (default: CPU count)",
    )


def banner(endpoint: LocalEndpoint) -> str:
    """What the command prints once the endpoint is up: URL, functions and the Airflow connection.

    :param endpoint: the running endpoint.
    """
    functions = endpoint.registry.specs()
    lines = [f"Local AWS endpoint (Step Functions, S3, Lambda) listening on {endpoint.url}", ""]
    if functions:
        lines.append("Lambda functions:")
        lines += [
            f"  {spec.name:<24} {spec.handler}  ({spec.code_dir or 'sys.path'}; timeout {spec.timeout:g} s)"
            for spec in functions
        ]
    else:
        lines.append("No Lambda functions registered (add lambda_functions/<name>/handler.py or --function).")
    extra = json.dumps(endpoint.airflow_connection()["extra"])
    lines += [
        "",
        "Airflow connection (aws_default):",
        f"  export AIRFLOW_CONN_AWS_DEFAULT={shlex.quote(endpoint.airflow_connection_json())}",
        "  or",
        "  airflow connections add aws_default --conn-type aws --conn-login testing --conn-password testing "
        f"--conn-extra {shlex.quote(extra)}",
        "",
        "boto3 / AWS CLI / airflow-distmap results (any credentials are accepted):",
        f"  export AWS_ENDPOINT_URL={endpoint.url} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
        f"AWS_DEFAULT_REGION={endpoint.region}",
        f"  {_aws_cli()} --endpoint-url {endpoint.url} stepfunctions list-state-machines",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def _aws_cli() -> str:
    """The AWS CLI beside this interpreter (the project's ``.venv`` has one), else ``aws`` from the PATH."""
    beside = Path(sys.executable).parent / "aws"
    return shlex.quote(str(beside)) if beside.exists() else "aws"


#: Run in a fresh interpreter per ``--function``: import the module and find the callable, as a worker does.
_HANDLER_CHECK = """
import importlib, sys
module, attr = sys.argv[1], sys.argv[2]
try:
    loaded = importlib.import_module(module)
except SyntaxError as exc:
    sys.exit(f"Runtime.UserCodeSyntaxError: {exc}")
except BaseException as exc:
    sys.exit(f"Runtime.ImportModuleError: {type(exc).__name__}: {exc}")
handler = getattr(loaded, attr, None)
if handler is None:
    sys.exit(f"Runtime.HandlerNotFound: module {module!r} has no {attr!r}")
if not callable(handler):
    sys.exit(f"{module}.{attr} is not callable (its type is {type(handler).__name__})")
"""
#: Seconds a module gets to import in :func:`unimportable_handlers`' check.
HANDLER_CHECK_SECONDS = 30


def unimportable_handlers(functions: list[tuple[str, str]]) -> list[str]:
    """Warnings for ``--function`` handlers their workers will not load (AWS reports those per invocation).

    A module is looked up here, then imported and its callable found in an interpreter of its own (the checks
    run at once), from the working directory as the workers start: the endpoint never imports user code.

    :param functions: ``(name, "module:callable")`` pairs.
    """
    warnings = []
    sys.path.insert(0, os.getcwd())  # the workers start in the current directory
    checks: list[tuple[str, str, subprocess.Popen[str]]] = []
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(entry or os.getcwd() for entry in sys.path)}
    try:
        for name, handler in functions:
            module, _, attr = handler.partition(":") if ":" in handler else handler.rpartition(".")
            top = module.partition(".")[0]
            try:
                found = importlib.util.find_spec(top) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                warnings.append(
                    f"WARNING: --function {name}={handler}: module {top!r} is not found from {os.getcwd()}, "
                    "so its invocations will fail with Runtime.ImportModuleError unless the workers can "
                    "import it. To fix this, start the endpoint from the folder that holds it (or set "
                    "PYTHONPATH), or correct the module name."
                )
                continue
            command = [sys.executable, "-c", _HANDLER_CHECK, module, attr]
            process = subprocess.Popen(
                command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            checks.append((name, handler, process))
    finally:
        sys.path.remove(os.getcwd())
    for name, handler, process in checks:
        try:
            _, error = process.communicate(timeout=HANDLER_CHECK_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            continue  # slow to import, not broken: the workers will tell
        if process.returncode != 0:
            problem = (error.strip().splitlines() or ["it exits while importing"])[-1]
            warnings.append(
                f"WARNING: --function {name}={handler}: {problem}. Its invocations will fail with that error "
                "until it is fixed: the workers import it when they start. To fix this, correct the module "
                "or the callable's name, then restart the endpoint."
            )
    return warnings


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM, then stop the service, the Lambda workers and the server.

    :param args: parsed options.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        endpoint = LocalEndpoint(
            host=args.host,
            port=args.port,
            functions=dict(args.functions),
            functions_dir=args.functions_dir or DEFAULT_FUNCTIONS_DIR,
            region=args.region,
            processes=args.processes,
        )
        for name, seconds in args.timeouts:
            if name not in endpoint.registry.names():
                print(f"--function-timeout: no function {name!r} is registered", file=sys.stderr)
                return 2
            endpoint.registry.update_settings(name, timeout=seconds)
        try:
            endpoint.start()
            tune_garbage_collector()
        except OSError as exc:
            fix = (
                " To fix this, stop what listens there or pass another --port (0: a free one)."
                if exc.errno == errno.EADDRINUSE
                else ""
            )
            address = f"[{args.host}]" if ":" in args.host else args.host
            print(f"Cannot listen on {address}:{args.port}: {exc.strerror or exc}.{fix}", file=sys.stderr)
            return 1
        for warning in unimportable_handlers(list(args.functions)):
            print(warning, file=sys.stderr, flush=True)
        if not _is_loopback(args.host):
            print(
                f"WARNING: listening on {args.host}, not loopback only: anyone who can reach this port can "
                "call the endpoint (no authentication) and run the registered functions. Use --host "
                "127.0.0.1 unless that is what you want.",
                file=sys.stderr,
                flush=True,
            )
        try:
            print(banner(endpoint), flush=True)
            while not stop.wait(1.0):
                pass
            print("Stopping...", flush=True)
        finally:
            endpoint.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("Stopped.", flush=True)
    return 0
