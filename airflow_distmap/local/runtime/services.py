"""``Services.run_distributed_map``: from a Map state and its effective input to a finished Map Run.

The ASL engine (:mod:`airflow_distmap.local.asl`) calls :meth:`RuntimeServices.run_distributed_map` after
recording ``MapStateEntered`` and ``MapStateStarted``. This module resolves the Map's settings
(``States.Runtime`` errors go straight to the engine, before any Map Run, as AWS records), creates the
:class:`MapRun`, records ``MapRunStarted`` / ``MapRunSucceeded`` / ``MapRunFailed`` / ``MapRunRedriven`` and
returns the Map's raw result.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow_distmap.local import arns
from airflow_distmap.local.errors import StatesError
from airflow_distmap.local.runtime import engine
from airflow_distmap.local.runtime.config import (
    FieldResolver,
    check_max_items,
    render_value,
    resolve_batching,
    resolve_max_concurrency,
    resolve_max_items,
    resolve_tolerance,
)
from airflow_distmap.local.runtime.history import History
from airflow_distmap.local.runtime.map_run import FAILED, SUCCEEDED, ItemStream, MapRun, skip_items
from airflow_distmap.local.runtime.readers import (
    ITEM_READER_FAILED,
    ObjectPin,
    iter_reader_items,
    refuse_other_owner,
    refuse_other_region,
)
from airflow_distmap.local.runtime.results import parse_writer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from airflow_distmap.local.runtime.store import Store


class RuntimeServices:
    """The ``Services`` object handed to the ASL engine.

    :param store: the service's records (map runs, executions).
    :param s3_client_factory: creates S3 clients.
    :param lambdas: the Lambda invoker.
    :param region: ARN region.
    :param account_id: ARN account.
    """

    def __init__(
        self,
        store: Store,
        s3_client_factory: Callable[[], S3Client],
        lambdas: Any,
        region: str,
        account_id: str,
    ) -> None:
        self.store = store
        self.lambdas = lambdas
        self.region = region
        self.account_id = account_id
        self._s3_factory = s3_client_factory
        self._s3: S3Client | None = None
        self._s3_lock = threading.Lock()
        self._processors: dict[int, tuple[Any, Any]] = {}

    def s3(self) -> S3Client:
        """A shared S3 client (botocore clients are thread-safe)."""
        with self._s3_lock:
            if self._s3 is None:
                self._s3 = self._s3_factory()
            return self._s3

    def _processor(self, state: Mapping[str, Any]) -> tuple[Any, bool]:
        processor = state.get("ItemProcessor") or state.get("Iterator") or {}
        cached = self._processors.get(id(processor))
        if cached is None or cached[0] is not processor:
            definition = {k: v for k, v in processor.items() if k != "ProcessorConfig"}
            cached = (processor, engine.compile_state_machine(definition))
            self._processors[id(processor)] = cached
        config = processor.get("ProcessorConfig") or {}
        return cached[1], config.get("ExecutionType") == "EXPRESS"

    async def run_distributed_map(
        self,
        state_name: str,
        state: dict[str, Any],
        effective_input: Any,
        context: dict[str, Any],
        events: Any,
    ) -> Any:
        """Run a DISTRIBUTED Map state; return its raw result or raise ``StatesError``.

        :param state_name: the Map state's name.
        :param state: the Map state's definition.
        :param effective_input: its input after ``InputPath``.
        :param context: the parent execution's context object.
        :param events: the parent's event sink (``None`` inside children).
        """
        execution = context.get("Execution") or {}
        parent_arn = str(execution.get("Id", ""))
        record = self.store.executions.get(parent_arn)
        key = (state_name, 0)
        if record is not None:
            key = (state_name, record.map_entries.get(state_name, 0))
            record.map_entries[state_name] = key[1] + 1
            previous = record.map_runs_by_key.get(key) if record.redriving else None
            if previous is not None and not previous.starts_anew_on_redrive:
                return await self._redrive(previous, events, record)
        entered = engine.entered_event_id(events)

        def evaluate(expression: Any) -> Any:
            return engine.evaluate_value(expression, effective_input, context)

        resolver = FieldResolver(state_name, entered, evaluate)
        open_items, max_items, item_keys, state_items = self._item_source(
            state, effective_input, context, resolver
        )
        tolerance = resolve_tolerance(resolver, state)
        max_concurrency = resolve_max_concurrency(resolver, state)
        batching = None
        batcher = state.get("ItemBatcher")
        if isinstance(batcher, Mapping):
            limits = resolve_batching(resolver, batcher)
            batch_input = batcher.get("BatchInput")
            if batch_input is not None:
                batch_input = engine.evaluate_template(batch_input, effective_input, context)
            batching = (limits, batch_input)
        selector = state.get("ItemSelector", state.get("Parameters"))
        select = None
        if selector is not None:
            keys = item_keys
            # The common ItemSelector (the item's index and fields of the item) skips the per-item context.
            fast = None if getattr(context, "jsonata", False) else engine.compile_item_selector(selector)

            def select(first: int, items: list[Any], source: str) -> tuple[list[Any], Exception | None]:
                if fast is not None:
                    try:
                        return fast(first, items), None
                    except Exception:  # an item the fast path cannot select: the general way below says why
                        pass
                values: list[Any] = []
                for index, item in enumerate(items, first):
                    key = keys[index] if keys is not None and index < len(keys) else None
                    item_ctx = engine.item_context(context, index, item, source, key)
                    try:
                        values.append(engine.evaluate_template(selector, effective_input, item_ctx))
                    except Exception as error:  # raised once the items before it are dispatched
                        return values, error
                return values, None

        writer_spec = state.get("ResultWriter")
        writer_params = None
        if isinstance(writer_spec, Mapping):
            raw_params = writer_spec.get("Parameters", writer_spec.get("Arguments"))
            if raw_params is not None:
                # Path errors here are States.Runtime before any Map Run, like the other *Path fields.
                writer_params = engine.evaluate_template(raw_params, effective_input, context)
        processor, express = self._processor(state)
        state_machine = context.get("StateMachine") or {}
        machine_name = str(state_machine.get("Name", "")).split("/", 1)[0]
        map_run = MapRun(
            parent_arn=parent_arn,
            state_machine_name=machine_name,
            label=state.get("Label")
            or arns.generated_map_label(str(state_machine.get("Id") or machine_name), state_name),
            processor=processor,
            services=self,
            express=express,
            max_concurrency=max_concurrency,
            tolerance=tolerance,
            writer=parse_writer(None, None),
            s3_factory=self.s3,
            role_arn=str(execution.get("RoleArn", "")),
            region=self.region,
            account=self.account_id,
            processor_definition=json.dumps(state.get("ItemProcessor") or state.get("Iterator") or {}),
        )
        map_run.configure(
            open_items=open_items,
            select=select,
            batching=batching,
            max_items=max_items,
            state_item_count=state_items,
        )
        self.store.add_map_run(map_run)
        if record is not None:
            record.map_runs_by_key[key] = map_run
        if events is not None:
            events.record("MapRunStarted", {"mapRunArn": map_run.arn})
        try:
            map_run.writer = parse_writer(writer_spec, writer_params)
            check_max_items(max_items)
        except StatesError as error:
            map_run.status = FAILED
            return self._failed(map_run, events, error)
        return await self._execute(map_run, events, redrive=False)

    async def _execute(self, map_run: MapRun, events: Any, redrive: bool) -> Any:
        try:
            result = await map_run.execute(redrive=redrive)
        except StatesError as error:
            return self._failed(map_run, events, error)
        if events is not None:
            events.record("MapRunSucceeded")
        return result

    @staticmethod
    def _failed(map_run: MapRun, events: Any, error: StatesError) -> Any:
        if map_run.stop_date is None:
            map_run.stop_date = time.time()
        if events is not None:
            events.record("MapRunFailed", {"error": error.error, "cause": error.cause})
        raise error

    async def _redrive(self, map_run: MapRun, events: Any, record: Any) -> Any:
        if map_run.status == SUCCEEDED:
            return map_run.result
        sink = getattr(events, "_history", None)
        history = getattr(sink, "events", events)
        if isinstance(history, History):
            history.muted = False
        if events is not None:
            events.record(
                "MapRunRedriven", {"mapRunArn": map_run.arn, "redriveCount": map_run.redrive_count + 1}
            )
        return await self._execute(map_run, events, redrive=True)

    def _item_source(
        self, state: Mapping[str, Any], effective_input: Any, context: dict[str, Any], resolver: FieldResolver
    ) -> tuple[ItemStream, int | None, list[Any] | None, int | None]:
        """Where the Map's items come from.

        :return: ``(open items skipping n, MaxItems limit, object keys for $$.Map.Item.Key or None, how many
            items the state input holds or None for an ItemReader)``.
        """
        reader = state.get("ItemReader")
        if isinstance(reader, Mapping):
            raw = reader.get("Parameters", reader.get("Arguments")) or {}
            parameters = engine.evaluate_template(raw, effective_input, context)
            reader_config = dict(reader.get("ReaderConfig") or {})
            max_items = resolve_max_items(resolver, reader_config)
            resource = str(reader.get("Resource", ""))

            def open_s3(skip: int, pin: ObjectPin) -> Iterator[tuple[str, Iterator[Any]]]:
                bucket = parameters.get("Bucket")
                refuse_other_region(bucket, self.region, ITEM_READER_FAILED, "reading")
                refuse_other_owner(parameters, self.account_id)
                return skip_items(
                    iter_reader_items(self.s3(), resource, parameters, reader_config, pin), skip
                )

            return open_s3, max_items, None, None
        # ItemsPath (JSONPath) / Items (JSONata); ignored when an ItemReader is present (recorded).
        if "Items" in state:
            items = resolver.evaluate(state["Items"])
        else:
            items = resolver.evaluate(state.get("ItemsPath", "$"))
        keys: list[Any] | None = None
        if isinstance(items, Mapping):
            # Object input: each key-value pair is an item (the value, with $$.Map.Item.Key the key).
            keys = list(items.keys())
            items = list(items.values())
        if not isinstance(items, list):
            if "Items" in state:
                raise resolver.refused(
                    state, "Items", f"Items must be an array or an object, not {render_value(items)}."
                )
            raise resolver.error(
                f"Map state input must be an array, but the ItemsPath refers to a value of type "
                f"{type(items).__name__}."
            )
        values = items

        def open_state(skip: int, _pin: ObjectPin) -> Iterator[tuple[str, Iterator[Any]]]:
            return iter([("STATE_DATA", itertools.islice(iter(values), skip, None))])

        return open_state, None, keys, len(values)
