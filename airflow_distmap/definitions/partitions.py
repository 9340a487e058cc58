"""Service-integration ARNs in the partition of the account that runs them.

AWS's China and GovCloud documentation writes them ``arn:aws-cn:states:::s3:getObject`` and
``arn:aws-us-gov:states:::lambda:invoke``: the partition is the account's. The typed builders write the
commercial ``arn:aws:`` form; :func:`in_partition` moves a definition to another partition.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from airflow_distmap.definitions.states import iter_states

_COMMERCIAL_PREFIX = "arn:aws:states:::"

#: ``arn:<partition>:states:::<service>:<api>``, in any partition (``aws``, ``aws-cn``, ``aws-us-gov``...).
_SERVICE_INTEGRATION = re.compile(r"^arn:aws(?:-[a-z]+)*:states:::(?P<api>[\w.:-]+)$")


def integration_api(resource: object) -> str | None:
    """The API a service-integration ``Resource`` calls (``s3:getObject``), whatever its partition.

    :param resource: A Task's, ItemReader's or ResultWriter's ``Resource``.
    :return: ``None`` when ``resource`` is not a service-integration ARN (a Lambda function ARN, for one).
    """
    if not isinstance(resource, str):
        return None
    match = _SERVICE_INTEGRATION.match(resource)
    return match.group("api") if match else None


def in_partition(definition: dict[str, Any], partition: str) -> dict[str, Any]:
    """``definition`` with its ``arn:aws:states:::…`` Resources naming ``partition`` (a copy, unless ``aws``).

    Task, ItemReader and ResultWriter Resources are moved, nested states included; other ARNs (a Lambda
    function's, a role's) are the user's and are left as they are.

    :param definition: A state machine definition.
    :param partition: The partition of the account that runs it, as ``AwsBaseHook.conn_partition`` gives it.
    """
    if partition == "aws":
        return definition
    moved = copy.deepcopy(definition)
    for _, state, _ in iter_states(moved):
        for holder in (state, state.get("ItemReader"), state.get("ResultWriter")):
            if not isinstance(holder, dict):
                continue
            resource = holder.get("Resource")
            if isinstance(resource, str) and resource.startswith(_COMMERCIAL_PREFIX):
                holder["Resource"] = f"arn:{partition}:states:::{resource[len(_COMMERCIAL_PREFIX) :]}"
    return moved
