"""Command line interface: ``airflow-distmap local | demo | results``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each sub-command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "local": ("airflow_distmap.cli.local", "Serve the local AWS endpoint (Step Functions, S3, Lambda)."),
    "demo": ("airflow_distmap.cli.demo", "Run the main job end to end on an embedded local endpoint."),
    "results": ("airflow_distmap.cli.results", "Summarise a finished Map Run from its manifest.json."),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(prog="airflow-distmap", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``airflow-distmap`` console script."""
    args = build_parser().parse_args(argv)
    return int(args._run(args))


if __name__ == "__main__":
    sys.exit(main())
