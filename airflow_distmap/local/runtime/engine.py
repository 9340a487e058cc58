"""The ASL engine functions the runtime uses (:mod:`airflow_distmap.local.asl`), in one place.

Imported lazily so the runtime's readers, batcher and result writer stay usable (and testable) on their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_distmap.local.asl import Diagnostic


def compile_state_machine(definition: dict[str, Any]) -> Any:
    """Compile a definition (or an ``ItemProcessor``) once; run it many times."""
    from airflow_distmap.local import asl

    return asl.compile_state_machine(definition)


def evaluate_template(template: Any, data: Any, context: dict[str, Any]) -> Any:
    """Evaluate a ``Parameters``-style template (``key.$`` paths, intrinsics, JSONata ``{% %}`` strings)."""
    from airflow_distmap.local import asl

    return asl.evaluate_template(template, data, context)


def compile_item_selector(template: Any) -> Any:
    """A fast ``(first index, items) -> values`` ItemSelector evaluator, or ``None`` (see the engine)."""
    from airflow_distmap.local.asl.templates import compile_item_selector as compile_selector

    return compile_selector(template)


def evaluate_value(expression: Any, data: Any, context: dict[str, Any]) -> Any:
    """Evaluate a reference path (``$.x``, ``$$.x``, ``$var``) or a JSONata ``{% ... %}`` string."""
    from airflow_distmap.local import asl

    if isinstance(expression, str) and expression.strip().startswith("{%"):
        return asl.evaluate_template(expression, data, context)
    return asl.evaluate_path(expression, data, context)


def item_context(context: dict[str, Any], index: int, value: Any, source: str, key: Any = None) -> Any:
    """The context object for an ItemSelector on one item (``$$.Map.Item``), keeping variables."""
    from airflow_distmap.local import asl

    return asl.item_context(context, index, value, source, key)


def entered_event_id(events: Any) -> int:
    """Id of the Map state's ``MapStateEntered`` event, from the sink the engine passed (0 when unknown).

    The engine records ``MapStateEntered`` then ``MapStateStarted`` just before calling the runtime, so the
    entered event is the one before the sink's last id.
    """
    if events is None:
        return 0
    explicit = getattr(events, "entered_event_id", None)
    if isinstance(explicit, int):
        return explicit
    history = getattr(events, "_history", None)
    last_id = getattr(history, "last_id", None)
    return last_id - 1 if isinstance(last_id, int) else 0


def validate_definition(definition_text: str, machine_type: str = "STANDARD") -> list[Diagnostic]:
    """Diagnostics for a definition text (``Diagnostic(severity, code, message, location)``)."""
    from airflow_distmap.local import asl

    return list(asl.validate_definition(definition_text, machine_type))
