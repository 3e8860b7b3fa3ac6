"""The ``bayescale`` command line (contract in docs/cli.md).

Every subcommand prints help with examples, writes machine-readable output on request
(``--json`` or ``--out``) and exits 0 on success, 2 with a one-line reason on bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from bayescale import __version__
from bayescale.cores import use_cpu_cores

#: Subcommand modules under ``bayescale.commands``, in the order of ``--help``.
COMMANDS = ("demo", "simulate", "fit", "compare", "predict", "budget", "calibrate", "report", "track")

DESCRIPTION = """\
Forecast language-model training runs before they are trained, with credible bands.

Train small runs (train, sweep), fit the Kaplan/Su scaling laws with NUTS (fit),
then forecast losses, steps, tokens and critical batch sizes of larger models (predict).
Run `bayescale COMMAND --help` for the options and examples of each command.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayescale", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"bayescale {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"bayescale.commands.{name}").register(sub)
    from bayescale.trainer.cli import add_sweep_parser, add_train_parser

    add_train_parser(sub)
    add_sweep_parser(sub)
    return parser


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"bayescale: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bayescale`` script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    use_cpu_cores()  # before the first JAX computation: parallel chains
    warnings.formatwarning = _format_warning
    # ArviZ 0.2x announces its coming 1.0 refactor on import; it concerns ArviZ's own
    # API, not the user's command, so the command line does not print it.
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing a major refactor", category=FutureWarning)
    try:
        return int(args.func(args))
    except (ValueError, OSError) as err:
        # Bad input (run tables, posteriors, options) and unreadable or unwritable files.
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"bayescale: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bayescale: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
