"""The :class:`DistributedMap` builder: a complete state machine definition around one Distributed Map."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from airflow_distmap.definitions._checks import (
    MAX_CONCURRENCY,
    check_int,
    check_label,
    check_percentage,
)
from airflow_distmap.definitions.batching import ItemBatcher
from airflow_distmap.definitions.processors import LambdaItemProcessor, distributed_processor
from airflow_distmap.definitions.readers import ItemReader
from airflow_distmap.definitions.writer import ResultWriter

#: An ``item_selector`` that sends each item as ``{"index": <its position in the dataset>, "row": <the
#: item>}``, the envelope :func:`airflow_distmap.lambda_runtime.row_handler` reads: its results then name
#: each row by its dataset index, where a batch of plain items only knows positions inside the batch.
INDEXED_ROW_SELECTOR: dict[str, str] = {"index.$": "$$.Map.Item.Index", "row.$": "$$.Map.Item.Value"}

#: The reader class a text ``item_reader`` most likely meant, by how the text ends.
_READER_BY_SUFFIX = (
    (".csv", "CsvItemReader"),
    (".tsv", "CsvItemReader"),
    (".jsonl", "JsonlItemReader"),
    (".json", "JsonItemReader"),
    (".parquet", "ParquetItemReader"),
    ("/", "S3PrefixItemReader"),
)
_READERS = "CsvItemReader, JsonItemReader, JsonlItemReader, ParquetItemReader or S3PrefixItemReader"


def _shown(value: Any) -> str:
    """``<value> is a <type>`` for an error message, the value cut to 80 characters."""
    text = repr(value)
    kind = type(value).__name__
    return f"{text if len(text) <= 80 else text[:77] + '...'} is {'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _builds_asl(value: Any) -> bool:
    return isinstance(value, dict) or callable(getattr(value, "to_asl", None))


def check_item_reader(value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is an item reader: a builder with ``to_asl()`` or an ASL dict.

    :param value: The ``item_reader`` argument (not ``None``).
    """
    if _builds_asl(value):
        return
    if isinstance(value, str):
        reader = next(
            (name for suffix, name in _READER_BY_SUFFIX if value.lower().endswith(suffix)), "CsvItemReader"
        )
        fix = f"pass {reader}(uri={value!r}) (one of {_READERS})"
    else:
        fix = f"pass a reader such as CsvItemReader(uri='s3://bucket/key.csv') ({_READERS})"
    raise ValueError(
        f"item_reader={_shown(value)}, not an item reader. To fix this, {fix} "
        "from airflow_distmap.definitions, or an ASL ItemReader dict."
    )


