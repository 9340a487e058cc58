"""``python -m bench`` runs every benchmark; ``python -m bench NAME...`` runs the named ones.

Each benchmark runs in a fresh interpreter (moto's backends are process-global) and is stopped after
``BENCH_TIMEOUT_SECONDS``. The exit status is 0 when every target was met.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import time

from bench.common import BENCH_TIMEOUT_SECONDS, load_average, machine

BENCHMARKS = ("local_vs_moto", "cpu_handler", "io_handler", "large_csv_memory", "csv_end_to_end", "collector")


def run_one(name: str) -> int:
    """Run benchmark ``name`` in this process: 0 when its targets are met, 1 when one is missed."""
    module = importlib.import_module(f"bench.{name}")
    return 0 if module.main() else 1


def main(argv: list[str]) -> int:
    if argv[:1] == ["--inline"]:
        return run_one(argv[1])
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr
        )
        return 2
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}", flush=True)
    outcome: dict[str, str] = {}
    for name in names:
        started = time.monotonic()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bench", "--inline", name], timeout=BENCH_TIMEOUT_SECONDS, check=False
            )
            outcome[name] = {0: "met", 1: "MISSED"}.get(done.returncode, f"ERROR (exit {done.returncode})")
        except subprocess.TimeoutExpired:
            outcome[name] = f"STOPPED after {BENCH_TIMEOUT_SECONDS} s"
        print(f"   ({name}: {time.monotonic() - started:.0f} s; load average {load_average()})\n", flush=True)
    print("summary: " + "; ".join(f"{name} {result}" for name, result in outcome.items()))
    return 0 if all(result == "met" for result in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
