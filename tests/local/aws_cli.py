"""The AWS CLI from this virtualenv, pointed at a local endpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def aws_cli(url: str, home: Path, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the AWS CLI from this virtualenv against the endpoint at ``url``, with test credentials.

    :param url: the endpoint URL.
    :param home: a home folder for the CLI (it may write its cache there).
    :param arguments: the command, e.g. ``"stepfunctions", "list-state-machines"``.
    :param check: raise when the command fails.
    """
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(home),
    }
    command = [str(Path(sys.executable).parent / "aws"), "--endpoint-url", url, *arguments]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=check)
