"""ASL intrinsic functions (``States.Format(...)``, ``States.StringToJson(...)``, ...).

The call parser is hand-written: no maintained Python library implements the ASL intrinsic grammar (moto's and
LocalStack's interpreters embed ANTLR-generated parsers that are not published as packages). The grammar is
small:
a call is ``States.Name(arg, ...)`` and an argument is a single-quoted string, a number, ``true``/``false``/
``null``, a path (``$...``, ``$$...``, ``$var...``) or a nested call. Calls are compiled once into closures.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import inspect
import json
import math
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_distmap.local.asl.paths import MISSING, PathRuntimeError, compile_path, to_json, variables_of

Evaluator = Callable[[Any, Mapping[str, Any]], Any]

_HASH_ALGORITHMS = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}
_MAX_ARRAY_RANGE = 1000
#: The characters a backslash escapes in a string literal.
_RESERVED = frozenset("'{}\\")
#: "You can nest up to 10 intrinsic functions within a field" (AWS, Intrinsic functions).
_MAX_NESTING = 10
_MAX_BASE64_INPUT = 10000
_MAX_HASH_INPUT = 10000


class IntrinsicSyntaxError(ValueError):
    """Raised when an intrinsic function call is malformed (a definition error)."""


@dataclass(frozen=True)
class _StringLiteral:
    value: str
    raw: str  # with escapes kept, for States.Format placeholders
    #: A backslash before a character that is not reserved: "If an open escape backslash \ is found in the
    #: intrinsic invocation string, the interpreter will throw a runtime error" (AWS, Intrinsic functions).
    #: UNCONFIRMED that "open escape" means this rather than only a backslash that ends the string.
    open_escape: bool = False


def is_intrinsic(text: str) -> bool:
    """Whether a ``.$`` value is an intrinsic function call rather than a path.

    :param text: the value.
    """
    return text.startswith("States.")


def compile_intrinsic(text: str, field: str = "") -> Evaluator:
    """Compile an intrinsic function call.

    :param text: the call, e.g. ``States.Format('Hello {}', $.name)``.
    :param field: the template key it belongs to, named in runtime error messages.
    :raises IntrinsicSyntaxError: when the call is malformed or names an unknown function.
    """
    parser = _Parser(text, field)
    evaluator = parser.parse_call()
    parser.skip_spaces()
    if parser.position != len(text):
        raise IntrinsicSyntaxError(
            f"Unexpected text after the intrinsic function call: {text[parser.position :]!r}"
        )
    return evaluator


class _Parser:
    def __init__(self, text: str, field: str) -> None:
        self.text = text
        self.field = field
        self.position = 0
        self.depth = 0

    def skip_spaces(self) -> None:
        while self.position < len(self.text) and self.text[self.position].isspace():
            self.position += 1

    def parse_call(self) -> Evaluator:
        self.skip_spaces()
        start = self.position
        while self.position < len(self.text) and (
            self.text[self.position].isalnum() or self.text[self.position] == "."
        ):
            self.position += 1
        name = self.text[start : self.position]
        if not name.startswith("States."):
            raise IntrinsicSyntaxError(f"Expected an intrinsic function call at {self.text[start:]!r}")
        function = _FUNCTIONS.get(name)
        if function is None:
            raise IntrinsicSyntaxError(f"The intrinsic function {name} is not supported")
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise IntrinsicSyntaxError(
                f"Intrinsic functions nest at most {_MAX_NESTING} deep in {self.text!r}"
            )
        self.skip_spaces()
        if self.position >= len(self.text) or self.text[self.position] != "(":
            raise IntrinsicSyntaxError(f"Expected '(' after {name}")
        self.position += 1
        args: list[Any] = []
        self.skip_spaces()
        if self.position < len(self.text) and self.text[self.position] == ")":
            self.position += 1
        else:
            while True:
                args.append(self.parse_argument())
                self.skip_spaces()
                if self.position >= len(self.text):
                    raise IntrinsicSyntaxError(f"Missing ')' in {self.text!r}")
                char = self.text[self.position]
                self.position += 1
                if char == ")":
                    break
                if char != ",":
                    raise IntrinsicSyntaxError(
                        f"Expected ',' or ')' in {self.text!r} at position {self.position}"
                    )
        self.depth -= 1
        fewest, most = _arity(function)
        if len(args) < fewest or (most is not None and len(args) > most):
            wanted = (
                f"{fewest} or more"
                if most is None
                else (f"{fewest}" if fewest == most else f"{fewest} to {most}")
            )
            raise IntrinsicSyntaxError(f"{name} takes {wanted} arguments, not {len(args)}")
        return _bind(name, function, args, self.text, self.field)

    def parse_argument(self) -> Any:
        self.skip_spaces()
        text = self.text
        if self.position >= len(text):
            raise IntrinsicSyntaxError(f"Missing argument in {text!r}")
        char = text[self.position]
        if char == "'":
            return self.parse_string()
        if char == "$":
            return self.parse_path()
        if text.startswith("States.", self.position):
            return self.parse_call()
        start = self.position
        while (
            self.position < len(text)
            and text[self.position] not in ",)"
            and not text[self.position].isspace()
        ):
            self.position += 1
        token = text[start : self.position]
        if token in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[token]
        try:
            return json.loads(token) if token and (token[0].isdigit() or token[0] == "-") else _fail(token)
        except json.JSONDecodeError:
            return _fail(token)

    def parse_string(self) -> _StringLiteral:
        text = self.text
        self.position += 1
        value: list[str] = []
        start = self.position
        open_escape = False
        while self.position < len(text):
            char = text[self.position]
            if char == "\\" and self.position + 1 < len(text):
                open_escape = open_escape or text[self.position + 1] not in _RESERVED
                value.append(text[self.position + 1])
                self.position += 2
                continue
            if char == "'":
                raw = text[start : self.position]
                self.position += 1
                return _StringLiteral("".join(value), raw, open_escape)
            value.append(char)
            self.position += 1
        raise IntrinsicSyntaxError(f"Unterminated string literal in {text!r}")

    def parse_path(self) -> Evaluator:
        text = self.text
        start = self.position
        depth = 0
        quote: str | None = None
        while self.position < len(text):
            char = text[self.position]
            if quote is not None:
                if char == quote:
                    quote = None
            elif char in "'\"":
                quote = char
            elif char in "[(":
                depth += 1
            elif char in "])":
                if depth == 0:
                    break
                depth -= 1
            elif char == "," and depth == 0:
                break
            self.position += 1
        path_text = text[start : self.position].strip()
        try:
            path = compile_path(path_text)
        except ValueError as exc:
            raise IntrinsicSyntaxError(str(exc)) from exc
        field = self.field

        def get(data: Any, context: Mapping[str, Any]) -> Any:
            value = path.find(data, context)
            if value is MISSING:
                shown = (
                    data
                    if path.source == "data"
                    else (context if path.source == "context" else variables_of(context))
                )
                raise PathRuntimeError(
                    f"The JSONPath '{path_text}' specified for the field '{field}' could not be found in the "
                    f"input '{to_json(shown)}'"
                )
            return value

        return get


@functools.cache
def _arity(function: Callable[..., Any]) -> tuple[int, int | None]:
    """The fewest and most arguments an intrinsic takes (``None``: any number)."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return sum(
            p.default is inspect.Parameter.empty and p.kind is not p.VAR_POSITIONAL for p in parameters
        ), None
    return sum(p.default is inspect.Parameter.empty for p in parameters), len(parameters)


