"""JSONata (``QueryLanguage: JSONata``) templates, evaluated with the jsonata-python library.

In a JSONata state any string of the form ``{% expression %}`` is an expression; it sees ``$states``
(``input``, ``context``, ``result``, ``errorOutput``) and the workflow variables. Other values are literals.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import jsonata
from jsonata.utils import Utils as JsonataUtils

from airflow_distmap.local.asl.jsonata_functions import STEP_FUNCTIONS_FUNCTIONS
from airflow_distmap.local.errors import StatesError

_EXPRESSION_RE = re.compile(r"^\{%(.*)%\}$", re.DOTALL)

Bindings = dict[str, Any]
JsonataEvaluator = Callable[[Bindings], Any]


def is_expression(value: Any) -> bool:
    """Whether a value is a JSONata ``{% ... %}`` string.

    :param value: any definition value.
    """
    return isinstance(value, str) and _EXPRESSION_RE.match(value) is not None


@lru_cache(maxsize=2048)
def _parse(text: str) -> jsonata.Jsonata:
    try:
        expression = jsonata.Jsonata(text)
    except Exception as exc:  # jsonata-python raises JException (a RuntimeError) for syntax errors
        raise ValueError(f"Invalid JSONata expression '{text}': {exc}") from exc
    # Keep JSON null (the library's NULL_VALUE) apart from "undefined" (None) until the result is checked.
    expression.set_output_convert_nulls(False)
    for name, function in STEP_FUNCTIONS_FUNCTIONS.items():
        expression.register_lambda(name, function)
    return expression


def make_bindings(
    input: Any, context: Mapping[str, Any], variables: Mapping[str, Any] | None = None, **states: Any
) -> Bindings:
    """The variables a JSONata expression sees: ``$states`` plus the workflow variables.

    :param input: ``$states.input``.
    :param context: ``$states.context``.
    :param variables: workflow variables in scope.
    :param states: more ``$states`` fields (``result``, ``errorOutput``).
    """
    # A variable holding JSON null is bound as the library's null: a bare None would read as "undefined".
    bindings: Bindings = {
        name: JsonataUtils.NULL_VALUE if value is None else value for name, value in (variables or {}).items()
    }
    bindings["states"] = {"input": input, "context": dict(context), **states}
    return bindings


class JsonataTemplate:
    """A JSONata-mode template (``Arguments``, ``Output``, ``Assign``, ``Items``...) compiled once.

    :param template: the template as written in the definition.
    :param field: the field name, used in error messages.
    :raises ValueError: when an expression does not parse.
    """

    __slots__ = ("evaluate", "is_constant")

    def __init__(self, template: Any, field: str = "") -> None:
        evaluator = _compile(template, field)
        self.is_constant = evaluator is None
        if evaluator is None:

            def constant(bindings: Bindings) -> Any:
                return template

            self.evaluate: JsonataEvaluator = constant
        else:
            self.evaluate = evaluator


def _compile(template: Any, field: str) -> JsonataEvaluator | None:
    if isinstance(template, str):
        match = _EXPRESSION_RE.match(template)  # " {% 1 %}" is text: no space outside the delimiters
        if match is None:
            return None
        text = match.group(1).strip()
        expression = _parse(text)

        def evaluate(bindings: Bindings) -> Any:
            try:
                # No input document: "$", "$$" and bare field names at the top level are undefined (the ASL
                # specification: an expression reads its input as $states.input).
                result = expression.evaluate(None, bindings)
            except Exception as exc:  # JException and the library's internal errors
                raise StatesError(
                    "States.QueryEvaluationError",
                    f"The JSONata expression '{text}' specified for the field '{field}' threw an error: "
                    f"{exc}",
                ) from None
            if result is None:  # AWS fails the state rather than write null or leave the field out
                raise StatesError(
                    "States.QueryEvaluationError",
                    f"The JSONata expression '{text}' specified for the field '{field}' returned nothing "
                    "(undefined).",
                )
            return JsonataUtils.convert_nulls(result)

        return evaluate
    if isinstance(template, dict):
        # AWS names a nested field by its path: 'Output/result', 'Arguments/Input/key'.
        parts = [
            (key, _compile(value, f"{field}/{key}" if field else key), value)
            for key, value in template.items()
        ]
        if all(get is None for _, get, _ in parts):
            return None

        def evaluate_object(bindings: Bindings) -> Any:
            return {key: (get(bindings) if get is not None else const) for key, get, const in parts}

        return evaluate_object
    if isinstance(template, list):
        # UNCONFIRMED: how AWS names an array element's field; "[index]" after the array's.
        items = [(_compile(item, f"{field}[{index}]"), item) for index, item in enumerate(template)]
        if all(get is None for get, _ in items):
            return None

        def evaluate_list(bindings: Bindings) -> Any:
            return [get(bindings) if get is not None else const for get, const in items]

        return evaluate_list
    return None
