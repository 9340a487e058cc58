"""Local Lambda: a registry of handler callables and the worker pool that runs them in processes."""

from __future__ import annotations

from airflow_distmap.local.lambdas.pool import InvocationResult, LambdaInvoker, LambdaPool, PoolClosed
from airflow_distmap.local.lambdas.registry import (
    FunctionNotFound,
    FunctionRegistry,
    FunctionSpec,
    parse_function_name,
    parse_function_option,
)
from airflow_distmap.local.lambdas.worker import LambdaContext

__all__ = [
    "FunctionNotFound",
    "FunctionRegistry",
    "FunctionSpec",
    "InvocationResult",
    "LambdaContext",
    "LambdaInvoker",
    "LambdaPool",
    "PoolClosed",
    "parse_function_name",
    "parse_function_option",
]
