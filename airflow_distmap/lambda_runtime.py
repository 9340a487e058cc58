"""Turn a per-row Python function into a Lambda handler for a Distributed Map.

This module imports nothing outside the standard library, so ``python -m airflow_distmap.lambda_zip``
can copy it into a Lambda deployment package next to the user's ``handler.py``.

The item contract (what :class:`~airflow_distmap.operators.csv_row_processing.CsvRowProcessingOperator`'s
``ItemSelector`` and ``ItemBatcher`` send, and what the collector reads back):

One item (no ``ItemBatcher``)::

    {"index": 41, "row": {"name": "Ada", "text": "hello"}}
    -> {"index": 41, "output": <the function's JSON value>}
    -> {"index": 41, "error": {"type": "ValueError", "message": "..."}}      (the function raised)

A batch (``ItemBatcher``)::

    {"Items": [{"index": 40, "row": {...}}, {"index": 41, "row": {...}}],
     "BatchInput": {"config": {...}, "skip": [0]}}
    -> {"rows": [{"index": 40, "output": ...}, {"index": 41, "error": {...}}]}

Plain items work too: an item whose ``row`` is not an object is the row itself (an ItemReader's CSV row or
JSON object, no ItemSelector needed; a CSV column named ``row`` holds text, so it is such a row, and so are
its columns named ``config``, ``skip`` or ``Items``, unless ``Items`` holds a list: that is a batch); its
``index`` is its position in the batch, or ``null`` for a lone item. For the item's position in the whole
dataset, send ``{"index.$": "$$.Map.Item.Index", "row.$": "$$.Map.Item.Value"}`` as the ``ItemSelector``.

``BatchInput`` is optional. ``config`` is handed to functions that take a second parameter
(``f(row, config)``); ``skip`` lists item indexes answered with ``{"index": i, "skipped": true}``
without calling the function (when the CSV operator reads a file with ``GIVEN`` synthetic headers,
for a byte-order mark or column names JSONPath cannot address, item 0 is the header line). A single
item may carry the same two keys next to ``index`` and ``row``.

A row's exception becomes that row's ``error``; its batch-mates are unaffected and the invocation
succeeds. An event that does not follow the contract is an infrastructure failure: the handler
raises :class:`MalformedEventError`, the invocation fails, and Step Functions' retriers see it.

A batch's answer must fit Step Functions' 256 KiB payload: outputs that would overflow it become
``RowOutputTooLarge`` errors of their rows, and a batch too large to answer even that way raises
:class:`BatchOutputTooLargeError` (use a smaller batch).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

log = logging.getLogger(__name__)

#: Step Functions' payload quota: a child execution's output above it fails with States.DataLimitExceeded.
PAYLOAD_LIMIT_BYTES: Final = 256 * 1024
#: Room kept under the quota for the ``{"rows": [...]}`` envelope.
_ENVELOPE_SLACK: Final = 4 * 1024
#: ``", "`` between two rows, as ``json.dumps`` writes them.
_SEPARATOR_BYTES: Final = 2
#: Longest error message kept for a failed row of a batch whose answer is too large.
_SHORT_MESSAGE_CHARS: Final = 100
#: Longest error message reported for a row; the result files stay small whatever the exception says.
MAX_ERROR_MESSAGE_CHARS: Final = 1000

#: Error type given to a row whose output would push the batch over the payload quota.
OUTPUT_TOO_LARGE: Final = "RowOutputTooLarge"
#: Error type given to a row whose output is not JSON-serialisable.
OUTPUT_NOT_JSON: Final = "RowOutputNotJson"

RowFunction = Callable[..., Any]
Handler = Callable[[Any, Any], dict[str, Any]]


class MalformedEventError(ValueError):
    """Raised when a Lambda event does not follow the row contract (an infrastructure failure)."""


class BatchOutputTooLargeError(ValueError):
    """Raised when a batch's answer cannot fit the payload quota even with every output made an error."""


def row_error(exc: BaseException) -> dict[str, str]:
    """Return the ``{"type", "message"}`` object reported for a row that raised ``exc``.

    :param exc: the exception the row function raised.
    """
    message = str(exc)
    if len(message) > MAX_ERROR_MESSAGE_CHARS:
        message = message[: MAX_ERROR_MESSAGE_CHARS - 3] + "..."
    return {"type": type(exc).__name__, "message": message}


def _takes_config(func: RowFunction) -> bool:
    """Whether ``func`` wants the ``config`` mapping as its second argument.

    It does when the second positional parameter is named ``config`` or has no default (``f(row, config)``),
    or when it takes ``*args``; ``f(row, sep="-")`` keeps its own default.
    """
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature: call with the row only
        return False
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2:
        return False
    second = positional[1]
    return second.name == "config" or second.default is inspect.Parameter.empty


