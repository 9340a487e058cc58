"""ARN shapes the local endpoint issues (``docs/distributed-map-spec.md`` section 0)."""

from __future__ import annotations

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"


def state_machine_arn(name: str, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT_ID) -> str:
    """``arn:aws:states:<region>:<account>:stateMachine:<name>``."""
    return f"arn:aws:states:{region}:{account}:stateMachine:{name}"


def execution_arn(
    state_machine: str, name: str, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT_ID
) -> str:
    """``arn:aws:states:<region>:<account>:execution:<stateMachine>:<name>``."""
    return f"arn:aws:states:{region}:{account}:execution:{state_machine}:{name}"


def map_run_arn(
    state_machine: str,
    label: str,
    run_id: str,
    region: str = DEFAULT_REGION,
    account: str = DEFAULT_ACCOUNT_ID,
) -> str:
    """``arn:aws:states:<region>:<account>:mapRun:<stateMachine>/<label>:<uuid>``."""
    return f"arn:aws:states:{region}:{account}:mapRun:{state_machine}/{label}:{run_id}"


def child_execution_arn(
    state_machine: str, label: str, name: str, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT_ID
) -> str:
    """``arn:aws:states:<region>:<account>:execution:<stateMachine>/<label>:<childName>``."""
    return f"arn:aws:states:{region}:{account}:execution:{state_machine}/{label}:{name}"


def resource_name(arn: str) -> str:
    """The last ``:``-separated segment of an ARN (``function:NAME[:qualifier]`` handled by callers)."""
    return arn.rsplit(":", 1)[-1]
