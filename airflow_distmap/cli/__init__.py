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


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """Build the parser, importing only the ``selected`` sub-command's module (fast start-up)."""
    parser = argparse.ArgumentParser(
        prog="airflow-distmap",
        description="Distributed Map pipelines for Airflow: a local AWS endpoint, the demo, run summaries.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``airflow-distmap`` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    selected = next((argument for argument in arguments if argument in SUBCOMMANDS), None)
    parser = build_parser(selected)
    if not arguments:  # a bare command: what it can do, rather than argparse's "arguments are required"
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(arguments)
    return int(args._run(args))


if __name__ == "__main__":
    sys.exit(main())
