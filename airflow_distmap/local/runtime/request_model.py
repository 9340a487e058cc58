"""Step Functions requests checked against the API model botocore ships, before an operation runs.

AWS reads a request against its API model first: a member of the wrong JSON type cannot be read
(``SerializationException``), and every member that breaks a constraint of the model (required, length,
range, enum) is listed in one ``ValidationException``: ``2 validation errors detected: Value 'x' at 'name'
failed to satisfy constraint: ...; Value ...``. botocore's copy of the model holds the same shapes, so the
endpoint takes them from there rather than keep its own list. Patterns are left to the operations (the
model's are Java regular expressions).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationNotFoundError, ServiceModel, Shape, StructureShape

from airflow_distmap.local.errors import ServiceError

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "blob": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "timestamp": (int, float, str),
    "structure": (dict,),
    "map": (dict,),
    "list": (list,),
}


#: Payloads whose limit AWS counts in UTF-8 bytes, in its own words: left to the operations.
_SIZED_IN_BYTES = frozenset({"SensitiveData"})


@functools.cache
def _service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("stepfunctions")


def is_operation(action: str) -> bool:
    """Whether ``action`` is an operation of the Step Functions API (botocore's model of it).

    :param action: the ``X-Amz-Target`` suffix.
    """
    return action in _service_model().operation_names


def check_request(action: str, request: dict[str, Any]) -> None:
    """Refuse a request the API model cannot read or whose members break its constraints.

    :param action: the operation (``X-Amz-Target`` suffix).
    :param request: the decoded JSON body.
    :raises ServiceError: ``SerializationException`` for a member of the wrong type, else
        ``ValidationException`` listing every constraint broken.
    """
    try:
        shape = _service_model().operation_model(action).input_shape
    except OperationNotFoundError:
        return
    if shape is None:
        return
    _check_types(shape, request, "")
    problems = list(_problems(shape, request, ""))
    if problems:
        count = len(problems)
        raise ServiceError(
            "ValidationException",
            f"{count} validation error{'s' if count > 1 else ''} detected: {'; '.join(problems)}",
        )


def _check_types(shape: Shape, value: Any, field: str) -> None:
    if value is None:
        return
    wanted = _PYTHON_TYPES.get(shape.type_name, (object,))
    if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
        # The wording of AWS's deserialisation error is UNCONFIRMED; its type is SerializationException.
        raise ServiceError(
            "SerializationException", f"Expected type {shape.type_name} for '{field}', got {value!r}"
        )
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for name, member in shape.members.items():
            _check_types(member, value.get(name), _join(field, name))
    elif isinstance(shape, ListShape) and isinstance(value, list):
        for index, item in enumerate(value, 1):
            _check_types(shape.member, item, f"{field}.{index}.member")
    elif isinstance(shape, MapShape) and isinstance(value, dict):
        for key, item in value.items():
            _check_types(shape.value, item, f"{field}.{key}")


def _problems(shape: Shape, value: Any, field: str) -> Iterator[str]:
    """The constraints ``value`` breaks, in AWS's words (types already checked)."""
    if isinstance(shape, StructureShape):
        for name, member in shape.members.items():
            inner = _join(field, name)
            if value.get(name) is None:
                if name in shape.required_members:
                    yield f"Value null at '{inner}' failed to satisfy constraint: Member must not be null"
                continue
            yield from _problems(member, value[name], inner)
        return
    if isinstance(shape, ListShape):
        for index, item in enumerate(value, 1):
            inner = f"{field}.{index}.member"
            if item is None:
                yield f"Value null at '{inner}' failed to satisfy constraint: Member must not be null"
            else:
                yield from _problems(shape.member, item, inner)
    broken: list[str] = []
    enum = shape.metadata.get("enum")
    if enum and value not in enum:
        broken.append(f"Member must satisfy enum value set: [{', '.join(enum)}]")
    minimum, maximum = shape.metadata.get("min"), shape.metadata.get("max")
    if shape.name not in _SIZED_IN_BYTES and (minimum is not None or maximum is not None):
        measured = len(value) if isinstance(value, str | list | dict) else value
        what = "length" if isinstance(value, str | list | dict) else "value"
        if minimum is not None and measured < minimum:
            broken.append(f"Member must have {what} greater than or equal to {minimum}")
        if maximum is not None and measured > maximum:
            broken.append(f"Member must have {what} less than or equal to {maximum}")
    if broken:
        sensitive = shape.serialization.get("sensitive") or shape.metadata.get("sensitive")
        shown = "" if sensitive else f" '{value}'"
        yield from (f"Value{shown} at '{field}' failed to satisfy constraint: {rule}" for rule in broken)


def _join(field: str, name: str) -> str:
    return f"{field}.{name}" if field else name
