"""The functions Step Functions adds to JSONata 2.0.6, and the one it takes away.

AWS, "Transforming data with JSONata in Step Functions", JSONata functions provided by Step Functions:
``$partition``, ``$range``, ``$hash``, ``$random`` (with an optional seed, unlike JSONata's own), ``$uuid``
and ``$parse``; and "``$eval`` is not available: use ``$parse`` instead". Each replaces an intrinsic function
of JSONPath states, whose implementation they share (UNCONFIRMED: that they keep the intrinsics' rounding and
limits, such as 1,000 items for a range).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from typing import Any

from jsonata.utils import Utils as JsonataUtils

from airflow_distmap.local.asl.intrinsics import array_partition, array_range, hash_text


def _range(start: Any, end: Any, step: Any = 1) -> list[int]:
    # UNCONFIRMED: a default step of 1 (AWS's examples always give the step).
    return array_range(start, end, step)


def _hash(data: Any, algorithm: Any) -> str:
    return hash_text(JsonataUtils.convert_nulls(data), algorithm)  # JSON null as null, not the library's


def _random(seed: Any = None) -> float:
    return (random.Random(seed) if seed is not None else random).random()


def _uuid() -> str:
    return str(uuid.uuid4())


def _parse(text: Any) -> Any:
    if not isinstance(text, str):
        raise ValueError("$parse takes a string of JSON text")
    value = json.loads(text)
    return JsonataUtils.NULL_VALUE if value is None else value  # JSON null, not "undefined"


def _eval(*arguments: Any) -> Any:
    raise ValueError("$eval is not available in Step Functions: use $parse to read JSON text")


#: By name without ``$``, as the JSONata library registers them (over its own ``$random`` and ``$eval``).
STEP_FUNCTIONS_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "partition": array_partition,
    "range": _range,
    "hash": _hash,
    "random": _random,
    "uuid": _uuid,
    "parse": _parse,
    "eval": _eval,
}
