"""An on-disk map from item index to that row's result, so the collector's memory stays flat.

Result files list child executions in no documented order (spec §3.5), while the output must follow the
input. The results are therefore parked in a temporary SQLite file and read back in index order as the
input is re-read. ItemBatcher batches are runs of consecutive item indexes, so one database row holds one
run (``start``, its outputs as a JSON list, its errors): a million rows in batches of 500 are 2,000
database rows, and the merge works run by run instead of row by row (the collector's throughput target is
200,000 rows/s). SQLite ships with Python and bounds its own page cache, which a dict or an in-memory
sort would not.

After a redrive the manifest lists every attempt's successes but only the last attempt's failures, and a
redriven child gets the same items, so a run's ``start`` is its key: a success replaces a failure stored
for the same start, a failure never replaces anything.

A run's outputs are kept as the output column's text (strings as they are, other JSON values as JSON text,
``None`` as null) in an Arrow string array, whose buffers are the database row: nothing to serialise or parse,
and the merge hands the arrays to the writer as they are. Errors are serialised with :mod:`marshal` (the
fastest codec in the standard library, and safe here because the file is written and read by this process
only).
"""

from __future__ import annotations

import array
import itertools
import json
import marshal
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import pyarrow as pa

#: SQLite page cache in KiB (a negative ``cache_size`` is KiB): the store's memory ceiling.
_CACHE_KIB: Final = 16 * 1024
_FETCH: Final = 64

RowError = tuple[str, str]
"""``(error_type, error_message)`` of one failed row."""


@dataclass(frozen=True)
class ResultRun:
    """Results of the consecutive items ``start .. start + len(values) - 1``.

    :param start: first item index.
    :param values: each item's output as text (see :func:`text_array`; null for a failed item or a JSON
        ``null``).
    :param errors: failed items, by index.
    """

    start: int
    values: pa.StringArray
    errors: dict[int, RowError]

    @property
    def stop(self) -> int:
        """One past the last item index."""
        return self.start + len(self.values)


def utf8_safe(text: str) -> str:
    """``text``, with any lone surrogate (which UTF-8 cannot hold) written as a backslash escape.

    A function may return one (JSON can escape half a surrogate pair); the output
    files are UTF-8.

    :param text: the text.
    """
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    return utf8_safe(
        value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    )


def text_array(values: Sequence[Any]) -> pa.StringArray:
    """Outputs as the output column's text: strings as they are, other JSON values as JSON, ``None`` as null.

    :param values: JSON values.
    """
    if all(type(value) is str for value in values):
        # The usual batch, built from its buffers: a little faster than pa.array, which also imports pandas
        # (half a second) the first time it is called in a process.
        try:
            encoded = [value.encode() for value in values]
        except UnicodeEncodeError:  # a lone surrogate: the general way below writes it escaped
            pass
        else:
            offsets = array.array("i", [0])
            offsets.extend(itertools.accumulate(map(len, encoded)))
            data = pa.py_buffer(b"".join(encoded))
            return pa.StringArray.from_buffers(len(encoded), pa.py_buffer(offsets), data)
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid, UnicodeEncodeError):  # numbers, objects, lists, surrogates...
        return pa.array([_as_text(value) for value in values], type=pa.string())


def contiguous_runs(indexes: Sequence[int]) -> Iterator[tuple[int, int, int]]:
    """Split ascending ``indexes`` into runs of consecutive values: ``(start, begin, end)`` positions."""
    if indexes and indexes[-1] - indexes[0] == len(indexes) - 1:  # the usual case: one whole batch
        yield indexes[0], 0, len(indexes)
        return
    begin = 0
    for position in range(1, len(indexes) + 1):
        if position == len(indexes) or indexes[position] != indexes[position - 1] + 1:
            yield indexes[begin], begin, position
            begin = position


class ResultStore:
    """Runs of row results keyed by their first item index, in a temporary SQLite file.

    :param path: the SQLite file to create (the caller removes it with its temporary directory).
    """

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        self._db.execute("PRAGMA temp_store=FILE")
        self._db.execute(
            "CREATE TABLE runs (start INTEGER PRIMARY KEY, n INTEGER NOT NULL, "
            "valid BLOB, offsets BLOB NOT NULL, texts BLOB NOT NULL, errs BLOB NOT NULL)"
        )
        self._db.execute("BEGIN")

    def add_run(
        self,
        start: int,
        values: Sequence[Any],
        errors: Sequence[tuple[int, str, str]] = (),
        *,
        succeeded: bool = True,
    ) -> None:
        """Store the results of consecutive items starting at ``start``.

        :param start: first item index.
        :param values: one output (a JSON value, ``None`` for none) per item, stored as :func:`text_array`.
        :param errors: ``(index, error_type, error_message)`` of the run's failed items.
        :param succeeded: whether the child execution succeeded (its run then replaces a failed one).
        """
        verb = "INSERT OR REPLACE" if succeeded else "INSERT OR IGNORE"
        texts = text_array(values)
        valid, offsets, data = texts.buffers()  # an array pyarrow just built: offset 0, exact sizes
        self._db.execute(
            f"{verb} INTO runs VALUES (?, ?, ?, ?, ?, ?)",  # verb is one of two literals, not user input
            (start, len(texts), valid, offsets, data or b"", marshal.dumps(list(errors))),
        )

    def iter_runs(self) -> Iterator[ResultRun]:
        """Every stored run in index order."""
        cursor = self._db.execute("SELECT start, n, valid, offsets, texts, errs FROM runs ORDER BY start")
        while True:
            chunk = cursor.fetchmany(_FETCH)
            if not chunk:
                return
            for start, count, valid, offsets, texts, errs in chunk:
                errors = {int(i): (str(t), str(m)) for i, t, m in marshal.loads(errs)}
                buffers = (None if valid is None else pa.py_buffer(valid), pa.py_buffer(offsets))
                values = pa.StringArray.from_buffers(count, buffers[1], pa.py_buffer(texts), buffers[0])
                yield ResultRun(start=int(start), values=values, errors=errors)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
