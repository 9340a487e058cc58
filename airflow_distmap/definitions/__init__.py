"""Typed builders that produce Distributed Map ASL from Python, validated before any AWS call."""

from __future__ import annotations

from airflow_distmap.definitions.batching import ItemBatcher
from airflow_distmap.definitions.distributed_map import INDEXED_ROW_SELECTOR, DistributedMap
from airflow_distmap.definitions.processors import (
    LAMBDA_RETRY,
    LambdaItemProcessor,
    check_function_name,
    invoked_functions,
    is_function_reference,
)
from airflow_distmap.definitions.readers import (
    CsvItemReader,
    ItemReader,
    JsonItemReader,
    JsonlItemReader,
    ParquetItemReader,
    S3PrefixItemReader,
)
from airflow_distmap.definitions.states import is_distributed_map, iter_distributed_maps, iter_states
from airflow_distmap.definitions.writer import ResultWriter, ensure_result_writer

__all__ = [
    "INDEXED_ROW_SELECTOR",
    "LAMBDA_RETRY",
    "CsvItemReader",
    "DistributedMap",
    "ItemBatcher",
    "ItemReader",
    "JsonItemReader",
    "JsonlItemReader",
    "LambdaItemProcessor",
    "ParquetItemReader",
    "ResultWriter",
    "S3PrefixItemReader",
    "check_function_name",
    "ensure_result_writer",
    "invoked_functions",
    "is_distributed_map",
    "is_function_reference",
    "iter_distributed_maps",
    "iter_states",
]
