"""The documentation stays true to the code it describes."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_page_shows_the_current_help_of_every_command():
    """docs/cli.md quotes each command's --help; a changed option must change the page."""
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "update_cli_help.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_markdown_links_point_inside_the_repository():
    """README.md and docs/ link only to files that exist in the repository."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            assert not target.startswith(("http:", "https:", "/")), (page.name, target)
            assert (page.parent / target).exists(), (page.name, target)
