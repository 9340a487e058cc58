"""Payload templates.

Parameters, ItemSelector, ResultSelector, BatchInput, ItemReader/ResultWriter Parameters.

A template is any JSON value; inside objects a key ending in ``.$`` takes its value from a path (``$...``
on the
data, ``$$...`` on the context object, ``$var`` on a workflow variable) or an intrinsic function call, and the
``.$`` is dropped from the output key. Templates are compiled once into closures; constant sub-trees are
shared
(the engine never mutates values in place).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from airflow_distmap.local.asl.intrinsics import compile_intrinsic, is_intrinsic
from airflow_distmap.local.asl.jsonata import JsonataTemplate, make_bindings
from airflow_distmap.local.asl.paths import (
    MISSING,
    PathRuntimeError,
    compile_path,
    field_path_getter,
    variables_of,
)
from airflow_distmap.local.errors import StatesError

Evaluator = Callable[[Any, Mapping[str, Any]], Any]


class CompiledTemplate:
    """A payload template compiled once.

    :param template: the template as written in the definition.
    :raises ValueError: when a ``.$`` value is not a valid path or intrinsic call.
    """

    __slots__ = ("evaluate", "is_constant")

    def __init__(self, template: Any) -> None:
        evaluator = _compile(template)
        self.is_constant = evaluator is None
        if evaluator is None:

            def constant(data: Any, context: Mapping[str, Any]) -> Any:
                return template

            self.evaluate: Evaluator = constant
        else:
            self.evaluate = evaluator


def _compile(template: Any) -> Evaluator | None:
    """An evaluator, or ``None`` when the (sub-)template is constant."""
    if isinstance(template, dict):
        parts: list[tuple[str, Evaluator | None, Any]] = []
        dynamic = False
        for key, value in template.items():
            if key.endswith(".$") and len(key) > 2:
                if not isinstance(value, str):
                    raise ValueError(
                        f"The value of the field '{key}' must be a path or an intrinsic function"
                    )
                getter = compile_intrinsic(value, key) if is_intrinsic(value) else _path_getter(key, value)
                parts.append((key[:-2], getter, None))
                dynamic = True
            else:
                sub = _compile(value)
                parts.append((key, sub, value))
                dynamic = dynamic or sub is not None
        if not dynamic:
            return None
        frozen = tuple(parts)

        def evaluate_object(data: Any, context: Mapping[str, Any]) -> Any:
            return {key: (get(data, context) if get is not None else const) for key, get, const in frozen}

        return evaluate_object
    if isinstance(template, list):
        items = [(_compile(item), item) for item in template]
        if all(get is None for get, _ in items):
            return None
        frozen_items = tuple(items)

        def evaluate_list(data: Any, context: Mapping[str, Any]) -> Any:
            return [get(data, context) if get is not None else const for get, const in frozen_items]

        return evaluate_list
    return None


def _path_getter(key: str, value: str) -> Evaluator:
    if not value.startswith("$"):
        raise ValueError(f"The value of the field '{key}' must start with '$' or 'States.': {value!r}")
    return field_path_getter(key, value)


_BY_IDENTITY: dict[int, tuple[Any, CompiledTemplate]] = {}
_BY_IDENTITY_LIMIT = 4096


def compile_template(template: Any) -> CompiledTemplate:
    """Compile a template, cached by the identity of the template object (definitions are long-lived).

    :param template: the template as written in the definition.
    :raises ValueError: when a ``.$`` value is not a valid path or intrinsic call.
    """
    key = id(template)
    cached = _BY_IDENTITY.get(key)
    # The cache holds the template itself, so its id cannot be reused by another object while cached.
    if cached is not None and cached[0] is template:
        return cached[1]
    compiled = CompiledTemplate(template)
    if len(_BY_IDENTITY) >= _BY_IDENTITY_LIMIT:
        _BY_IDENTITY.clear()
    _BY_IDENTITY[key] = (template, compiled)
    return compiled


def evaluate_template(template: Any, data: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate a payload template (Parameters, ItemSelector, BatchInput, ItemReader/ResultWriter Parameters).

    The compiled form is cached by the template object's identity, so calling this once per item with the
    same template object costs one dict lookup on top of the evaluation itself. When the context is a
    :class:`~airflow_distmap.local.asl.paths.ContextDict` of a JSONata state, ``{% %}`` strings are
    JSONata expressions seeing ``$states.input`` (= ``data``) and ``$states.context``.

    :param template: the template as written in the definition.
    :param data: the JSON value ``$`` refers to.
    :param context: the context object ``$$`` refers to.
    :return: the payload.
    :raises StatesError: ``States.Runtime`` when a path matches nothing or an intrinsic fails.
    """
    if getattr(context, "jsonata", False):
        try:
            expression = _compile_jsonata(template)
        except ValueError as exc:
            raise StatesError("States.QueryEvaluationError", str(exc)) from exc
        return expression.evaluate(make_bindings(data, context, variables_of(context)))
    try:
        compiled = compile_template(template)
    except ValueError as exc:
        raise PathRuntimeError(str(exc)) from exc
    return compiled.evaluate(data, context)