def check_item_batcher(value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is an :class:`ItemBatcher` (or a builder) or an ASL dict.

    :param value: The ``item_batcher`` argument (not ``None``).
    """
    if _builds_asl(value):
        return
    size = value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 100
    raise ValueError(
        f"item_batcher={_shown(value)}, not a batcher. To fix this, pass "
        f"ItemBatcher(max_items_per_batch={size}) from airflow_distmap.definitions, or an ASL ItemBatcher "
        f"dict such as {{'MaxItemsPerBatch': {size}}}."
    )


def check_item_processor(value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is a :class:`LambdaItemProcessor` (or a builder) or an ASL dict.

    :param value: The ``item_processor`` argument (not ``None``).
    """
    if _builds_asl(value):
        return
    if isinstance(value, str):
        fix = f"pass function_name={value!r} (or LambdaItemProcessor(function_name={value!r}))"
    else:
        fix = "pass LambdaItemProcessor(function_name='my-function') from airflow_distmap.definitions"
    raise ValueError(
        f"item_processor={_shown(value)}, not an item processor. To fix this, "
        f"{fix}, or an ASL ItemProcessor dict with 'StartAt' and 'States'."
    )


@dataclass(frozen=True)
class DistributedMap:
    """One Distributed Map state and the state machine around it.

    :param item_processor: What each child runs: a :class:`LambdaItemProcessor` or an ASL ItemProcessor.
    :param item_reader: Where items come from (an S3 reader or an ASL ItemReader); ``None``: the state
        input (``items_path``).
    :param item_selector: Template applied to each item (``$$.Map.Item.Value``, ``$$.Map.Item.Index``).
    :param item_batcher: Batching; ``None`` sends one item per child.
    :param max_concurrency: Parallel children, 0 to 10000 (0 or ``None``: Step Functions' maximum, 10,000).
    :param tolerated_failure_count: Failed items tolerated before the Map Run fails.
    :param tolerated_failure_percentage: Failed items tolerated, in percent of all items.
    :param label: The Map state's name and Map Run label (at most 40 characters).
    :param result_writer: Where results are exported (a :class:`ResultWriter` or an ASL ResultWriter).
    :param items_path: Reference path to the items in the state input, when there is no reader.
    :param comment: ``Comment`` of the state machine.
    """

    item_processor: LambdaItemProcessor | dict[str, Any]
    item_reader: ItemReader | dict[str, Any] | None = None
    item_selector: dict[str, Any] | None = None
    item_batcher: ItemBatcher | dict[str, Any] | None = None
    max_concurrency: int | None = None
    tolerated_failure_count: int | None = None
    tolerated_failure_percentage: float | None = None
    label: str = "DistributedMap"
    result_writer: ResultWriter | dict[str, Any] | None = None
    items_path: str | None = None
    comment: str | None = None

    def to_state(self) -> dict[str, Any]:
        """Render the Map state (ending the state machine)."""
        label = check_label(self.label)
        check_item_processor(self.item_processor)
        if self.item_reader is not None:
            check_item_reader(self.item_reader)
        if self.item_batcher is not None:
            check_item_batcher(self.item_batcher)
        processor = (
            self.item_processor.to_asl()
            if isinstance(self.item_processor, LambdaItemProcessor)
            else distributed_processor(self.item_processor)
        )
        state: dict[str, Any] = {"Type": "Map", "Label": label, "ItemProcessor": processor}
        if self.item_reader is not None:
            state["ItemReader"] = (
                copy.deepcopy(self.item_reader)
                if isinstance(self.item_reader, dict)
                else self.item_reader.to_asl()
            )
        if self.items_path is not None:
            if self.item_reader is not None:
                raise ValueError(
                    "items_path and item_reader were both given; Step Functions ignores ItemsPath when an "
                    "ItemReader is set. To fix this, pass only one of them."
                )
            state["ItemsPath"] = self.items_path
        if self.item_selector is not None:
            if not isinstance(self.item_selector, dict):
                raise ValueError(
                    "item_selector must be a JSON object template. To fix this, pass a dict such as "
                    "INDEXED_ROW_SELECTOR or {'row.$': '$$.Map.Item.Value', 'index.$': '$$.Map.Item.Index'}."
                )
            state["ItemSelector"] = copy.deepcopy(self.item_selector)
        if self.item_batcher is not None:
            state["ItemBatcher"] = (
                copy.deepcopy(self.item_batcher)
                if isinstance(self.item_batcher, dict)
                else self.item_batcher.to_asl()
            )
        if self.max_concurrency is not None:
            state["MaxConcurrency"] = check_int(
                self.max_concurrency,
                "max_concurrency",
                0,
                MAX_CONCURRENCY,
                hint=" (0 means Step Functions' maximum)",
            )
        if self.tolerated_failure_count is not None:
            state["ToleratedFailureCount"] = check_int(
                self.tolerated_failure_count, "tolerated_failure_count", 0
            )
        if self.tolerated_failure_percentage is not None:
            state["ToleratedFailurePercentage"] = check_percentage(
                self.tolerated_failure_percentage, "tolerated_failure_percentage"
            )
        if self.result_writer is not None:
            state["ResultWriter"] = (
                copy.deepcopy(self.result_writer)
                if isinstance(self.result_writer, dict)
                else self.result_writer.to_asl()
            )
        state["End"] = True
        return state

    def build(self) -> dict[str, Any]:
        """Render the whole state machine definition: ``{"StartAt": <label>, "States": {<label>: Map}}``."""
        state = self.to_state()
        definition: dict[str, Any] = {}
        if self.comment:
            definition["Comment"] = self.comment
        definition["StartAt"] = state["Label"]
        definition["States"] = {state["Label"]: state}
        return definition