def _check_item(item: Any, position: int | None) -> tuple[int | None, dict[str, Any]]:
    """Return ``(index, row)`` of an item.

    An item whose ``row`` is an object is the operator's envelope ``{"index", "row"}``; any other object (even
    one with a column named ``row``) is a plain row (an ItemReader's item as is), whose index is its position
    in the batch (``None`` for a lone item).
    """
    if type(item) is dict:  # the common case, checked without building anything
        index, row = item.get("index"), item.get("row")
        if type(index) is int and type(row) is dict:
            return index, row
    where = "The event" if position is None else f"Items[{position}]"
    if not isinstance(item, Mapping):
        raise MalformedEventError(
            f"{where} must be a JSON object (a row, or {{'index', 'row'}}), got {type(item).__name__}."
        )
    if not isinstance(item.get("row"), Mapping):  # a plain row, which may have a column named "row"
        return position, dict(item)
    index = item.get("index")
    if isinstance(index, bool) or not isinstance(index, int):
        raise MalformedEventError(
            f"{where} has no integer 'index': send '$$.Map.Item.Index' in the ItemSelector."
        )
    return index, dict(item["row"])


def _options(holder: Mapping[str, Any], where: str) -> tuple[Any, frozenset[int]]:
    config = holder.get("config", {})
    if config is None:
        config = {}
    skip = holder.get("skip", [])
    if not isinstance(skip, list) or not all(isinstance(i, int) for i in skip):
        raise MalformedEventError(f"{where} 'skip' must be a list of item indexes.")
    return config, frozenset(skip)


#: ``json.dumps(..., allow_nan=False)`` built once: with non-default options ``json.dumps`` builds an encoder
#: on every call, a noticeable share of a cheap row function's time.
_STRICT_JSON = json.JSONEncoder(allow_nan=False)


class _RowRunner:
    """Call the row function for one item and shape that row's result."""

    def __init__(self, func: RowFunction) -> None:
        self.func = func
        self.with_config = _takes_config(func)

    def run(
        self, index: int | None, row: dict[str, Any], config: Any, skip: frozenset[int]
    ) -> dict[str, Any]:
        """Return the row's result object (its output, or its error)."""
        if index in skip:
            return {"index": index, "skipped": True}
        try:
            output = self.func(row, config) if self.with_config else self.func(row)
        except Exception as exc:  # a row's failure is that row's result, never its batch-mates'
            log.info("Row %s raised %s", index, type(exc).__name__)
            return {"index": index, "error": row_error(exc)}
        return {"index": index, "output": output}


