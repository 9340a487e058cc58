"""Typed ResultWriter builder and :func:`ensure_result_writer` (``docs/distributed-map-spec.md`` §3)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from airflow_distmap.definitions._checks import check_choice, check_non_empty
from airflow_distmap.definitions.states import iter_distributed_maps
from airflow_distmap.results import parse_s3_uri

PUT_OBJECT = "arn:aws:states:::s3:putObject"
TRANSFORMATIONS = ("NONE", "COMPACT", "FLATTEN")
OUTPUT_TYPES = ("JSON", "JSONL")


@dataclass
class ResultWriter:
    """Export the Map Run's results (manifest.json + result files) to ``s3://<bucket>/<prefix>/<uuid>/``.

    :param bucket: The bucket (or give ``uri``).
    :param prefix: The key prefix (or give ``uri``).
    :param uri: ``s3://bucket/prefix`` instead of ``bucket`` and ``prefix``.
    :param writer_config: ``{"Transformation": NONE|COMPACT|FLATTEN, "OutputType": JSON|JSONL}``; default
        none (``NONE`` / ``JSON``: every child's input, output, status and error, which the operator reads).
    """

    template_fields: ClassVar[tuple[str, ...]] = ("bucket", "prefix", "uri")

    bucket: str | None = None
    prefix: str = ""
    uri: str | None = None
    writer_config: dict[str, Any] | None = None

    def to_asl(self, *, jsonata: bool = False) -> dict[str, Any]:
        """Render the ``ResultWriter`` field.

        :param jsonata: Whether the Map state uses JSONata (``Arguments`` instead of ``Parameters``).
        """
        if self.uri is not None:
            bucket, prefix = parse_s3_uri(self.uri, what="results_uri")
        else:
            bucket, prefix = check_non_empty(self.bucket, "bucket", "my-results-bucket"), self.prefix
        writer: dict[str, Any] = {
            "Resource": PUT_OBJECT,
            "Arguments" if jsonata else "Parameters": {"Bucket": bucket, "Prefix": prefix.rstrip("/")},
        }
        if self.writer_config is not None:
            config = dict(self.writer_config)
            unknown = sorted(set(config) - {"Transformation", "OutputType"})
            if unknown:
                raise ValueError(
                    f"writer_config has unknown keys {unknown}. To fix this, use only 'Transformation' "
                    f"({', '.join(TRANSFORMATIONS)}) and 'OutputType' ({', '.join(OUTPUT_TYPES)})."
                )
            if "Transformation" in config:
                check_choice(config["Transformation"], "writer_config Transformation", TRANSFORMATIONS)
            if "OutputType" in config:
                check_choice(config["OutputType"], "writer_config OutputType", OUTPUT_TYPES)
            writer["WriterConfig"] = config
        return writer


def ensure_result_writer(
    definition: dict[str, Any], results_uri: str, *, per_execution: bool = False, partition: str = "aws"
) -> dict[str, Any]:
    """Return a copy of ``definition`` where every Distributed Map exports its results to S3.

    A Map without ``ResultWriter`` gets one writing under ``results_uri``; a Map whose ResultWriter only has
    a ``WriterConfig`` gets the ``Resource`` and bucket/prefix added; a Map that already exports is left
    alone. Several Maps share the prefix safely: each Map Run writes under its own ``<mapRunUuid>/`` folder.

    :param definition: The state machine definition.
    :param results_uri: ``s3://bucket/prefix`` for the results.
    :param per_execution: write under ``<results_uri>/<execution name>/`` instead, the name read from the
        context object when the Map runs: the definition stays the same for every execution. A Map nested in
        another Map's ItemProcessor runs in a child execution (named by a UUID) and writes under
        ``results_uri`` itself.
    :param partition: the partition of the account that runs it, for the writer's
        ``arn:<partition>:states:::s3:putObject``.
    """
    parse_s3_uri(results_uri, what="results_uri")
    result = copy.deepcopy(definition)
    nested = {  # Distributed Maps that run in a Distributed Map's child executions
        id(inner)
        for _, outer, language in (iter_distributed_maps(result) if per_execution else ())
        for _, inner, _ in iter_distributed_maps(
            outer.get("ItemProcessor") or outer.get("Iterator") or {}, language
        )
    }
    for _, state, language in iter_distributed_maps(result):
        jsonata = language == "JSONata"
        existing = state.get("ResultWriter")
        if isinstance(existing, dict) and existing.get("Resource"):
            continue
        writer = ResultWriter(uri=results_uri).to_asl(jsonata=jsonata)
        writer["Resource"] = f"arn:{partition}:states:::s3:putObject"
        if per_execution and id(state) not in nested:
            parameters = writer["Arguments" if jsonata else "Parameters"]
            prefix = parameters.pop("Prefix")
            if jsonata:
                parameters["Prefix"] = _jsonata_execution_prefix(prefix)
            else:
                parameters["Prefix.$"] = _jsonpath_execution_prefix(prefix)
        if isinstance(existing, dict) and "WriterConfig" in existing:
            writer["WriterConfig"] = existing["WriterConfig"]
        state["ResultWriter"] = writer
    return result


def _jsonpath_execution_prefix(prefix: str) -> str:
    """``<prefix>/<execution name>`` as an intrinsic function, its quotes, braces and backslashes escaped."""
    if not prefix:
        return "$$.Execution.Name"
    literal = "".join(f"\\{char}" if char in "'{}\\" else char for char in prefix)
    return f"States.Format('{literal}/{{}}', $$.Execution.Name)"


def _jsonata_execution_prefix(prefix: str) -> str:
    """``<prefix>/<execution name>`` as a JSONata expression."""
    if not prefix:
        return "{% $states.context.Execution.Name %}"
    return "{% " + json.dumps(prefix + "/") + " & $states.context.Execution.Name %}"
