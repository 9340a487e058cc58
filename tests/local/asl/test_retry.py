from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_distmap.local.asl.retry import Retrier, RetryPolicy, error_matches
from airflow_distmap.local.errors import StatesError

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:f"


def task(**fields: Any) -> dict[str, Any]:
    state = {"Type": "Task", "Resource": FUNCTION, "End": True, **fields}
    return {"StartAt": "T", "States": {"T": state, "Caught": {"Type": "Pass", "End": True}}}


@pytest.mark.parametrize(
    ("error_equals", "error", "matches"),
    [
        (["States.ALL"], "Anything", True),
        (["States.ALL"], "States.Timeout", True),
        (["States.ALL"], "States.Runtime", False),
        (["States.ALL"], "States.DataLimitExceeded", False),
        (["States.TaskFailed"], "Lambda.Unknown", True),
        (["States.TaskFailed"], "States.Timeout", False),
        (["States.TaskFailed"], "States.Runtime", False),
        (["A", "B"], "B", True),
        (["A"], "B", False),
    ],
)
def test_error_matching(error_equals: list[str], error: str, matches: bool) -> None:
    assert error_matches(error_equals, error) is matches


async def test_retry_counts_attempts_and_backs_off(run: Any, services: Any, no_sleep: list[float]) -> None:
    services.lambdas.fails("Flaky").fails("Flaky").fails("Flaky").returns("ok")
    definition = task(
        Retry=[{"ErrorEquals": ["Flaky"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 3}]
    )
    assert await run(definition) == "ok"
    assert len(services.lambdas.calls) == 4
    assert no_sleep == [2, 6, 18]


async def test_retry_gives_up_after_max_attempts(run: Any, services: Any, no_sleep: list[float]) -> None:
    for _ in range(5):
        services.lambdas.fails("Flaky", "still broken")
    with pytest.raises(StatesError) as info:
        await run(task(Retry=[{"ErrorEquals": ["Flaky"], "MaxAttempts": 2}]))
    assert info.value.error == "Flaky"
    assert len(services.lambdas.calls) == 3
    assert no_sleep == [1, 2]  # the defaults: IntervalSeconds 1, BackoffRate 2.0


async def test_max_attempts_zero_never_retries(run: Any, services: Any, no_sleep: list[float]) -> None:
    services.lambdas.fails("Flaky")
    with pytest.raises(StatesError):
        await run(task(Retry=[{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}]))
    assert len(services.lambdas.calls) == 1
    assert no_sleep == []


async def test_max_delay_caps_the_backoff(run: Any, services: Any, no_sleep: list[float]) -> None:
    for _ in range(4):
        services.lambdas.fails("E")
    retrier = {
        "ErrorEquals": ["E"],
        "IntervalSeconds": 5,
        "BackoffRate": 4,
        "MaxAttempts": 4,
        "MaxDelaySeconds": 30,
    }
    assert await run(task(Retry=[retrier])) == {}
    assert no_sleep == [5, 20, 30, 30]


async def test_each_retrier_keeps_its_own_counter(run: Any, services: Any, no_sleep: list[float]) -> None:
    services.lambdas.fails("A").fails("B").fails("A").fails("B").returns("done")
    retry = [
        {"ErrorEquals": ["A"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 10},
        {"ErrorEquals": ["B"], "IntervalSeconds": 3, "MaxAttempts": 2, "BackoffRate": 10},
    ]
    assert await run(task(Retry=retry)) == "done"
    assert no_sleep == [1, 3, 10, 30]


async def test_only_the_first_matching_retrier_applies(
    run: Any, services: Any, no_sleep: list[float]
) -> None:
    services.lambdas.fails("A").fails("A")
    retry = [{"ErrorEquals": ["A"], "MaxAttempts": 1}, {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5}]
    with pytest.raises(StatesError):
        await run(task(Retry=retry))
    assert len(services.lambdas.calls) == 2


def test_full_jitter_stays_within_the_computed_interval() -> None:
    retrier = Retrier(
        {"ErrorEquals": ["E"], "IntervalSeconds": 4, "BackoffRate": 2, "JitterStrategy": "FULL"}
    )
    delays = [retrier.delay(2) for _ in range(500)]
    assert all(0 <= delay <= 16 for delay in delays)
    assert len(set(delays)) > 100
    assert min(delays) < 4
    assert max(delays) > 12


def test_retry_policy_reports_no_delay_for_unmatched_errors() -> None:
    policy = RetryPolicy([{"ErrorEquals": ["A"]}])
    assert policy.next_delay("B", [0]) is None
    assert policy.next_delay("States.Runtime", [0]) is None


async def test_catch_routes_to_next_with_error_output(run: Any, services: Any) -> None:
    services.lambdas.fails("ValueError", "bad row")
    definition = task(Catch=[{"ErrorEquals": ["ValueError"], "ResultPath": "$.err", "Next": "Caught"}])
    out = await run(definition, {"row": 1})
    assert out["row"] == 1
    assert out["err"]["Error"] == "ValueError"
    assert json.loads(out["err"]["Cause"])["errorMessage"] == "bad row"


async def test_catch_default_result_path_replaces_the_input(run: Any, services: Any) -> None:
    services.lambdas.fails("E", "m")
    out = await run(task(Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]), {"row": 1})
    assert set(out) == {"Error", "Cause"}


async def test_retry_runs_before_catch(run: Any, services: Any, no_sleep: list[float]) -> None:
    services.lambdas.fails("E").fails("E")
    definition = task(
        Retry=[{"ErrorEquals": ["E"], "MaxAttempts": 1}],
        Catch=[{"ErrorEquals": ["E"], "Next": "Caught"}],
    )
    assert (await run(definition))["Error"] == "E"
    assert len(services.lambdas.calls) == 2


async def test_states_runtime_is_neither_retried_nor_caught(run: Any, services: Any) -> None:
    definition = task(
        Parameters={"x.$": "$.missing"},
        Retry=[{"ErrorEquals": ["States.ALL"]}],
        Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
    )
    with pytest.raises(StatesError) as info:
        await run(definition, {})
    assert info.value.error == "States.Runtime"
    assert services.lambdas.calls == []


async def test_retry_count_is_visible_in_the_context(run: Any, services: Any, no_sleep: list[float]) -> None:
    services.lambdas.fails("E")
    definition = task(
        Parameters={"retry.$": "$$.State.RetryCount"}, Retry=[{"ErrorEquals": ["E"], "MaxAttempts": 1}]
    )
    assert await run(definition) == {"retry": 1}
    assert [payload for _, payload in services.lambdas.calls] == [{"retry": 0}, {"retry": 1}]
