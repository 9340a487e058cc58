"""JSONPath for the ASL engine.

Reference paths, ``.$`` field paths, ``$$`` context paths and ``$var`` variables.

Simple paths (``$``, ``$.a.b``, ``$['x y']``, ``$.a.['x y']``, ``$.a[0]``) are parsed once into a tuple of
steps and walked with plain dict/list indexing: they are the hot path (an ItemSelector runs once per item).
Anything else (wildcards, deep scan, filters, slices, unions) goes through jsonpath-ng's extended parser,
compiled once and cached. Like AWS (Jayway JsonPath), a *definite* path returns one value and an *indefinite*
one returns the list of its matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jsonpath_ng.ext.parser import parse as _jsonpath_parse

from airflow_distmap.json_codec import dumps_standard
from airflow_distmap.local.errors import StatesError

#: ``Path.find`` returns this when nothing matched (``None`` is a legitimate JSON value).
MISSING: Any = object()
_NO_VARIABLES: Mapping[str, Any] = {}

#: One step of a reference path. A bracket step may follow a dot, as in AWS's own example
#: ``$.abc.['def ghi']`` ("you must use square bracket notation", AWS, Paths and Intrinsic functions pages):
#: Jayway, AWS's JSONPath library, reads ``.[`` exactly like ``[`` (``PathCompiler.readDotToken`` skips the
#: dot, then reads the next token, here the bracket).
_STEP_RE = re.compile(
    r"""\.(?P<dot>[^.\[\]*@?()'"\s]+)            # .name
      | \.?\[\s*'(?P<sq>(?:[^'\\]|\\.)*)'\s*\]   # ['name'] or .['name']
      | \.?\[\s*"(?P<dq>(?:[^"\\]|\\.)*)"\s*\]   # ["name"] or .["name"]
      | \.?\[\s*(?P<idx>-?\d+)\s*\]              # [0] or .[0]
    """,
    re.VERBOSE,
)
_VARIABLE_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


class PathRuntimeError(StatesError):
    """A ``States.Runtime`` error from a path or template, before the state runner prefixes its cause.

    The prefix is AWS's "An error occurred while executing the state ..." prefix to its cause.
    """

    def __init__(self, cause: str) -> None:
        super().__init__("States.Runtime", cause)


def to_json(value: Any) -> str:
    """Serialise a value the way Step Functions prints it in causes and history: compact JSON.

    :param value: any JSON-able value.
    """
    return dumps_standard(value)


class ContextDict(dict[str, Any]):
    """The context object (``$$``) plus the workflow variables in scope.

    The variables ride along as an attribute so that ``$$`` never shows them and code that only passes the
    context on (the Distributed Map runtime) keeps them.
    """

    __slots__ = ("jsonata", "variables")

    def __init__(
        self,
        context: Mapping[str, Any],
        variables: Mapping[str, Any] | None = None,
        jsonata: bool | None = None,
    ) -> None:
        super().__init__(context)
        self.variables: Mapping[str, Any] = variables if variables is not None else {}
        #: Whether templates evaluated with this context are JSONata (``{% %}``) rather than JSONPath.
        self.jsonata: bool = bool(getattr(context, "jsonata", False)) if jsonata is None else jsonata


def variables_of(context: Mapping[str, Any]) -> Mapping[str, Any]:
    """The workflow variables carried by a context (empty for a plain dict).

    :param context: a context object, possibly a :class:`ContextDict`.
    """
    variables: Mapping[str, Any] = getattr(context, "variables", _NO_VARIABLES)
    return variables


class Path:
    """A compiled JSONPath.

    :param text: the path as written in the definition (``$...``, ``$$...`` or ``$variable...``).
    """

    __slots__ = ("_jsonpath", "_steps", "source", "text", "variable")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise ValueError(f"A path must be a string, not {text!r}")
        self.text = text
        self.variable: str | None = None
        if text.startswith("$$"):
            self.source = "context"
            body = "$" + text[2:]
        elif (match := _VARIABLE_RE.match(text)) is not None:
            self.source = "variable"
            self.variable = match.group(1)
            body = "$" + text[match.end() :]
        elif text.startswith("$"):
            self.source = "data"
            body = text
        else:
            raise ValueError(f"The path '{text}' does not start with '$'")
        self._steps = _simple_steps(body)
        self._jsonpath: Any = None
        if self._steps is None:
            try:
                self._jsonpath = _jsonpath_parse(body)
            except Exception as exc:  # jsonpath-ng raises bare Exception subclasses from its lexer/parser
                raise ValueError(f"The path '{text}' is not a valid JSONPath: {exc}") from exc

    @property
    def is_reference_path(self) -> bool:
        """Whether the path is a *reference path* (only names and indices), as InputPath etc. need."""
        return self._steps is not None

    def root(self, data: Any, context: Mapping[str, Any]) -> Any:
        """The document the path applies to: the data, the context object or a variable's value."""
        if self.source == "data":
            return data
        if self.source == "context":
            return context
        variables = variables_of(context)
        name = self.variable or ""
        return variables.get(name, MISSING)

    def find(self, data: Any, context: Mapping[str, Any]) -> Any:
        """Evaluate; returns :data:`MISSING` when a definite path matches nothing.

        :param data: the JSON value ``$`` refers to.
        :param context: the context object ``$$`` refers to (and the variables).
        """
        current = data if self.source == "data" else self.root(data, context)
        if current is MISSING:
            return MISSING
        steps = self._steps
        if steps is not None:
            for step in steps:
                if isinstance(step, str):
                    if not isinstance(current, dict):
                        return MISSING
                    current = current.get(step, MISSING)
                    if current is MISSING:
                        return MISSING
                else:
                    if not isinstance(current, list):
                        return MISSING
                    try:
                        current = current[step]
                    except IndexError:
                        return MISSING
            return current
        return [match.value for match in self._jsonpath.find(current)]

    def __repr__(self) -> str:
        return f"Path({self.text!r})"


