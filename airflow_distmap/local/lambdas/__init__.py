"""Local Lambda: a registry of handler callables and the worker pool that runs them in processes.

Names are imported lazily: worker processes run ``python -m airflow_distmap.local.lambdas.worker`` and must
not pay for (or pre-import) the pool's modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_distmap.local.lambdas.pool import InvocationResult as InvocationResult
    from airflow_distmap.local.lambdas.pool import LambdaInvoker as LambdaInvoker
    from airflow_distmap.local.lambdas.pool import LambdaPool as LambdaPool
    from airflow_distmap.local.lambdas.pool import PoolClosed as PoolClosed
    from airflow_distmap.local.lambdas.registry import FunctionNotFound as FunctionNotFound
    from airflow_distmap.local.lambdas.registry import FunctionRegistry as FunctionRegistry
    from airflow_distmap.local.lambdas.registry import FunctionSpec as FunctionSpec
    from airflow_distmap.local.lambdas.registry import parse_function_name as parse_function_name
    from airflow_distmap.local.lambdas.registry import parse_function_option as parse_function_option
    from airflow_distmap.local.lambdas.worker import LambdaContext as LambdaContext

_EXPORTS = {
    "InvocationResult": "pool",
    "LambdaInvoker": "pool",
    "LambdaPool": "pool",
    "PoolClosed": "pool",
    "FunctionNotFound": "registry",
    "FunctionRegistry": "registry",
    "FunctionSpec": "registry",
    "parse_function_name": "registry",
    "parse_function_option": "registry",
    "LambdaContext": "worker",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
