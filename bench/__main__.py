"""``python -m bench [--quick] [--out bench/results.json]``"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _table(results: dict[str, Any]) -> str:
    lines = []
    for name, value in results.items():
        if name == "machine":
            continue
        if isinstance(value, list):
            for item in value:
                lines.append(f"{name:<26} " + ", ".join(f"{k}={v}" for k, v in item.items()))
        else:
            lines.append(f"{name:<26} " + ", ".join(f"{k}={v}" for k, v in value.items()))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, few runs (smoke)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    args = parser.parse_args()
    from bench import core_bench

    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
        }
    }
    results.update(core_bench.run(quick=args.quick))
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(_table(results))
    print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