def _fail(token: str) -> Any:
    raise IntrinsicSyntaxError(f"Invalid intrinsic function argument {token!r}")


def _bind(name: str, function: Callable[..., Any], args: list[Any], text: str, field: str) -> Evaluator:
    """Close over the parsed arguments; literal arguments are evaluated once."""
    getters: list[Evaluator | None] = []
    constants: list[Any] = []
    for arg in args:
        if callable(arg):
            getters.append(arg)
            constants.append(None)
        else:
            getters.append(None)
            constants.append(arg)
    takes_raw = name == "States.Format"
    open_escape = any(isinstance(arg, _StringLiteral) and arg.open_escape for arg in args)

    def evaluate(data: Any, context: Mapping[str, Any]) -> Any:
        if open_escape:
            raise PathRuntimeError(
                f"The function '{text}' has an open escape: a backslash before no reserved character"
            )
        values = []
        for getter, constant in zip(getters, constants, strict=True):
            if getter is not None:
                values.append(getter(data, context))
            elif isinstance(constant, _StringLiteral):
                values.append(constant if takes_raw else constant.value)
            else:
                values.append(constant)
        try:
            return function(*values)
        except PathRuntimeError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, binascii.Error, UnicodeDecodeError) as exc:
            # UNCONFIRMED: the exact error name AWS reports for a failing intrinsic; States.Runtime is what it
            # reports for other payload-template failures, so we use it too.
            raise PathRuntimeError(f"The function '{text}' had the following error: {exc}") from exc

    return evaluate


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def _is_number(value: Any) -> bool:
    """A finite JSON number (``bool`` is not one; ``-Infinity`` parses as a literal but is no JSON number)."""
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and math.isfinite(value)
    )


