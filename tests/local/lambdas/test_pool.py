from __future__ import annotations

import asyncio
import json
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_distmap.local.lambdas import (
    FunctionNotFound,
    FunctionRegistry,
    FunctionSpec,
    LambdaPool,
    PoolClosed,
)

HERE = str(Path(__file__).parent)


def _spec(name: str, handler: str, **kwargs: Any) -> FunctionSpec:
    return FunctionSpec(name=name, handler=f"sample_handlers:{handler}", code_dir=HERE, **kwargs)


@pytest.fixture(scope="module")
def pool() -> Iterator[LambdaPool]:
    registry = FunctionRegistry(
        [
            _spec("echo", "echo"),
            _spec("fail", "fail"),
            _spec("behave", "behave", timeout=1.0),
            _spec("burn", "burn"),
            _spec("not-json", "not_json"),
            _spec("big", "big"),
            _spec("missing-module", "nothing_here").__class__(
                name="missing-module", handler="no_such_module:handler"
            ),
            _spec("small", "behave", memory_mb=64),
        ]
    )
    with LambdaPool(
        registry, processes=2, environment={"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}
    ) as lambda_pool:
        yield lambda_pool


async def test_success_returns_the_handler_value_with_a_lambda_context(pool: LambdaPool) -> None:
    result = await pool.invoke(
        "arn:aws:lambda:us-east-1:123456789012:function:echo:$LATEST", {"row": [1, "a"]}
    )

    assert result.function_error is None
    assert result.executed_version == "$LATEST"
    assert result.payload["event"] == {"row": [1, "a"]}
    assert result.payload["function"] == "echo"
    assert result.payload["request_id"] == result.request_id
    assert result.payload["memory"] == "1024"  # a string, as AWS's runtime gives it
    assert result.payload["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:echo"
    assert 0 < result.payload["remaining_ms"] <= 3000
    assert result.payload["endpoint"] == "http://127.0.0.1:1"
    # Lambda runs the handler in its code's folder, with its reserved variables set.
    assert result.payload["cwd"] == str(HERE)
    assert result.payload["env"] == {
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
        "LAMBDA_TASK_ROOT": str(HERE),
        "_HANDLER": "sample_handlers.echo",
        "TZ": "UTC",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/echo",
    }
    assert "/[$LATEST]" in result.payload["log_stream"]
    assert "identity" in result.payload  # context.identity's fields can be read, as on AWS (None here)
    assert result.payload["identity"] is None


async def test_sys_exit_is_the_runtime_exiting_and_aws_encodes_decimals_and_namedtuples(
    pool: LambdaPool,
) -> None:
    exited = await pool.invoke("behave", {"action": "sys_exit"})
    assert exited.function_error == "Unhandled"
    assert exited.payload["errorType"] == "Runtime.ExitError"
    assert exited.payload["errorMessage"].endswith("Runtime exited with error: exit status 4")
    numbers = await pool.invoke("behave", {"action": "numbers"})
    assert numbers.payload == {"price": 1.1, "count": 3, "point": {"x": 1, "y": 2}}


async def test_handler_exception_is_an_unhandled_error_object(pool: LambdaPool) -> None:
    result = await pool.invoke("fail", {"row": 7})

    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "RowRejected"
    assert result.payload["errorMessage"] == "bad row 7"
    assert result.payload["requestId"] == result.request_id
    assert any("sample_handlers.py" in line and "in fail" in line for line in result.payload["stackTrace"])
    # As the Python runtime writes it (json.dumps, traceback.format_list lines): Step Functions' Cause.
    assert all(line.endswith("\n") for line in result.payload["stackTrace"])
    assert result.error_text == json.dumps(result.payload)


async def test_unserialisable_return_value_is_a_marshal_error(pool: LambdaPool) -> None:
    result = await pool.invoke("not-json", {})

    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Runtime.MarshalError"


async def test_response_over_6_mb_is_a_size_error(pool: LambdaPool) -> None:
    result = await pool.invoke("big", {})

    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Function.ResponseSizeTooLarge"


async def test_import_failure_is_reported_per_invocation(pool: LambdaPool) -> None:
    result = await pool.invoke("missing-module", {})

    assert result.payload["errorType"] == "Runtime.ImportModuleError"
    assert "no_such_module" in result.payload["errorMessage"]
    assert result.payload["requestId"] == ""  # an init error belongs to no invocation


async def test_unknown_function_raises_function_not_found(pool: LambdaPool) -> None:
    with pytest.raises(FunctionNotFound, match="arn:aws:lambda:us-east-1:123456789012:function:nope"):
        await pool.invoke("nope", {})  # named by its full ARN, as Lambda's message does
    with pytest.raises(FunctionNotFound):
        await pool.invoke("arn:aws:lambda:us-east-1:123456789012:function:nobody", {})
    with pytest.raises(FunctionNotFound):
        await pool.invoke("not a valid name!", {})


async def test_crash_fails_only_the_guilty_invocation(pool: LambdaPool) -> None:
    good = [pool.invoke("behave", {"sleep": 0.2, "value": i}) for i in range(20)]
    crashers = [
        pool.invoke("behave", {"sleep": 0.05, "action": "exit"}),
        pool.invoke("behave", {"sleep": 0.05, "action": "kill"}),
    ]

    results = await asyncio.gather(*good, *crashers)

    assert [r.payload.get("value", r.payload) for r in results[:20]] == list(range(20))
    assert all(r.function_error is None for r in results[:20])
    exit_error, kill_error = results[20].payload, results[21].payload
    assert results[20].function_error == results[21].function_error == "Unhandled"
    assert exit_error["errorType"] == kill_error["errorType"] == "Runtime.ExitError"
    assert exit_error["errorMessage"].endswith("Runtime exited with error: exit status 3")
    assert kill_error["errorMessage"].endswith("Runtime exited with error: signal: killed")
    # The pool is back to full strength and keeps serving.
    assert (await pool.invoke("behave", {"value": "after"})).payload["value"] == "after"
    assert len(pool.worker_pids("behave")) == 2


async def test_hang_times_out_alone_and_others_finish(pool: LambdaPool) -> None:
    hang = pool.invoke("behave", {"action": "hang"})
    good = [pool.invoke("behave", {"sleep": 0.1, "value": i}) for i in range(10)]

    results = await asyncio.gather(hang, *good)

    assert results[0].function_error == "Unhandled"
    assert results[0].payload["errorType"] == "Sandbox.Timedout"
    assert results[0].payload["errorMessage"] == (
        f"RequestId: {results[0].request_id} Error: Task timed out after 1.00 seconds"
    )
    assert [r.payload["value"] for r in results[1:]] == list(range(10))


async def test_out_of_memory_fails_that_invocation(pool: LambdaPool) -> None:
    big = pool.invoke("small", {"action": "allocate", "mb": 4096})
    ok = pool.invoke("small", {"action": "allocate", "mb": 8})

    big_result, ok_result = await asyncio.gather(big, ok)

    assert big_result.function_error == "Unhandled"
    assert big_result.payload["errorType"] == "Runtime.OutOfMemory"
    assert ok_result.payload == 8 * 1024 * 1024


async def test_cpu_heavy_invocations_are_not_all_run_at_once_in_one_worker() -> None:
    # 16 x 100 ms of CPU at once would share one GIL for 1.6 s each. The pool starts at 2 per worker and,
    # having measured 100 ms per invocation, allows what fits in a quarter of the 3 s timeout (7).
    registry = FunctionRegistry([_spec("burn", "burn_counting")])

    with LambdaPool(registry, processes=1) as lambda_pool:
        results = await asyncio.gather(*(lambda_pool.invoke("burn", {"ms": 100}) for _ in range(16)))

    assert [r.function_error for r in results] == [None] * 16
    assert max(r.payload for r in results) <= 8


async def test_the_limit_for_waiting_invocations_holds_when_the_first_finish() -> None:
    # 250 batches that each wait 30 x 10 ms (a CPU blip per wait, like rows of slow API calls). The limit
    # ramps up from 2 at once; when the first batches finish it must stay at what they need, not count the
    # CPU of the 249 still running against the first finished and fall to a handful, which made the next
    # Map Run ramp up all over again.
    registry = FunctionRegistry([_spec("wait", "wait_steps")])

    with LambdaPool(registry, processes=1) as lambda_pool:
        results = await asyncio.gather(
            *(lambda_pool.invoke("wait", {"steps": 30, "step_ms": 10}) for _ in range(250))
        )
        limit = lambda_pool._pools["wait"].concurrency  # the pool's per-worker limit

    assert [r.function_error for r in results] == [None] * 250
    assert limit >= 250


async def test_workers_freeze_the_handlers_imports_out_of_the_garbage_collector() -> None:
    # A full collection pauses every handler thread of a worker: it skips what the handler imported and
    # comes ten times less often than Python's default.
    registry = FunctionRegistry([_spec("gc", "gc_state")])
    with LambdaPool(registry, processes=1) as lambda_pool:
        result = await lambda_pool.invoke("gc", {})
    assert result.payload["frozen"] > 1000
    assert result.payload["full_threshold"] == 100


async def test_cpu_bound_work_spreads_over_processes(pool: LambdaPool) -> None:
    results = await asyncio.gather(*(pool.invoke("burn", {"ms": 5}) for _ in range(200)))

    pids = {r.payload for r in results}
    assert len(pids) == 2
    assert set(pool.worker_pids("burn")) == pids


def test_invoke_from_loops_in_several_threads(pool: LambdaPool) -> None:
    outcomes: dict[int, list[Any]] = {}

    def run(thread_no: int) -> None:
        async def many() -> list[Any]:
            results = await asyncio.gather(
                *(pool.invoke("echo", {"t": thread_no, "i": i}) for i in range(50))
            )
            return [r.payload["event"] for r in results]

        outcomes[thread_no] = asyncio.run(many())

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert outcomes == {n: [{"t": n, "i": i} for i in range(50)] for n in range(4)}


async def test_crash_while_importing_the_handler_fails_invocations_without_a_restart_loop(
    tmp_path: Path,
) -> None:
    (tmp_path / "crashy.py").write_text(
        "import os\nos._exit(7)\n\ndef handler(event, context):\n    return 1\n"
    )
    registry = FunctionRegistry(
        [FunctionSpec(name="crashy", handler="crashy:handler", code_dir=str(tmp_path))]
    )

    with LambdaPool(registry, processes=1) as lambda_pool:
        first = await lambda_pool.invoke("crashy", {})
        second = await lambda_pool.invoke("crashy", {})

    for result in (first, second):
        assert result.function_error == "Unhandled"
        assert result.payload["errorType"] == "Runtime.ExitError"
        assert result.payload["errorMessage"].endswith("Runtime exited with error: exit status 7")


async def test_closing_the_pool_fails_waiting_invocations() -> None:
    registry = FunctionRegistry([_spec("behave", "behave", timeout=60.0)])
    lambda_pool = LambdaPool(registry, processes=1)
    waiting = asyncio.ensure_future(lambda_pool.invoke("behave", {"action": "hang"}))
    while not lambda_pool.worker_pids("behave"):
        await asyncio.sleep(0.01)

    await asyncio.get_running_loop().run_in_executor(None, lambda_pool.close)

    with pytest.raises(PoolClosed):
        await waiting
    with pytest.raises(PoolClosed):
        await lambda_pool.invoke("behave", {})


async def test_the_root_logger_writes_lambdas_log_lines_with_the_request_id(
    capfd: pytest.CaptureFixture[str],
) -> None:
    registry = FunctionRegistry([_spec("logs", "behave")])
    with LambdaPool(registry, processes=1) as own_pool:  # started here: its worker writes to this capture
        result = await own_pool.invoke("logs", {"action": "log", "value": "there"})

    assert result.function_error is None
    lines = [line for line in capfd.readouterr().out.splitlines() if "hello there" in line]
    assert len(lines) == 1, lines
    level, timestamp, request_id, message = lines[0].split("\t")
    assert (level, request_id, message) == ("[INFO]", result.request_id, "hello there")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", timestamp), timestamp
