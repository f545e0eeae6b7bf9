"""`python -m benchmarks [NAME ...] [--quick]`: run benchmarks and print one table."""

from __future__ import annotations

import importlib
import sys

from benchmarks.common import Row, table

ALL = ["intake", "import_csv", "scaleout", "clicks", "burst", "status", "sweep", "memory", "analyze", "desk"]


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [a for a in argv if not a.startswith("-")] or ALL
    rows: list[Row] = []
    for name in names:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"benchmarks.{name}":
                raise
            rows.append(Row(name, "not available", "", None))
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows += module.run(quick=quick)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
