"""Refresh the option lists in docs/cli.md from the installed command's own ``--help``.

Run from the repository root after changing a command's options::

    python docs/update_cli_help.py

Every block between ``<!-- help: NAME -->`` and ``<!-- end help -->`` is replaced by
the output of ``bayescale NAME --help`` (``main``: ``bayescale --help``) at 80 columns,
without the examples that follow the options. Nothing else in the file changes.
``--check`` changes nothing and exits 1 when a block is out of date (the test suite
runs it, so the page cannot drift from the commands).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

CLI_MD = Path(__file__).with_name("cli.md")
BLOCK = re.compile(r"<!-- help: (\w+) -->\n.*?<!-- end help -->", re.DOTALL)


def command() -> list[str]:
    """The ``bayescale`` script next to this Python, else the one on PATH."""
    local = Path(sys.executable).with_name("bayescale")
    if local.exists():
        return [str(local)]
    found = shutil.which("bayescale")
    if found is None:
        sys.exit("update_cli_help: no `bayescale` command found; install the package first (pip install -e .)")
    return [found]


def help_text(name: str) -> str:
    args = [*command(), *([] if name == "main" else [name]), "--help"]
    out = subprocess.run(args, capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "80"})
    lines = out.stdout.rstrip("\n").split("\n")
    if name != "main" and "examples:" in lines:
        lines = lines[: lines.index("examples:")]
    return "\n".join(lines).rstrip("\n")


def main() -> int:
    text = CLI_MD.read_text()
    new = BLOCK.sub(lambda m: f"<!-- help: {m[1]} -->\n```text\n{help_text(m[1])}\n```\n<!-- end help -->", text)
    if "--check" in sys.argv[1:]:
        if new != text:
            print(f"{CLI_MD}: help blocks are out of date; run `python docs/update_cli_help.py`")
            return 1
        return 0
    CLI_MD.write_text(new)
    print(f"{CLI_MD}: {len(BLOCK.findall(text))} help blocks refreshed" + ("" if new != text else " (no change)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
