"""Command-line options every example shares: where the server is, which model, sizes."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def options(description: str, model: str) -> argparse.Namespace:
    """--target, --model, --output DIR and --small (a quick run for tests)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--target", default=os.environ.get("MLIPSERVE_TARGET", "127.0.0.1:50051"))
    parser.add_argument("--url", default=os.environ.get("MLIPSERVE_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--model", default=model)
    parser.add_argument("--output", type=Path, default=Path("example-output"))
    parser.add_argument("--small", action="store_true", help="tiny sizes (seconds, for tests)")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    return args


def write_summary(path: Path, summary: dict, provider) -> None:
    """`summary` and the provider's provenance record as JSON; prints the path."""
    from mlipserve.simulation.provenance import provenance

    path.write_text(json.dumps({**summary, "provenance": provenance(provider)}, indent=2))
    print("wrote", path)