def _simple_steps(body: str) -> tuple[str | int, ...] | None:
    """Split ``$.a['b'][0]`` into ``("a", "b", 0)``; ``None`` when the path needs the full JSONPath parser."""
    position = 1
    steps: list[str | int] = []
    length = len(body)
    while position < length:
        match = _STEP_RE.match(body, position)
        if match is None:
            return None
        if match.group("dot") is not None:
            steps.append(match.group("dot"))
        elif match.group("sq") is not None:
            steps.append(re.sub(r"\\(.)", r"\1", match.group("sq")))
        elif match.group("dq") is not None:
            steps.append(re.sub(r"\\(.)", r"\1", match.group("dq")))
        else:
            steps.append(int(match.group("idx")))
        position = match.end()
    return tuple(steps)


@lru_cache(maxsize=4096)
def compile_path(text: str) -> Path:
    """Compile a path once (cached by its text).

    :param text: the path.
    :raises ValueError: when the text is not a valid path.
    """
    return Path(text)


def evaluate_path(path: str, data: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate a reference path (or any JSONPath) like Step Functions does.

    :param path: ``$...`` on ``data``, ``$$...`` on ``context``, ``$name...`` on a workflow variable.
    :param data: the JSON value ``$`` refers to.
    :param context: the context object (a :class:`ContextDict` also carries the variables).
    :return: the matched value (a list of matches for an indefinite path).
    :raises StatesError: ``States.Runtime`` when the path matches nothing or is not a valid path.
    """
    try:
        compiled = compile_path(path)
    except ValueError as exc:
        raise PathRuntimeError(str(exc)) from exc
    value = compiled.find(data, context)
    if value is MISSING:
        raise PathRuntimeError(missing_path_cause(compiled, data, context))
    return value


def missing_path_cause(path: Path, data: Any, context: Mapping[str, Any]) -> str:
    """AWS's cause text for a reference path (InputPath, ItemsPath…) that matches nothing.

    As Jayway (AWS's JSONPath library) words it: a missing last property gives "No results for path", a
    missing property before it "Missing property in path" up to that property (both recorded on AWS).
    """
    steps = path._steps
    if steps and path.source == "data":
        current = data
        for position, step in enumerate(steps[:-1]):
            if isinstance(step, str) and isinstance(current, dict) and step not in current:
                prefix = "$" + "".join(
                    f"[{s}]" if isinstance(s, int) else f"['{s}']" for s in steps[: position + 1]
                )
                return f"Invalid path '{path.text}' : Missing property in path {prefix}"
            try:
                current = current[step]
            except (KeyError, IndexError, TypeError):
                break
    return f"Invalid path '{path.text}' : No results for path: {_bracketed(path.text)}"


def _bracketed(text: str) -> str:
    """Render a path the way Jayway prints it in errors: ``$.a.b[0]`` as ``$['a']['b'][0]``."""
    steps = _simple_steps("$" + text.lstrip("$")) if not text.startswith("$$") else _simple_steps(text[1:])
    if steps is None:
        return text
    prefix = "$$" if text.startswith("$$") else "$"
    return prefix + "".join(f"[{s}]" if isinstance(s, int) else f"['{s}']" for s in steps)


def field_path_getter(field: str, path_text: str) -> Callable[[Any, Mapping[str, Any]], Any]:
    """A fast evaluator for one ``"field.$": "<path>"`` entry of a payload template.

    :param field: the template key including ``.$`` (named in the error message).
    :param path_text: the path.
    :raises ValueError: when the path is invalid (definition error).
    """
    path = compile_path(path_text)
    source = path.source

    def get(data: Any, context: Mapping[str, Any]) -> Any:
        value = path.find(data, context)
        if value is MISSING:
            shown = data if source == "data" else (context if source == "context" else variables_of(context))
            raise PathRuntimeError(
                f"The JSONPath '{path_text}' specified for the field '{field}' could not be found in the "
                "input "
                f"'{to_json(shown)}'"
            )
        return value

    return get
