from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import airflow_distmap.lambda_runtime as lambda_runtime
from airflow_distmap.lambda_runtime import (
    OUTPUT_NOT_JSON,
    OUTPUT_TOO_LARGE,
    PAYLOAD_LIMIT_BYTES,
    MalformedEventError,
    row_handler,
)


@row_handler
def upper(row: dict[str, Any]) -> str:
    if row["text"] == "boom":
        raise ValueError("cannot process boom")
    return row["text"].upper()


def test_single_item_keeps_index_and_returns_output() -> None:
    assert upper({"index": 7, "row": {"text": "abc"}}, None) == {"index": 7, "output": "ABC"}


def test_single_item_error_is_reported_not_raised() -> None:
    result = upper({"index": 3, "row": {"text": "boom"}}, None)
    assert result == {"index": 3, "error": {"type": "ValueError", "message": "cannot process boom"}}


def test_batch_row_error_does_not_fail_batch_mates() -> None:
    event = {
        "Items": [
            {"index": 10, "row": {"text": "a"}},
            {"index": 11, "row": {"text": "boom"}},
            {"index": 12, "row": {"text": "c"}},
        ]
    }
    result = upper(event, None)
    assert result == {
        "rows": [
            {"index": 10, "output": "A"},
            {"index": 11, "error": {"type": "ValueError", "message": "cannot process boom"}},
            {"index": 12, "output": "C"},
        ]
    }
    json.dumps(result)  # what Lambda serialises must be JSON


def test_batch_input_config_and_skip() -> None:
    seen: list[dict[str, str]] = []

    @row_handler
    def with_config(row: dict[str, str], config: dict[str, str]) -> str:
        seen.append(row)
        return row[config["column"]] + "!"

    event = {
        "Items": [{"index": 0, "row": {"t": "header"}}, {"index": 1, "row": {"t": "x"}}],
        "BatchInput": {"config": {"column": "t"}, "skip": [0]},
    }
    assert with_config(event, None) == {"rows": [{"index": 0, "skipped": True}, {"index": 1, "output": "x!"}]}
    assert seen == [{"t": "x"}]


def test_non_json_output_is_that_rows_error() -> None:
    @row_handler
    def returns_set(row: dict[str, str]) -> Any:
        return {1, 2} if row["t"] == "bad" else row["t"]

    result = returns_set(
        {"Items": [{"index": 0, "row": {"t": "bad"}}, {"index": 1, "row": {"t": "ok"}}]}, None
    )
    assert result["rows"][0]["error"]["type"] == OUTPUT_NOT_JSON
    assert result["rows"][1] == {"index": 1, "output": "ok"}


def test_outputs_beyond_the_payload_quota_fail_only_the_overflowing_rows() -> None:
    @row_handler
    def big(row: dict[str, str]) -> str:
        return "x" * (100 * 1024)

    event = {"Items": [{"index": i, "row": {"t": ""}} for i in range(4)]}
    result = big(event, None)
    kinds = ["output" if "output" in r else r["error"]["type"] for r in result["rows"]]
    assert kinds == ["output", "output", OUTPUT_TOO_LARGE, OUTPUT_TOO_LARGE]
    assert len(json.dumps(result).encode()) < PAYLOAD_LIMIT_BYTES


def test_a_batch_whose_overflowing_rows_become_errors_still_fits_the_payload() -> None:
    @row_handler
    def echo(row: dict[str, str]) -> str:
        return json.dumps(row)  # about 5 KB once escaped twice: 81 of them are 1.6 times the quota

    event = {"Items": [{"index": i, "row": {"text": 'q"' * 1000}} for i in range(81)]}
    result = echo(event, None)
    rows = result["rows"]
    assert [row["index"] for row in rows] == list(range(81))
    kept = [row for row in rows if "output" in row]
    assert rows[: len(kept)] == kept  # outputs are kept in order, the overflow fails the rows after them
    assert {row["error"]["type"] for row in rows[len(kept) :]} == {OUTPUT_TOO_LARGE}
    assert len(json.dumps(result).encode()) <= PAYLOAD_LIMIT_BYTES
    one_more = [*kept, {"index": len(kept), "output": kept[0]["output"]}, *rows[len(kept) + 1 :]]
    assert len(json.dumps({"rows": one_more}).encode()) > PAYLOAD_LIMIT_BYTES - 4096  # as many as fit


def test_a_failed_row_without_room_keeps_its_own_error_shortened() -> None:
    @row_handler
    def mixed(row: dict[str, str]) -> str:
        if row["t"] == "bad":
            raise ValueError("é" * 900)  # escaped as \u00e9: over 5 KB of answer
        return "x" * 60_000

    event = {"Items": [{"index": i, "row": {"t": "ok" if i < 4 else "bad"}} for i in range(10)]}
    rows = mixed(event, None)["rows"]
    assert len(json.dumps({"rows": rows}).encode()) <= PAYLOAD_LIMIT_BYTES
    failed = [row["error"] for row in rows[4:]]
    assert {error["type"] for error in failed} == {"ValueError"}  # not hidden behind RowOutputTooLarge
    assert any(len(error["message"]) < 900 for error in failed)


def test_a_batch_too_large_to_answer_even_with_errors_fails_its_invocation() -> None:
    @row_handler
    def big(row: dict[str, str]) -> str:
        return "x" * 1000

    with pytest.raises(lambda_runtime.BatchOutputTooLargeError, match="smaller batch_size"):
        big({"Items": [{"index": i, "row": {}} for i in range(5000)]}, None)


