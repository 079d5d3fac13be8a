"""`python -m benchmarks [name…]`: run every benchmarks/bench_*.py and print one table."""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

from benchmarks.setup import django_ready


def print_table(section: str, rows: list[tuple[str, str, str]]) -> None:
    width = max([len(r[0]) for r in rows] + [10])
    fig = max([len(r[1]) for r in rows] + [10])
    print(f"\n== {section} ==")
    print(f"{'what'.ljust(width)}  {'measured'.ljust(fig)}  budget")
    for what, measured, budget in rows:
        print(f"{what.ljust(width)}  {measured.ljust(fig)}  {budget}")


def main(argv: list[str]) -> int:
    django_ready()
    here = Path(__file__).resolve().parent
    names = argv or sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))
    failed = 0
    for name in names:
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            print_table(name, module.run())
        except Exception:
            failed += 1
            print(f"\n== {name} == FAILED")
            traceback.print_exc()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