def _is_int(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer()
    )


@functools.lru_cache(maxsize=256)
def _format_pieces(raw: str) -> tuple[str, ...]:
    """Split a ``States.Format`` template (escapes applied) into the literal texts around its ``{}``."""
    pieces: list[str] = []
    out: list[str] = []
    position = 0
    while position < len(raw):
        char = raw[position]
        if char == "\\" and position + 1 < len(raw):
            out.append(raw[position + 1])
            position += 2
        elif raw.startswith("{}", position):
            pieces.append("".join(out))
            out = []
            position += 2
        else:
            out.append(char)
            position += 1
    pieces.append("".join(out))
    return tuple(pieces)


def _format(template: Any, *args: Any) -> str:
    _require(isinstance(template, _StringLiteral | str), "the first argument must be a string")
    raw = template.raw if isinstance(template, _StringLiteral) else template.replace("\\", "\\\\")
    pieces = _format_pieces(raw)
    out = [pieces[0]]
    for position, piece in enumerate(pieces[1:]):
        _require(position < len(args), "the number of arguments does not match the number of placeholders")
        value = args[position]
        if isinstance(value, _StringLiteral):
            value = value.value
        _require(not isinstance(value, dict | list), "arguments must be strings, numbers, booleans or null")
        out.append(value if isinstance(value, str) else to_json(value))
        out.append(piece)
    _require(
        len(args) == len(pieces) - 1, "the number of arguments does not match the number of placeholders"
    )
    return "".join(out)


def _string_to_json(text: Any) -> Any:
    _require(isinstance(text, str), "the argument must be a string")
    return json.loads(text)


def array_partition(array: Any, size: Any) -> list[Any]:
    """``States.ArrayPartition``: ``array`` in chunks of ``size`` (the last one shorter).

    :param array: the array.
    :param size: the chunk size, a positive number (rounded).
    :raises ValueError: naming the argument that is not valid.
    """
    _require(isinstance(array, list), "the first argument must be an array")
    # "If you specify a non-integer value for the second argument, Step Functions will round it off to the
    # nearest integer" (AWS, Intrinsic functions, States.ArrayPartition): 4.6 partitions by 5.
    _require(_is_number(size), "the chunk size must be a positive integer")
    chunk = _rounded(size, "the chunk size")
    _require(chunk > 0, "the chunk size must be a positive integer")
    return [array[i : i + chunk] for i in range(0, len(array), chunk)]


def _array_contains(array: Any, value: Any) -> bool:
    _require(isinstance(array, list), "the first argument must be an array")
    return any(_json_equal(item, value) for item in array)


def _json_equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    return bool(left == right)


def array_range(start: Any, end: Any, step: Any) -> list[int]:
    """``States.ArrayRange``: ``start`` to ``end`` included, by ``step``.

    :param start: the first number (rounded).
    :param end: the last number, included when a step lands on it (rounded).
    :param step: the increment, not 0 (rounded).
    :raises ValueError: naming the argument that is not valid, or when the array would be too long.
    """
    # "If you specify a non-integer value for any of the arguments, Step Functions will round it off to the
    # nearest integer" (AWS, Intrinsic functions, States.ArrayRange): (1.2, 9.4, 2.1) is (1, 9, 2).
    first, last, increment = (_rounded(value, "arguments") for value in (start, end, step))
    _require(increment != 0, "the step must not be 0")
    values = list(range(first, last + (1 if increment > 0 else -1), increment))
    _require(len(values) <= _MAX_ARRAY_RANGE, f"the array cannot have more than {_MAX_ARRAY_RANGE} items")
    return values


def _array_get_item(array: Any, index: Any) -> Any:
    _require(isinstance(array, list), "the first argument must be an array")
    _require(_is_int(index) and 0 <= index < len(array), f"the index {index} is out of bounds")
    return array[int(index)]


def _array_length(array: Any) -> int:
    _require(isinstance(array, list), "the argument must be an array")
    return len(array)