def test_long_error_messages_are_truncated() -> None:
    @row_handler
    def noisy(row: dict[str, str]) -> str:
        raise RuntimeError("e" * 10_000)

    result = noisy({"index": 0, "row": {}}, None)
    assert result["error"]["type"] == "RuntimeError"
    assert len(result["error"]["message"]) == lambda_runtime.MAX_ERROR_MESSAGE_CHARS


@pytest.mark.parametrize(
    "event",
    [
        "not an object",
        {"row": {"a": "1"}},
        {"index": "1", "row": {"a": "1"}},
        {"index": True, "row": {"a": "1"}},
        {"Items": ["a row that is not an object"]},
        {"Items": "not a list", "BatchInput": {}},
        {"Items": [], "BatchInput": []},
        {"Items": [], "BatchInput": {"skip": "0"}},
    ],
)
def test_malformed_events_raise_so_step_functions_retries(event: Any) -> None:
    with pytest.raises(MalformedEventError):
        upper(event, None)


def test_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(lambda_runtime.__file__).read_text())
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    assert modules <= set(sys.stdlib_module_names)


def test_plain_items_are_rows_indexed_by_their_position() -> None:
    assert upper({"text": "hello"}, None) == {"index": None, "output": "HELLO"}
    result = upper({"Items": [{"text": "a"}, {"other": "b"}, {"text": "c"}]}, None)
    assert [row["index"] for row in result["rows"]] == [0, 1, 2]
    assert result["rows"][0]["output"] == "A"
    assert result["rows"][1]["error"]["type"] == "KeyError"
    assert result["rows"][2]["output"] == "C"


def test_a_csv_column_named_row_is_a_plain_row() -> None:
    result = upper({"Items": [{"row": "7", "text": "a"}, {"index": "x", "row": "8", "text": "b"}]}, None)
    assert [(row["index"], row["output"]) for row in result["rows"]] == [(0, "A"), (1, "B")]


def test_columns_named_like_the_envelope_keys_are_a_plain_rows_columns() -> None:
    seen: list[tuple[dict[str, Any], Any]] = []

    @row_handler
    def record(row: dict[str, Any], config: Any) -> str:
        seen.append((row, config))
        return "ok"

    rows = [
        {"order": "1", "Items": "3 apples", "value": "9"},
        {"row": "2", "skip": "no"},
        {"row": "3", "config": "x"},
    ]
    for row in rows:
        assert record(row, None) == {"index": None, "output": "ok"}
    assert seen == [(row, {}) for row in rows]
    assert record({"Items": rows}, None)["rows"][2] == {"index": 2, "output": "ok"}
    # A payload template may add keys beside a batch's Items and BatchInput: still a batch.
    batch = record({"Items": rows[:2], "BatchInput": {"config": {"k": 1}}, "run": "r1"}, None)
    assert [row["index"] for row in batch["rows"]] == [0, 1]
    assert seen[-1] == (rows[1], {"k": 1})


def test_a_batch_answer_carries_the_text_the_lambda_runtime_would_send() -> None:
    result = upper({"Items": [{"index": 3, "row": {"text": 'é"x'}}, {"index": 4, "row": {}}]}, None)
    assert isinstance(result, lambda_runtime.EncodedResult)
    assert result.unchanged_text() == json.dumps(result)
    assert json.loads(result.unchanged_text()) == result
    result["extra"] = 1  # a wrapper that adds to the answer: the stored text no longer describes it
    assert result.unchanged_text() is None
    appended = upper({"Items": [{"index": 0, "row": {"text": "a"}}]}, None)
    appended["rows"].append({"index": 1, "output": "B"})
    assert appended.unchanged_text() is None


def test_config_goes_only_to_a_second_parameter_that_wants_it() -> None:
    def with_default(row: dict[str, Any], sep: str = "-") -> str:
        return sep.join(row.values())

    def with_config(row: dict[str, Any], config: dict[str, Any]) -> str:
        return str(config["prefix"]) + row["text"]

    event = {"Items": [{"index": 0, "row": {"a": "x", "b": "y"}}], "BatchInput": {"config": {"prefix": "p:"}}}
    assert row_handler(with_default)(event, None)["rows"][0]["output"] == "x-y"
    event = {"Items": [{"index": 0, "row": {"text": "t"}}], "BatchInput": {"config": {"prefix": "p:"}}}
    assert row_handler(with_config)(event, None)["rows"][0]["output"] == "p:t"


def test_nan_output_is_that_rows_error_in_a_batch_and_alone() -> None:
    @row_handler
    def nan_for_bad(row: dict[str, str]) -> Any:
        return float("nan") if row["t"] == "bad" else 1.5

    batch = nan_for_bad(
        {"Items": [{"index": 0, "row": {"t": "ok"}}, {"index": 1, "row": {"t": "bad"}}]}, None
    )
    assert batch["rows"][0] == {"index": 0, "output": 1.5}
    assert batch["rows"][1]["error"]["type"] == OUTPUT_NOT_JSON
    assert nan_for_bad({"index": 7, "row": {"t": "bad"}}, None)["error"]["type"] == OUTPUT_NOT_JSON
    json.dumps(batch, allow_nan=False)  # what the Lambda runtime sends back is strict JSON