def _sized(result: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The row's result and its serialised size; an output that is not JSON becomes the row's error."""
    try:
        return result, len(_STRICT_JSON.encode(result))  # ASCII (escaped) text: its length is its size
    except (TypeError, ValueError) as exc:
        index = result.get("index")
        log.info("Row %s returned a value that is not JSON", index)
        error = {"index": index, "error": {"type": OUTPUT_NOT_JSON, "message": row_error(exc)["message"]}}
        return error, len(json.dumps(error))


class EncodedResult(dict[str, Any]):
    """A batch's answer ``{"rows": [...]}`` that also carries its ``json.dumps`` text.

    The text is a by-product of sizing the batch against the payload quota. A Lambda runtime serialises the
    answer like any dict (to the same text); the project's local runtime uses :meth:`unchanged_text` instead
    of encoding the batch a second time.

    :param rows: the row results.
    :param text: ``json.dumps`` of ``rows``.
    """

    def __init__(self, rows: list[dict[str, Any]], text: str) -> None:
        super().__init__(rows=rows)
        self._rows, self._count = rows, len(rows)
        self._text = f'{{"rows": {text}}}'  # json.dumps' default separators, as _STRICT_JSON's

    def unchanged_text(self) -> str | None:
        """The answer's ``json.dumps`` text; ``None`` once the answer or its row list was changed.

        A wrapper around the handler may add to the answer after ``row_handler`` returned it; the row result
        objects themselves are taken as returned.
        """
        if len(self) == 1 and self.get("rows") is self._rows and len(self._rows) == self._count:
            return self._text
        return None


def _batch_answer(results: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"rows": results}``, with outputs that are not JSON or do not fit the payload as row errors.

    Rows keep their outputs in order while the answer, counting every later row as its (small) error, stays
    under the payload quota; the rest are :data:`OUTPUT_TOO_LARGE` errors.

    :raises BatchOutputTooLargeError: even as errors the rows would not fit (the invocation fails).
    """
    limit = PAYLOAD_LIMIT_BYTES - _ENVELOPE_SLACK
    with contextlib.suppress(TypeError, ValueError):
        text = _STRICT_JSON.encode(results)
        if len(text) <= limit:  # the common case: one encoding of the whole batch, no row to single out
            return EncodedResult(results, text)
    sized = [_sized(result) for result in results]
    fallbacks = [_fallback(row, size) for row, size in sized]
    fallback_sizes = [len(_STRICT_JSON.encode(fallback)) + _SEPARATOR_BYTES for fallback in fallbacks]
    reserved = sum(fallback_sizes)  # what the rows not decided yet take at the least
    if reserved > limit:
        raise BatchOutputTooLargeError(
            f"The batch's {len(results)} rows do not fit in the {PAYLOAD_LIMIT_BYTES}-byte Step Functions "
            "payload, even with each output replaced by an error. To fix this, use a smaller batch_size."
        )
    used = 0
    rows: list[dict[str, Any]] = []
    for (row, size), fallback, fallback_size in zip(sized, fallbacks, fallback_sizes, strict=True):
        reserved -= fallback_size
        if used + size + _SEPARATOR_BYTES + reserved <= limit:
            rows.append(row)
            used += size + _SEPARATOR_BYTES
        else:
            rows.append(fallback)
            used += fallback_size
    return {"rows": rows}


def _fallback(row: dict[str, Any], size: int) -> dict[str, Any]:
    """A row the batch's answer has no room for: its own error, shortened, if it failed; else too large."""
    error = row.get("error")
    if isinstance(error, dict):
        message = str(error.get("message", ""))
        if len(message) > _SHORT_MESSAGE_CHARS:
            message = message[: _SHORT_MESSAGE_CHARS - 3] + "..."
        return {"index": row.get("index"), "error": {"type": error.get("type"), "message": message}}
    return _too_large(row.get("index"), size)


def _too_large(index: int | None, size: int) -> dict[str, Any]:
    return {
        "index": index,
        "error": {
            "type": OUTPUT_TOO_LARGE,
            "message": (
                f"Output of {size} bytes does not fit the batch's 256 KiB payload with the rows before it: "
                "return less, or use a smaller batch_size."
            ),
        },
    }


def _is_batch(event: Mapping[str, Any]) -> bool:
    """Whether ``event`` is an ItemBatcher batch rather than one item.

    A batch has a list of ``Items`` (a payload template may add keys beside it); a row with a column named
    ``Items`` holds text there (a CSV's values are text), so it is a row.

    :raises MalformedEventError: ``BatchInput`` comes without a list of ``Items``.
    """
    if isinstance(event.get("Items"), list):
        return True
    if "BatchInput" in event:
        raise MalformedEventError("The batch's 'Items' must be a list.")
    return False


def handle_event(func: RowFunction | _RowRunner, event: Any) -> dict[str, Any]:
    """Run ``func`` over one Distributed Map event (one item or a batch) and return the contract's answer.

    :param func: the row function, ``f(row)`` or ``f(row, config)``.
    :param event: the Lambda event (see the module docstring).
    :return: one row result for a single item, ``{"rows": [...]}`` for a batch.
    :raises MalformedEventError: the event does not follow the contract.
    :raises BatchOutputTooLargeError: a batch's answer cannot fit the payload quota even with every output
        made an error.
    """
    runner = func if isinstance(func, _RowRunner) else _RowRunner(func)
    if not isinstance(event, Mapping):
        raise MalformedEventError(f"The event must be a JSON object, got {type(event).__name__}.")
    if _is_batch(event):
        items = event["Items"]
        batch_input = event.get("BatchInput")
        if batch_input is None:
            batch_input = {}
        if not isinstance(batch_input, Mapping):
            raise MalformedEventError("The batch's 'BatchInput' must be an object.")
        config, skip = _options(batch_input, "BatchInput")
        checked = [_check_item(item, position) for position, item in enumerate(items)]
        answer = _batch_answer([runner.run(index, row, config, skip) for index, row in checked])
        rows = answer["rows"]
        log.info("Processed a batch of %d rows, %d failed", len(rows), sum(1 for r in rows if "error" in r))
        return answer
    index, row = _check_item(event, None)
    # Only the envelope carries options: a plain row's "config" or "skip" is one of its columns.
    enveloped = isinstance(event.get("row"), Mapping)
    config, skip = _options(event, "The event") if enveloped else ({}, frozenset())
    result, size = _sized(runner.run(index, row, config, skip))
    if size > PAYLOAD_LIMIT_BYTES - _ENVELOPE_SLACK:
        result = _too_large(index, size)
    return result


def row_handler(func: RowFunction) -> Handler:
    """Decorate a row function so it becomes a Lambda ``handler(event, context)``.

    The handler accepts one item or an ``ItemBatcher`` batch, keeps each row's index, and reports a
    row's exception as that row's error without failing its batch-mates::

        @row_handler
        def handler(row):
            return row["text"].upper()

    :param func: ``f(row: dict) -> JSON value``, or ``f(row, config)`` to receive ``BatchInput.config``.
    :return: a Lambda handler; see the module docstring for the event and result shapes.
    """
    runner = _RowRunner(func)  # inspects the signature once, not per invocation

    @functools.wraps(func)
    def handler(event: Any, context: Any = None) -> dict[str, Any]:
        return handle_event(runner, event)

    return handler
