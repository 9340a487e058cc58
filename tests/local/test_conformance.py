"""Replay every recorded AWS Distributed Map case against the local endpoint over boto3.

The corpus lives in ``../shared/conformance/distributed-map`` (beside the clone on CI). For each case:
create a bucket, upload its objects, create the state machine, start it with the exact recorded input
text, then compare status, output (as a JSON value), error and cause exactly, and the parent's history
event by event (ids, previous ids, details; JSON text as text where the snapshot kept it); the snapshot's
normalisation tokens are wildcards (see the corpus README).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_distmap.local.endpoint import LocalEndpoint
from airflow_distmap.local.lambdas import FunctionRegistry
from airflow_distmap.local.lambdas.registry import FunctionSpec

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "distributed-map"
LAMBDA_CODE = Path(__file__).resolve().parent / "runtime" / "lambda_code"
ROLE_ARN = "arn:aws:iam::123456789012:role/conformance"
FUNCTION_NAME = "conformance-identity"

#: Cases the local runtime cannot pass, with the reason. Keep this short and honest.
KNOWN_FAILURES: dict[str, str] = {}

_TOKENS = {"date", "timestamp", "start-date", "stop-date", "map_run_arn", "snf_role_arn"}
_BUCKET_TOKENS = {"bucket-name", "bucket_name"}


def _cases() -> list[Path]:
    return sorted(CORPUS.glob("*.json"))


def _params() -> Iterator[Any]:
    for path in _cases():
        name = path.stem
        marks = []
        if name in KNOWN_FAILURES:
            marks.append(pytest.mark.xfail(reason=KNOWN_FAILURES[name], strict=True))
        yield pytest.param(path, id=name, marks=marks)


def _pattern(expected: str) -> re.Pattern[str]:
    """A regex for a recorded string whose normalisation tokens are wildcards."""
    text = re.escape(expected)
    account = re.escape("arn:<partition>:states:<region>:111111111111:")
    text = text.replace(account, r"arn:aws:states:[^:]+:\d{12}:")
    text = re.sub(r"<[A-Za-z0-9_.\-]+>", "[^:/]+", text.replace(r"\<", "<").replace(r"\>", ">"))
    return re.compile(text)


def matches(expected: Any, actual: Any, bucket: str, *, ordered: bool = False) -> bool:
    """Whether ``actual`` equals the recorded ``expected`` value, tokens being wildcards.

    :param ordered: every object's keys in the same order too (JSON text).
    """
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and (list(expected) == list(actual) if ordered else expected.keys() == actual.keys())
            and all(matches(expected[k], actual[k], bucket, ordered=ordered) for k in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a, bucket, ordered=ordered) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, str):
        if expected in _TOKENS or re.fullmatch(r"<[^<>]+>", expected):
            return True
        if isinstance(actual, str) and expected != actual and _json_text(expected) and _json_text(actual):
            # JSON text in which the snapshot tool replaced values by tokens (and so wrote it again, with its
            # own spacing): the values, in the same key order.
            return matches(json.loads(expected), json.loads(actual), bucket, ordered=True)
        if expected in _BUCKET_TOKENS:
            return actual == bucket
        if "<" in expected and isinstance(actual, str):
            return _pattern(expected).fullmatch(actual) is not None
    if isinstance(expected, float) and isinstance(actual, int | float):
        return float(actual) == expected
    return bool(expected == actual and type(expected) is type(actual))


def _json_text(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict | list)
    except ValueError:
        return False


def _substitute(text: str, bucket: str, function_arn: str) -> str:
    return (
        text.replace("${BUCKET}", bucket)
        .replace("${LAMBDA_ARN}", function_arn)
        .replace("${LAMBDA_FUNCTION_NAME}", FUNCTION_NAME)
    )


class Clients:
    """The endpoint and one S3 and one Step Functions client (clients are slow to build)."""

    def __init__(self, endpoint: LocalEndpoint) -> None:
        self.endpoint = endpoint
        self.s3 = endpoint.client("s3")
        self.sfn = endpoint.client("stepfunctions")


@pytest.fixture(scope="module")
def clients() -> Iterator[Clients]:
    spec = FunctionSpec(FUNCTION_NAME, "conformance_handlers:identity", str(LAMBDA_CODE))
    with LocalEndpoint(registry=FunctionRegistry([spec]), processes=1, functions_dir=None) as started:
        yield Clients(started)


def _run_case(clients: Clients, case: dict[str, Any]) -> tuple[dict[str, Any], Any, str, str]:
    endpoint, s3, sfn = clients.endpoint, clients.s3, clients.sfn
    bucket = f"conformance-{uuid.uuid4().hex[:12]}"
    function_arn = f"arn:aws:lambda:{endpoint.region}:123456789012:function:{FUNCTION_NAME}"
    s3.create_bucket(Bucket=bucket)
    for obj in case["s3_objects"] or []:
        s3.put_object(
            Bucket=_substitute(obj["bucket"], bucket, function_arn),
            Key=obj["key"],
            Body=_substitute(obj["body"], bucket, function_arn).encode(),
        )
    definition = _substitute(json.dumps(case["definition"]), bucket, function_arn)
    machine = sfn.create_state_machine(
        name=f"{case['name'][:60]}-{uuid.uuid4().hex[:8]}", definition=definition, roleArn=ROLE_ARN
    )
    started = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"],
        input=_substitute(case["execution_input_text"], bucket, function_arn),
    )
    deadline = time.monotonic() + 60
    while True:
        described = sfn.describe_execution(executionArn=started["executionArn"])
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return described, sfn, started["executionArn"], bucket


@pytest.mark.parametrize("path", list(_params()))
def test_recorded_case(clients: Clients, path: Path) -> None:
    case = json.loads(path.read_text())
    described, sfn, execution_arn, bucket = _run_case(clients, case)
    if case["kind"] == "map_run_api":
        expected = case["expected"]
        runs = sfn.list_map_runs(executionArn=execution_arn)
        runs.pop("ResponseMetadata", None)
        listed = {"mapRuns": [_epoch(r) for r in runs["mapRuns"]]}
        assert matches(_tokenise_dates(expected["list_map_runs"]), listed, bucket), listed
        map_run = sfn.describe_map_run(mapRunArn=runs["mapRuns"][0]["mapRunArn"])
        map_run.pop("ResponseMetadata", None)
        # Fields AWS documents that the 2023 recording predates; compare what was recorded.
        for counts in ("itemCounts", "executionCounts"):
            map_run[counts].pop("failuresNotRedrivable", None)
            map_run[counts].pop("pendingRedrive", None)
        map_run.pop("redriveCount", None)
        assert matches(_tokenise_dates(expected["describe_map_run"]), _epoch(map_run), bucket), map_run
        return
    expected = case["expected"]
    history = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    assert [e["type"] for e in history] == expected["event_types"]
    for recorded, event in zip(expected["history_events"], history, strict=True):
        event = _as_recorded(recorded, event)
        if recorded["type"] == "MapStateExited" and case["aws_validated"] < _OLDER_MAP_STATE_EXITED:
            event["previousEventId"] = recorded["previousEventId"]
        assert matches(recorded, event, bucket), (recorded, event)
    assert described["status"] == expected["status"]
    if expected["status"] == "SUCCEEDED":
        assert matches(expected["output"], json.loads(described["output"]), bucket), described["output"]
    else:
        assert described.get("error") == expected["error"]
        assert described.get("cause") == expected["cause"]


#: Recorded before AWS changed it (November 2024): their ``MapStateExited`` points at ``MapRunSucceeded``; the
#: later recordings, which the runtime follows, at ``MapRunStarted``.
_OLDER_MAP_STATE_EXITED = "2024-11"


def _as_recorded(recorded: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """``event`` in the snapshot's form: JSON text parsed where the snapshot tool parsed it (README)."""
    event = dict(event)
    for key, details in recorded.items():
        if isinstance(details, dict) and isinstance(event.get(key), dict):
            ours = dict(event[key])
            for field in ("input", "output"):
                if not isinstance(details.get(field), str) and isinstance(ours.get(field), str):
                    ours[field] = json.loads(ours[field])
            event[key] = ours
    return event


def _epoch(value: dict[str, Any]) -> dict[str, Any]:
    return {k: ("date" if k in ("startDate", "stopDate") else v) for k, v in value.items()}


def _tokenise_dates(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tokenise_dates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tokenise_dates(v) for v in value]
    if value in ("start-date", "stop-date"):
        return "date"
    return value


def test_corpus_is_present() -> None:
    assert len(_cases()) >= 56, f"conformance corpus not found at {CORPUS}"
