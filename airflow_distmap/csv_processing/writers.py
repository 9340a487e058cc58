"""Write string tables to CSV or Parquet in record batches, with pyarrow (no hand-written format code)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq


class TableWriter:
    """Append record batches of a fixed schema to a local ``.csv`` or ``.parquet`` file.

    :param path: the local file to write.
    :param schema: the columns and their types.
    :param file_format: ``csv`` or ``parquet``.
    :param delimiter: the CSV delimiter character (ignored for Parquet).
    """

    def __init__(self, path: str | Path, schema: pa.Schema, file_format: str, delimiter: str = ",") -> None:
        self.path = Path(path)
        self.schema = schema
        self.rows = 0
        self._writer: Any
        if file_format == "csv":
            options = pa_csv.WriteOptions(include_header=True, delimiter=delimiter)
            self._writer = pa_csv.CSVWriter(str(self.path), schema, write_options=options)
        elif file_format == "parquet":
            self._writer = pq.ParquetWriter(str(self.path), schema, compression="zstd")
        else:
            raise ValueError(f"Unsupported output format {file_format!r}: use 'csv' or 'parquet'.")

    def write_arrays(self, arrays: Sequence[pa.Array | pa.ChunkedArray]) -> None:
        """Append rows given as Arrow arrays in schema order (names come from the schema).

        :param arrays: one array per schema field, all the same length; chunked arrays may be chunked
            differently from one another.
        """
        if not arrays or not len(arrays[0]):
            return
        table = pa.Table.from_arrays(list(arrays), schema=self.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        """Finish the file (writes the Parquet footer)."""
        self._writer.close()

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def string_schema(names: Sequence[str], leading: Sequence[tuple[str, pa.DataType]] = ()) -> pa.Schema:
    """A schema of ``leading`` typed fields followed by nullable string fields ``names``."""
    fields = [pa.field(name, dtype) for name, dtype in leading]
    fields += [pa.field(name, pa.string()) for name in names]
    return pa.schema(fields)
