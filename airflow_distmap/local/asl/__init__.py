"""The ASL engine of the local runtime.

Paths, intrinsic functions, payload templates, the state interpreter and definition validation. Pure
computation; I/O only through the :class:`Services` it is given.

Implemented: Pass, Task, Choice, Wait, Succeed, Fail, Map (INLINE here; DISTRIBUTED through
``Services.run_distributed_map``) and Parallel states; InputPath/Parameters/ResultSelector/ResultPath/
OutputPath; Retry (every retrier field, FULL jitter) and Catch; TimeoutSeconds(Path); ``Assign`` variables;
QueryLanguage JSONata (via jsonata-python); the intrinsics listed in
:data:`airflow_distmap.local.asl.intrinsics.SUPPORTED_INTRINSICS`; Task resources
``arn:aws:states:::lambda:invoke`` and Lambda function ARNs.

Rejected by :func:`validate_definition` as not implemented (``UNSUPPORTED_FEATURE``, naming the feature):
other Task resources and ``.sync``/``.waitForTaskToken``, HeartbeatSeconds, Credentials, TimeoutSeconds of an
ItemProcessor or branch (the execution's own is honoured), ItemReader MANIFEST/ManifestType, ``Assign`` in
JSONPath catchers and Choice rules, JSONata TimeoutSeconds and INLINE MaxConcurrency expressions.
"""

from __future__ import annotations

from airflow_distmap.local.asl.machine import CompiledStateMachine, compile_state_machine
from airflow_distmap.local.asl.paths import ContextDict, evaluate_path, to_json, variables_of
from airflow_distmap.local.asl.protocols import EventSink, Services
from airflow_distmap.local.asl.templates import CompiledTemplate, evaluate_template
from airflow_distmap.local.asl.validation import Diagnostic, validate_definition

__all__ = [
    "CompiledStateMachine",
    "CompiledTemplate",
    "ContextDict",
    "Diagnostic",
    "EventSink",
    "Services",
    "compile_state_machine",
    "evaluate_path",
    "evaluate_template",
    "item_context",
    "to_json",
    "validate_definition",
    "variables_of",
]


def item_context(
    context: dict[str, object] | ContextDict,
    index: int,
    value: object,
    source: str | None = None,
    key: object = None,
) -> ContextDict:
    """The context object for evaluating an ItemSelector on one item (``$$.Map.Item``), keeping the variables.

    :param context: the Map state's context object (as given to ``run_distributed_map``).
    :param index: the item's index.
    :param value: the item.
    :param source: ``$$.Map.Item.Source`` (Distributed Map only), e.g. ``STATE_DATA`` or ``S3://bucket/key``.
    :param key: the key, for items that are an object's key-value pairs.
    """
    item: dict[str, object] = {"Index": index, "Value": value}
    if key is not None:
        item["Key"] = key
    if source is not None:
        item["Source"] = source
    jsonata = bool(getattr(context, "jsonata", False))  # a JSONata Map's ItemSelector holds {% %} expressions
    return ContextDict({**context, "Map": {"Item": item}}, variables_of(context), jsonata)
