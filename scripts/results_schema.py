"""The JSON Schema of results.json, generated from the models in `inferswarm.report.results`.

    python scripts/results_schema.py            # print it
    python scripts/results_schema.py --write    # write docs/results.schema.json
    python scripts/results_schema.py --check    # exit 1 when docs/results.schema.json is stale

`--file PATH` reads or writes another file than docs/results.schema.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inferswarm.report.results import SCHEMA_VERSION, json_schema_text

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "docs" / "results.schema.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="write the schema to --file")
    action.add_argument("--check", action="store_true", help="exit 1 when --file differs from the models")
    parser.add_argument("--file", type=Path, default=SCHEMA_FILE, help="default: docs/results.schema.json")
    args = parser.parse_args(argv)
    text = json_schema_text()
    if args.check:
        current = args.file.read_text(encoding="utf-8") if args.file.is_file() else None
        if current != text:
            print(
                f"{args.file}: stale (not what the results models generate): "
                "run scripts/results_schema.py --write, and raise SCHEMA_VERSION if old files no longer fit",
                file=sys.stderr,
            )
            return 1
        print(f"{args.file}: up to date (results.json schema {SCHEMA_VERSION})")
        return 0
    if args.write:
        args.file.write_text(text, encoding="utf-8")
        print(f"{args.file}: written (results.json schema {SCHEMA_VERSION})")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
