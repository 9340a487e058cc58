"""ARN shapes the local endpoint issues (``docs/distributed-map-spec.md`` section 0)."""

from __future__ import annotations

import functools
import uuid

import botocore.session
from botocore.exceptions import UnknownRegionError

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"


@functools.cache
def partition_of(region: str) -> str:
    """The partition of ``region`` (``aws-cn`` for ``cn-north-1``...), from botocore's endpoint data.

    A region botocore does not know (a made-up local one) is in ``aws``.

    :param region: the region name.
    """
    resolver = botocore.session.get_session().get_component("endpoint_resolver")
    try:
        return str(resolver.get_partition_for_region(region))
    except UnknownRegionError:
        return "aws"


def state_machine_arn(name: str, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT_ID) -> str:
    """``arn:<partition>:states:<region>:<account>:stateMachine:<name>``."""
    return f"arn:{partition_of(region)}:states:{region}:{account}:stateMachine:{name}"


def execution_arn(
    state_machine: str, name: str, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT_ID
) -> str:
    """``arn:<partition>:states:<region>:<account>:execution:<stateMachine>:<name>``."""
    return f"arn:{partition_of(region)}:states:{region}:{account}:execution:{state_machine}:{name}"


def express_execution_arn(
    state_machine: str, name: str, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT_ID
) -> str:
    """A top-level EXPRESS run: ``arn:<partition>:states:<region>:<account>:express:<sm>:<name>:<uuid>``."""
    where = f"{partition_of(region)}:states:{region}:{account}"
    return f"arn:{where}:express:{state_machine}:{name}:{uuid.uuid4()}"


def map_run_arn(
    state_machine: str,
    label: str,
    run_id: str,
    region: str = DEFAULT_REGION,
    account: str = DEFAULT_ACCOUNT_ID,
) -> str:
    """``arn:<partition>:states:<region>:<account>:mapRun:<stateMachine>/<label>:<uuid>``."""
    return f"arn:{partition_of(region)}:states:{region}:{account}:mapRun:{state_machine}/{label}:{run_id}"


def child_execution_arn(
    state_machine: str, label: str, name: str, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT_ID
) -> str:
    """``arn:<partition>:states:<region>:<account>:execution:<stateMachine>/<label>:<childName>``."""
    return f"arn:{partition_of(region)}:states:{region}:{account}:execution:{state_machine}/{label}:{name}"


def generated_map_label(state_machine: str, state_name: str) -> str:
    """The label of a Distributed Map state that sets no ``Label``: a name-based UUID, one per Map state.

    AWS "automatically generates a unique label" and names it "an auto-generated string that identifies a Map
    state"; the one recorded is a version 3 (name-based) UUID. So every Map Run of the state gets the same
    label, and its children the same labelled state machine ARN. AWS's exact inputs are UNCONFIRMED.

    :param state_machine: the ARN (or name) of the state machine holding the Map state.
    :param state_name: the Map state's name.
    """
    return str(uuid.uuid3(uuid.NAMESPACE_URL, f"{state_machine}#{state_name}"))