def _array_unique(array: Any) -> list[Any]:
    _require(isinstance(array, list), "the argument must be an array")
    seen: set[str] = set()
    unique = []
    for item in array:
        key = json.dumps(item, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _base64_encode(text: Any) -> str:
    _require(isinstance(text, str), "the argument must be a string")
    _require(
        len(text) <= _MAX_BASE64_INPUT, f"the input cannot be longer than {_MAX_BASE64_INPUT} characters"
    )
    return base64.b64encode(text.encode()).decode()


def _base64_decode(text: Any) -> str:
    _require(isinstance(text, str), "the argument must be a string")
    _require(
        len(text) <= _MAX_BASE64_INPUT, f"the input cannot be longer than {_MAX_BASE64_INPUT} characters"
    )
    return base64.b64decode(text.encode(), validate=True).decode()


def hash_text(data: Any, algorithm: Any) -> str:
    """``States.Hash``: the hex digest of ``data`` (a string, or another value's JSON text).

    :param data: what to hash.
    :param algorithm: ``MD5``, ``SHA-1``, ``SHA-256``, ``SHA-384`` or ``SHA-512``.
    :raises ValueError: for an unknown algorithm or a too long input.
    """
    _require(
        algorithm in _HASH_ALGORITHMS,
        f"the algorithm must be one of {', '.join(_HASH_ALGORITHMS)}, not {algorithm}",
    )
    text = data if isinstance(data, str) else to_json(data)
    # "The data you provide must be an object string containing 10,000 characters or less" (AWS, Intrinsic
    # functions, States.Hash). A non-string is measured as the JSON text that is hashed.
    _require(len(text) <= _MAX_HASH_INPUT, f"the input cannot be longer than {_MAX_HASH_INPUT} characters")
    return hashlib.new(_HASH_ALGORITHMS[algorithm], text.encode()).hexdigest()


def _json_merge(left: Any, right: Any, deep: Any) -> dict[str, Any]:
    _require(isinstance(left, dict) and isinstance(right, dict), "the first two arguments must be objects")
    _require(deep is False, "only a shallow merge (false) is supported, as in AWS")
    return {**left, **right}


def _rounded(value: Any, what: str) -> int:
    """A number rounded as AWS's math intrinsics round one: half up (Java's ``Math.round``), in 32 bits.

    "If you specify a non-integer value ... Step Functions will round it off to the nearest integer"; AWS's
    recorded runs give ``MathAdd(2.5, 0) = 3`` and ``MathAdd(-2.5, 0) = -2``. The pages say the same of
    ArrayPartition's chunk size and of ArrayRange's arguments, which use this too (UNCONFIRMED that they also
    round half up and stop at 32 bits, as the math intrinsics do).
    """
    _require(_is_number(value), f"{what} must be numbers")
    number = value if isinstance(value, int) else math.floor(value + 0.5)
    _require(_INT32_MIN <= number <= _INT32_MAX, f"{what} must be between {_INT32_MIN} and {_INT32_MAX}")
    return int(number)


def _math_random(start: Any, end: Any, seed: Any = None) -> int:
    first, last = _rounded(start, "start and end"), _rounded(end, "start and end")
    _require(first < last, "start must be less than end")
    generator = random.Random(seed) if seed is not None else random
    return generator.randrange(first, last)


def _math_add(left: Any, right: Any) -> int:
    return _rounded(left, "arguments") + _rounded(right, "arguments")


def _string_split(text: Any, delimiters: Any) -> list[str]:
    _require(isinstance(text, str) and isinstance(delimiters, str), "arguments must be strings")
    # Every character of the second argument is a delimiter and empty tokens are dropped (Java
    # StringTokenizer semantics; AWS's examples split "1,2,3" and "This.is+a,test=string" this way).
    tokens: list[str] = []
    current: list[str] = []
    for char in text:
        if char in delimiters:
            if current:
                tokens.append("".join(current))
            current = []
        else:
            current.append(char)
    if current:
        tokens.append("".join(current))
    return tokens


def _json_to_string(value: Any) -> str:
    return to_json(value)


def _array(*values: Any) -> list[Any]:
    return list(values)


def _uuid() -> str:
    return str(uuid.uuid4())


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "States.Format": _format,
    "States.StringToJson": _string_to_json,
    "States.JsonToString": _json_to_string,
    "States.Array": _array,
    "States.ArrayPartition": array_partition,
    "States.ArrayContains": _array_contains,
    "States.ArrayRange": array_range,
    "States.ArrayGetItem": _array_get_item,
    "States.ArrayLength": _array_length,
    "States.ArrayUnique": _array_unique,
    "States.Base64Encode": _base64_encode,
    "States.Base64Decode": _base64_decode,
    "States.Hash": hash_text,
    "States.JsonMerge": _json_merge,
    "States.MathRandom": _math_random,
    "States.MathAdd": _math_add,
    "States.StringSplit": _string_split,
    "States.UUID": _uuid,
}

SUPPORTED_INTRINSICS = frozenset(_FUNCTIONS)
