"""The messages of the errors a failed execution raises."""

from __future__ import annotations

from airflow_distmap.exceptions import DistributedMapExecutionFailed


def test_a_timed_out_execution_says_to_raise_its_timeout_and_clear_the_task() -> None:
    timed_out = DistributedMapExecutionFailed(execution_arn="a", status="TIMED_OUT", error="States.Timeout")
    assert "ended TIMED_OUT" in str(timed_out)
    assert "raise the definition's TimeoutSeconds" in str(timed_out)
    failed = DistributedMapExecutionFailed(execution_arn="a", status="FAILED", error="States.Runtime")
    assert "TimeoutSeconds" not in str(failed)
    assert "fix the cause, then clear the task" in str(failed)


def test_a_long_cause_is_marked_as_cut_before_the_items_input() -> None:
    item = {"error": "RuntimeError", "cause": "x" * 500, "input": {"Items": [{"index": 1}]}}
    failed = DistributedMapExecutionFailed(execution_arn="a", status="FAILED", failed_items=[item])
    line = next(line for line in str(failed).splitlines() if line.startswith("Failed item"))
    assert line == f'Failed item: error=RuntimeError; cause={"x" * 297}...; input={{"Items":[{{"index":1}}]}}'


def test_the_counts_say_they_cover_the_items_read_before_the_run_ended() -> None:
    failed = DistributedMapExecutionFailed(
        execution_arn="a", status="FAILED", counts={"total": 17, "succeeded": 12, "failed": 5}
    )
    assert "Item counts (of the items read before it ended): total=17, succeeded=12, failed=5" in str(failed)


def test_the_failure_summary_keeps_small_inputs_and_previews_large_ones() -> None:
    from airflow_distmap.exceptions import DistributedMapExecutionFailed

    failed = DistributedMapExecutionFailed(
        execution_arn="arn:x",
        status="FAILED",
        counts={"total": 2, "failed": 2},
        failed_items=[{"error": "E", "input": {"row": "y" * 300_000}}, {"error": "E", "input": {"k": 1}}],
    )
    big, small = failed.summary()["failed_items"]
    assert (len(big["input"]), big["input"][-3:]) == (1000, "...")
    assert small == {"error": "E", "input": {"k": 1}}