_JSONATA_BY_IDENTITY: dict[int, tuple[Any, JsonataTemplate]] = {}


def _compile_jsonata(template: Any) -> JsonataTemplate:
    key = id(template)
    cached = _JSONATA_BY_IDENTITY.get(key)
    if cached is not None and cached[0] is template:
        return cached[1]
    compiled = JsonataTemplate(template)
    if len(_JSONATA_BY_IDENTITY) >= _BY_IDENTITY_LIMIT:
        _JSONATA_BY_IDENTITY.clear()
    _JSONATA_BY_IDENTITY[key] = (template, compiled)
    return compiled


# -- ItemSelector fast path ----------------------------------------------------------------------------------

ChunkSelector = Callable[[int, list[Any]], list[Any]]
"""``(index of the first item, items) -> selected values``."""

_ITEM_VALUE = "$$.Map.Item.Value"
_NO_CONTEXT: Mapping[str, Any] = {}


class ItemPathMissing(Exception):
    """An item selector's path matched nothing: evaluate the template the general way for AWS's error."""


class _Unsupported(Exception):
    pass


def compile_item_selector(template: Any) -> ChunkSelector | None:
    """A faster evaluator of an ItemSelector reading only ``$$.Map.Item.Index`` and ``$$.Map.Item.Value``.

    A Distributed Map evaluates its ItemSelector once per item; the general evaluator builds the item's
    context object first. This one selects a whole chunk of items in one list comprehension, compiled from the
    template (``{"index": i, "row": {"text": v["text"]}}`` for the operator's selector), so a row costs one
    dictionary display per object. It handles constants and the paths ``$$.Map.Item.Index``,
    ``$$.Map.Item.Value`` and reference paths below it (``$$.Map.Item.Value.name``, ``['name']``, ``[0]``);
    anything else (other paths, intrinsics, variables) gives ``None``: use :func:`evaluate_template`. The
    values equal :func:`evaluate_template`'s; when an item does not fit (a path matches nothing, the item is
    not an object) it raises, and the caller evaluates that chunk the general way, which raises AWS's error.

    :param template: the ItemSelector as written in the definition.
    """
    bindings: dict[str, Any] = {"enumerate": enumerate}
    try:
        expression = _item_expression(template, bindings)
    except (_Unsupported, ValueError):
        return None
    if expression is None:
        bindings["template"] = template
        expression = "template"
    # Only repr() of the template's keys and generated names reach the source: nothing from the input runs.
    source = f"def select(first, items):\n    return [{expression} for i, v in enumerate(items, first)]\n"
    exec(compile(source, "<ItemSelector>", "exec"), bindings)
    select: ChunkSelector = bindings["select"]
    return select


def _bind(bindings: dict[str, Any], prefix: str, value: Any) -> str:
    name = f"{prefix}{len(bindings)}"
    bindings[name] = value
    return name


def _getter_expression(path_text: str, bindings: dict[str, Any]) -> str:
    if path_text == "$$.Map.Item.Index":
        return "i"
    if path_text == _ITEM_VALUE:
        return "v"
    rest = path_text[len(_ITEM_VALUE) :]
    if not path_text.startswith(_ITEM_VALUE) or rest[:1] not in (".", "["):
        raise _Unsupported(path_text)
    path = compile_path("$" + rest)
    if not path.is_reference_path:
        raise _Unsupported(path_text)
    name = rest[1:]
    if rest[0] == "." and name.isascii() and name.isidentifier():  # one field: $$.Map.Item.Value.name
        return f"v[{name!r}]"  # KeyError, TypeError (not an object): the caller goes the general way
    find = path.find

    def get(value: Any) -> Any:
        found = find(value, _NO_CONTEXT)
        if found is MISSING:
            raise ItemPathMissing(path_text)
        return found

    return f"{_bind(bindings, 'get', get)}(v)"


def _item_expression(template: Any, bindings: dict[str, Any]) -> str | None:
    """A Python expression of ``i`` (index) and ``v`` (item) for ``template``; ``None`` if it is constant."""
    if isinstance(template, dict):
        parts: list[str] = []
        dynamic = False
        for key, value in template.items():
            if key.endswith(".$") and len(key) > 2:
                if not isinstance(value, str):
                    raise _Unsupported(key)
                parts.append(f"{key[:-2]!r}: {_getter_expression(value, bindings)}")
                dynamic = True
            else:
                sub = _item_expression(value, bindings)
                dynamic = dynamic or sub is not None
                parts.append(f"{key!r}: {sub if sub is not None else _bind(bindings, 'const', value)}")
        return "{" + ", ".join(parts) + "}" if dynamic else None
    if isinstance(template, list):
        items = [_item_expression(item, bindings) for item in template]
        if all(item is None for item in items):
            return None
        return (
            "["
            + ", ".join(
                e if e is not None else _bind(bindings, "const", t)
                for e, t in zip(items, template, strict=True)
            )
            + "]"
        )
    if isinstance(template, str) and template.lstrip().startswith("{%"):
        raise _Unsupported(template)  # a JSONata expression
    return None
