"""Typed ItemReader builders: where a Distributed Map reads its items from (spec §1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from airflow_distmap.definitions._checks import MAX_ITEMS, check_choice, check_int, check_non_empty
from airflow_distmap.formats.csv_records import CSV_DELIMITERS
from airflow_distmap.results import parse_s3_uri

GET_OBJECT = "arn:aws:states:::s3:getObject"
LIST_OBJECTS_V2 = "arn:aws:states:::s3:listObjectsV2"
HEADER_LOCATIONS = ("FIRST_ROW", "GIVEN")
#: What ``S3PrefixItemReader(input_type=...)`` reads each listed object as.
OBJECT_INPUT_TYPES = ("CSV", "JSON", "JSONL", "PARQUET")


class ItemReader(Protocol):
    """Anything that renders an ASL ``ItemReader`` object.

    The S3 readers' locations (``bucket``, ``key``/``prefix``, ``uri``) are Airflow template fields: an
    operator that templates its ``item_reader`` renders them, e.g. ``uri="s3://b/{{ ds }}/rows.csv"``.
    """

    def to_asl(self) -> dict[str, Any]:
        """Render the ``ItemReader`` field."""
        ...


def _bucket_and_key(bucket: str | None, key: str | None, uri: str | None, what: str) -> tuple[str, str]:
    if uri is not None:
        return parse_s3_uri(uri, what=what)
    return (
        check_non_empty(bucket, "bucket", "my-bucket"),
        check_non_empty(key, "key", "path/to/data"),
    )


def _reader_config(config: dict[str, Any], max_items: int | None) -> dict[str, Any]:
    if max_items is not None:
        config["MaxItems"] = check_int(max_items, "max_items", 0, MAX_ITEMS, hint=" (0 reads every item)")
    return config


def _object_reader(bucket: str, key: str, config: dict[str, Any]) -> dict[str, Any]:
    if not key or key.endswith("/"):
        raise ValueError(
            f"s3://{bucket}/{key} names a folder, not an object. To fix this, point at one object "
            "(s3://bucket/path/data.csv) or use S3PrefixItemReader for every object under a prefix."
        )
    return {"Resource": GET_OBJECT, "ReaderConfig": config, "Parameters": {"Bucket": bucket, "Key": key}}


@dataclass
class CsvItemReader:
    """Read the rows of a CSV (or other delimited) object; each row becomes ``{header: "string value"}``.

    :param bucket: The bucket (or give ``uri``).
    :param key: The object key (or give ``uri``).
    :param uri: ``s3://bucket/key.csv`` instead of ``bucket`` and ``key``.
    :param header_location: ``FIRST_ROW`` (the first row is the header) or ``GIVEN`` (pass ``headers``).
    :param headers: Column names when ``header_location`` is ``GIVEN``.
    :param delimiter: ``COMMA``, ``PIPE``, ``SEMICOLON``, ``SPACE`` or ``TAB``.
    :param max_items: Read at most this many rows (0 or ``None``: all).
    """

    template_fields: ClassVar[tuple[str, ...]] = ("bucket", "key", "uri")

    bucket: str | None = None
    key: str | None = None
    uri: str | None = None
    header_location: str = "FIRST_ROW"
    headers: list[str] | None = None
    delimiter: str = "COMMA"
    max_items: int | None = None

    def to_asl(self) -> dict[str, Any]:
        """Render the ``ItemReader`` field."""
        bucket, key = _bucket_and_key(self.bucket, self.key, self.uri, "CSV input URI")
        config = _csv_config(self.header_location, self.headers, self.delimiter)
        return _object_reader(bucket, key, _reader_config(config, self.max_items))


def _csv_config(header_location: str, headers: list[str] | None, delimiter: str) -> dict[str, Any]:
    """The ``ReaderConfig`` of CSV objects, its arguments checked."""
    location = check_choice(header_location, "header_location", HEADER_LOCATIONS)
    delimiter = check_choice(delimiter, "delimiter", tuple(CSV_DELIMITERS))
    config: dict[str, Any] = {"InputType": "CSV", "CSVHeaderLocation": location}
    if location == "GIVEN":
        if not headers or not all(isinstance(h, str) for h in headers):
            raise ValueError(
                "header_location='GIVEN' needs headers. To fix this, pass headers=['col1', 'col2', ...] "
                "or use header_location='FIRST_ROW' when the file's first row is its header."
            )
        duplicates = sorted({h for h in headers if headers.count(h) > 1})
        if duplicates:
            raise ValueError(
                f"headers contain duplicates {duplicates}; Step Functions fails such a run with "
                "States.ItemReaderFailed. To fix this, give every column a unique name."
            )
        config["CSVHeaders"] = list(headers)
    elif headers:
        raise ValueError(
            "headers were given with header_location='FIRST_ROW', where the file's first row is the "
            "header. To fix this, drop headers or set header_location='GIVEN'."
        )
    if delimiter != "COMMA":
        config["CSVDelimiter"] = delimiter
    return config


@dataclass
class JsonItemReader:
    """Read the elements of a JSON array stored in an S3 object.

    :param bucket: The bucket (or give ``uri``).
    :param key: The object key (or give ``uri``).
    :param uri: ``s3://bucket/key.json`` instead of ``bucket`` and ``key``.
    :param items_pointer: JSON Pointer (``/a/b``) to a nested array, when the array is not the top level.
    :param max_items: Read at most this many items (0 or ``None``: all).
    """

    template_fields: ClassVar[tuple[str, ...]] = ("bucket", "key", "uri")

    bucket: str | None = None
    key: str | None = None
    uri: str | None = None
    items_pointer: str | None = None
    max_items: int | None = None

    def to_asl(self) -> dict[str, Any]:
        """Render the ``ItemReader`` field."""
        bucket, key = _bucket_and_key(self.bucket, self.key, self.uri, "JSON input URI")
        config: dict[str, Any] = {"InputType": "JSON"}
        if self.items_pointer is not None:
            if not isinstance(self.items_pointer, str) or not self.items_pointer.startswith("/"):
                raise ValueError(
                    f"items_pointer={self.items_pointer!r} is not a JSON Pointer. To fix this, pass a path "
                    "starting with '/', such as '/data/items'."
                )
            config["ItemsPointer"] = self.items_pointer
        return _object_reader(bucket, key, _reader_config(config, self.max_items))


@dataclass
class _WholeObjectReader:
    """An object read with ``InputType`` alone; subclasses set :attr:`input_type` and :attr:`what`."""

    template_fields: ClassVar[tuple[str, ...]] = ("bucket", "key", "uri")
    input_type: ClassVar[str]
    what: ClassVar[str]

    bucket: str | None = None
    key: str | None = None
    uri: str | None = None
    max_items: int | None = None

    def to_asl(self) -> dict[str, Any]:
        """Render the ``ItemReader`` field."""
        bucket, key = _bucket_and_key(self.bucket, self.key, self.uri, f"{self.what} input URI")
        return _object_reader(bucket, key, _reader_config({"InputType": self.input_type}, self.max_items))


@dataclass
class JsonlItemReader(_WholeObjectReader):
    """Read one item per line of a JSON Lines object.

    :param bucket: The bucket (or give ``uri``).
    :param key: The object key (or give ``uri``).
    :param uri: ``s3://bucket/key.jsonl`` instead of ``bucket`` and ``key``.
    :param max_items: Read at most this many lines (0 or ``None``: all).
    """

    input_type: ClassVar[str] = "JSONL"
    what: ClassVar[str] = "JSONL"


@dataclass
class ParquetItemReader(_WholeObjectReader):
    """Read the rows of a Parquet object; each row becomes ``{column: value}``.

    Parquet compresses its pages itself (GZIP, ZSTD, Snappy): no file extension is needed. Step Functions
    reads no ``VersionId`` for Parquet. How it types values (dates, decimals, binary) is not documented; the
    local endpoint writes dates and times as ISO 8601 text and binary as base64.

    :param bucket: The bucket (or give ``uri``).
    :param key: The object key (or give ``uri``).
    :param uri: ``s3://bucket/key.parquet`` instead of ``bucket`` and ``key``.
    :param max_items: Read at most this many rows (0 or ``None``: all).
    """

    input_type: ClassVar[str] = "PARQUET"
    what: ClassVar[str] = "Parquet"


@dataclass
class S3PrefixItemReader:
    """The objects under a prefix: one item per object, or with ``input_type`` one per record in them.

    Without ``input_type`` an item is the object's summary ``{"Etag", "Key", "LastModified", "Size",
    "StorageClass"}``. With it (``Transformation: LOAD_AND_FLATTEN``), every object is read as that type and
    its records are the items: say the part files a Spark or Athena job wrote. Objects without bytes (Spark's
    ``_SUCCESS``, folder markers) hold no records and are passed over.

    The prefix is a plain string prefix (``data`` also matches ``data2/...``), so end it with ``/``.

    :param bucket: The bucket (or give ``uri``).
    :param prefix: The key prefix; empty lists the whole bucket.
    :param uri: ``s3://bucket/prefix/`` instead of ``bucket`` and ``prefix``.
    :param input_type: ``CSV``, ``JSON``, ``JSONL`` or ``PARQUET`` to read the objects' records; ``None``
        (the default) for the objects' summaries.
    :param header_location: With ``input_type="CSV"``: ``FIRST_ROW`` (each object's first row is its header)
        or ``GIVEN`` (pass ``headers``; Spark and Athena write CSV without a header row).
    :param headers: Column names when ``header_location`` is ``GIVEN``.
    :param delimiter: With ``input_type="CSV"``: ``COMMA``, ``PIPE``, ``SEMICOLON``, ``SPACE`` or ``TAB``.
    :param max_items: Read at most this many items (0 or ``None``: all).
    :param extra_parameters: More ``s3:listObjectsV2`` Parameters (``ExpectedBucketOwner``...), merged after
        ``Bucket`` and ``Prefix``.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("bucket", "prefix", "uri")

    bucket: str | None = None
    prefix: str = ""
    uri: str | None = None
    input_type: str | None = None
    header_location: str = "FIRST_ROW"
    headers: list[str] | None = None
    delimiter: str = "COMMA"
    max_items: int | None = None
    extra_parameters: dict[str, Any] = field(default_factory=dict)

    def to_asl(self) -> dict[str, Any]:
        """Render the ``ItemReader`` field."""
        if self.uri is not None:
            bucket, prefix = parse_s3_uri(self.uri, what="prefix URI")
        else:
            bucket, prefix = check_non_empty(self.bucket, "bucket", "my-bucket"), self.prefix
        reader: dict[str, Any] = {
            "Resource": LIST_OBJECTS_V2,
            "Parameters": {"Bucket": bucket, "Prefix": prefix, **self.extra_parameters},
        }
        config: dict[str, Any] = {}
        if self.input_type is not None:
            input_type = check_choice(self.input_type, "input_type", OBJECT_INPUT_TYPES)
            config = {"InputType": input_type}
            if input_type == "CSV":
                config = _csv_config(self.header_location, self.headers, self.delimiter)
            config["Transformation"] = "LOAD_AND_FLATTEN"
        if config.get("InputType") != "CSV" and (
            self.delimiter != "COMMA" or self.headers or self.header_location != "FIRST_ROW"
        ):
            raise ValueError(
                "delimiter, header_location and headers apply to CSV objects only. To fix this, pass "
                "input_type='CSV' or drop them."
            )
        if config or self.max_items is not None:
            reader["ReaderConfig"] = _reader_config(config, self.max_items)
        return reader
