"""Moving a built Distributed Map's S3 locations into the execution input, so every run shares one definition.

A scheduled DAG templates its keys (``s3://bucket/{{ ds }}/rows.csv``). Written into the definition, each
run's key would make a definition, and so a state machine, of its own, never deleted; runs sharing a
``state_machine_name`` would update it in turn. Read from the execution input (``$$.Execution.Input``), the
key changes what one execution reads, not what is deployed: the pattern AWS documents for ItemReader and
ResultWriter ``Parameters`` paths.
"""

from __future__ import annotations

import copy
from typing import Any

from airflow_distmap.definitions.states import is_distributed_map

#: Key of the execution input that carries the locations :func:`lift_locations` moved there.
LOCATIONS_KEY = "airflow_distmap"

#: The fields moved, per block of the Map state: where items are read and where results are written.
_LOCATION_FIELDS = {"ItemReader": ("Bucket", "Key", "Prefix"), "ResultWriter": ("Bucket", "Prefix")}


def lift_locations(definition: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return a copy of ``definition`` whose starting Map reads its literal S3 locations from the input.

    The literal ``Bucket``, ``Key`` and ``Prefix`` of the ItemReader and ResultWriter of the Distributed Map
    at ``StartAt`` become references to ``$$.Execution.Input.airflow_distmap.<block>.<field>`` (JSONata:
    ``$states.context.Execution.Input...``); the second value returned is what the execution input must
    hold for them, ``{}`` when nothing was moved. Fields already given as paths or expressions stay. A Map
    without an ItemReader is left as it is: it iterates its input, where another key would be another item.

    :param definition: A definition built from the building blocks: one Distributed Map at ``StartAt``.
    """
    lifted_definition = copy.deepcopy(definition)
    state = (lifted_definition.get("States") or {}).get(lifted_definition.get("StartAt"))
    if not isinstance(state, dict) or not is_distributed_map(state) or "ItemReader" not in state:
        return lifted_definition, {}
    jsonata = state.get("QueryLanguage", definition.get("QueryLanguage")) == "JSONata"
    values: dict[str, dict[str, str]] = {}
    for block, names in _LOCATION_FIELDS.items():
        fields = (state.get(block) or {}).get("Arguments" if jsonata else "Parameters")
        if not isinstance(fields, dict):
            continue
        for name in names:
            value = fields.get(name)
            if not isinstance(value, str) or (jsonata and value.strip().startswith("{%")):
                continue
            values.setdefault(block, {})[name] = value
            path = f"Execution.Input.{LOCATIONS_KEY}.{block}.{name}"
            if jsonata:
                fields[name] = "{% $states.context." + path + " %}"
            else:
                del fields[name]
                fields[f"{name}.$"] = "$$." + path
    return lifted_definition, ({LOCATIONS_KEY: values} if values else {})
