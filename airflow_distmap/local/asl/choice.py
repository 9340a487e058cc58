"""Choice rules (JSONPath): data-test expressions, ``And``/``Or``/``Not``, compiled once into predicates."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from airflow_distmap.local.asl.paths import MISSING, PathRuntimeError, compile_path

Predicate = Callable[[Any, Mapping[str, Any]], bool]

#: A character outside the Basic Multilingual Plane: Java stores it as two UTF-16 code units.
_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")
_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda v: v is None,
    "IsBoolean": lambda v: isinstance(v, bool),
    "IsNumeric": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "IsString": lambda v: isinstance(v, str),
    "IsTimestamp": lambda v: isinstance(v, str) and parse_timestamp(v) is not None,
}

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: a == b,
    "LessThan": lambda a, b: a < b,
    "GreaterThan": lambda a, b: a > b,
    "LessThanEquals": lambda a, b: a <= b,
    "GreaterThanEquals": lambda a, b: a >= b,
}

COMPARISON_OPERATORS = frozenset(
    [f"{kind}{op}" for kind in ("String", "Numeric", "Timestamp") for op in _ORDER]
    + [f"{kind}{op}Path" for kind in ("String", "Numeric", "Timestamp") for op in _ORDER]
    + ["BooleanEquals", "BooleanEqualsPath", "StringMatches", "IsPresent", *_TYPE_TESTS]
)


def parse_timestamp(text: str) -> datetime | None:
    """Parse an RFC 3339 timestamp as Step Functions accepts it (``2016-03-14T01:59:00Z``), else ``None``.

    :param text: the timestamp.
    """
    if not _TIMESTAMP_RE.match(text):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _coerce(kind: str, value: Any) -> Any:
    """The comparable form of a value for a comparison kind, or ``MISSING`` when the type does not fit."""
    if kind == "String":
        return value if isinstance(value, str) else MISSING
    if kind == "Numeric":
        return value if _is_number(value) else MISSING
    if kind == "Boolean":
        return value if isinstance(value, bool) else MISSING
    if isinstance(value, str):  # Timestamp
        parsed = parse_timestamp(value)
        return parsed if parsed is not None else MISSING
    return MISSING


def _string_matcher(pattern: str) -> re.Pattern[str] | None:
    r"""``*`` matches any run of characters; ``\*`` and ``\\`` are literal.

    ``None`` for a pattern with an open escape: a backslash before anything but ``*`` or ``\``, or a lone
    backslash at the end. "If an open escape backslash \ is found in the StringMatches string, the
    interpreter will throw a runtime error" (ASL spec, states-language.net, Choice rules): the definition is
    accepted and the rule fails when it is evaluated.
    """
    out: list[str] = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            escaped = pattern[position + 1 : position + 2]
            if escaped not in ("*", "\\"):
                return None
            out.append(re.escape(escaped))
            position += 2
            continue
        out.append(".*" if char == "*" else re.escape(char))
        position += 1
    return re.compile("".join(out), re.DOTALL)


def _in_bmp(text: str) -> bool:
    """Whether every character is at most U+FFFF (one UTF-16 code unit); ``isascii`` is O(1) in CPython."""
    return text.isascii() or _ASTRAL_RE.search(text) is None


def _java_string_order(compare: Callable[[Any, Any], bool]) -> Callable[[str, str], bool]:
    """``compare`` on strings in Java's ``String.compareTo`` order: by UTF-16 code units, not code points.

    "To understand the behavior of string comparisons, see the Java compareTo documentation" (AWS, Choice
    state). The orders differ only when a string has a character above U+FFFF (two surrogate code units, which
    sort below U+E000..U+FFFF), so only such strings pay for the UTF-16 encoding. Big-endian UTF-16 bytes sort
    as their code units do; ``surrogatepass`` keeps a lone surrogate (valid in JSON text) encodable.
    """

    def java_compare(left: str, right: str) -> bool:
        if _in_bmp(left) and _in_bmp(right):
            return compare(left, right)
        return compare(left.encode("utf-16-be", "surrogatepass"), right.encode("utf-16-be", "surrogatepass"))

    return java_compare


def _open_escape_rule(pattern: str) -> Predicate:
    """A StringMatches rule whose pattern has an open escape: a ``States.Runtime`` error once evaluated."""

    def fail(data: Any, context: Mapping[str, Any]) -> bool:
        # UNCONFIRMED: AWS's wording of this cause.
        raise PathRuntimeError(
            f"The StringMatches pattern '{pattern}' has an open escape: a backslash before a character "
            "other than '*' or '\\'"
        )

    return fail


def compile_rule(rule: Mapping[str, Any]) -> Predicate:
    """Compile one Choice rule (top-level rules carry ``Next``, which is ignored here).

    :param rule: the rule as written in the definition.
    :raises ValueError: when the rule has no (or an unknown) comparison operator.
    """
    if "And" in rule:
        parts = [compile_rule(sub) for sub in rule["And"]]
        return lambda data, context: all(part(data, context) for part in parts)
    if "Or" in rule:
        parts = [compile_rule(sub) for sub in rule["Or"]]
        return lambda data, context: any(part(data, context) for part in parts)
    if "Not" in rule:
        inner = compile_rule(rule["Not"])
        return lambda data, context: not inner(data, context)
    operators = [key for key in rule if key in COMPARISON_OPERATORS]
    if len(operators) != 1 or "Variable" not in rule:
        raise ValueError("A Choice rule needs a Variable and exactly one comparison operator")
    return _compile_comparison(rule["Variable"], operators[0], rule[operators[0]])


def _compile_comparison(variable_text: str, operator: str, operand: Any) -> Predicate:
    variable = compile_path(variable_text)

    def read_variable(data: Any, context: Mapping[str, Any]) -> Any:
        value = variable.find(data, context)
        if value is MISSING:
            raise PathRuntimeError(
                f"Invalid path '{variable_text}': The choice state's condition path references an invalid "
                "value."
            )
        return value

    if operator == "IsPresent":
        expected = bool(operand)
        return lambda data, context: (variable.find(data, context) is not MISSING) == expected
    if operator in _TYPE_TESTS:
        test = _TYPE_TESTS[operator]
        expected = bool(operand)

        def type_test(data: Any, context: Mapping[str, Any]) -> bool:
            value = variable.find(data, context)
            if value is MISSING:
                return False
            return test(value) == expected

        return type_test
    if operator == "StringMatches":
        matcher = _string_matcher(operand)
        if matcher is None:
            return _open_escape_rule(operand)

        def matches(data: Any, context: Mapping[str, Any]) -> bool:
            value = read_variable(data, context)
            return isinstance(value, str) and matcher.fullmatch(value) is not None

        return matches

    is_path = operator.endswith("Path")
    base = operator[:-4] if is_path else operator
    kind = next(k for k in ("String", "Numeric", "Timestamp", "Boolean") if base.startswith(k))
    compare = _ORDER[base[len(kind) :]]
    if is_path:
        other = compile_path(operand)

        def read_other(data: Any, context: Mapping[str, Any]) -> Any:
            value = other.find(data, context)
            if value is MISSING:
                raise PathRuntimeError(
                    f"Invalid path '{operand}': The choice state's condition path references an invalid "
                    "value."
                )
            return _coerce(kind, value)

    else:
        constant = _coerce(kind, operand)

        def read_other(data: Any, context: Mapping[str, Any]) -> Any:
            return constant

    if kind == "String" and base != "StringEquals":  # the orders differ, equality does not
        compare = _java_string_order(compare)

    def comparison(data: Any, context: Mapping[str, Any]) -> bool:
        left = _coerce(kind, read_variable(data, context))
        right = read_other(data, context)
        if left is MISSING or right is MISSING:
            return False
        return bool(compare(left, right))

    return comparison
