"""`o2o schemas [--out docs/schemas]` writes the JSON Schemas generated from
the msgspec types: the NATS API (requests and replies), the network file,
and the `o2o solve` problem and solution files. Tests check the committed
copies equal what this writes."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import msgspec

from adapters.schemas import all_schemas
from domain.network import Network
from engine.routing.problem_file import schemas as solve_schemas


def generated() -> dict[str, dict]:
    return {"api": json.loads(msgspec.json.encode(all_schemas())), "network": msgspec.json.schema(Network),
            **solve_schemas()}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schemas", help="write the JSON Schemas of the API and the files", description=__doc__)
    p.add_argument("--out", default="docs/schemas")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in generated().items():
        (out / f"{name}.json").write_text(json.dumps(schema, indent=1) + "\n")
        print(f"wrote {out / name}.json")
    return 0
