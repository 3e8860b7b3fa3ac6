"""``python -m bayescale.trainer train|sweep ...``: the trainer's commands on their own.

The same subcommands as ``bayescale train`` and ``bayescale sweep``, for launchers
that need a module (``torchrun -m bayescale.trainer train ...``). Bad input prints
``bayescale: error: <message>`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .cli import add_sweep_parser, add_train_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; return its exit code."""
    parser = argparse.ArgumentParser(prog="python -m bayescale.trainer", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_train_parser(subparsers)
    add_sweep_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"bayescale: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
