"""``--smoke``: every bench's tiny size, so CI runs each one end to end (tests/test_bench.py)
and none can rot unnoticed. A smoke run checks that the bench works and prints its JSON; its
figures mean nothing."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any


def add_smoke(parser: argparse.ArgumentParser, **sizes: Any) -> None:
    """Add ``--smoke``, which sets these options (``customers=200`` sets ``--customers 200``)
    and ``--json``."""
    shown = " ".join(f"--{name.replace('_', '-')} {value}" for name, value in sizes.items())
    parser.add_argument("--smoke", action="store_true", help=f"a tiny run that only checks the bench works (CI): {shown} --json")
    parser.set_defaults(smoke_sizes=sizes)


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the arguments; with ``--smoke``, the smoke sizes replace the sizes given."""
    args = parser.parse_args(argv)
    if getattr(args, "smoke", False):
        for name, value in args.smoke_sizes.items():
            setattr(args, name, value)
        args.json = True
    return args
