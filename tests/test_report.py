"""The HTML report: self-contained, parses, embeds every figure; the command end to end."""

from __future__ import annotations

import base64
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from bayescale.cli import main
from bayescale.report import write_report
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """Collects headings, image sources, tables and any reference to an outside resource."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.headings: list[str] = []
        self.tables = 0
        self.external: list[str] = []
        self._heading = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag in ("script", "link", "iframe") or any(
                (attrs.get(a) or "").startswith(("http:", "https:", "//")) for a in ("src", "href")):
            self.external.append(tag)
        self.tables += tag == "table"
        self._heading = tag in ("h1", "h2")

    def handle_endtag(self, tag):
        self._heading = False

    def handle_data(self, data):
        if self._heading:
            self.headings.append(data)


@pytest.fixture(scope="module")
def report(small_posterior, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    realized = simulate_runs(EXAMPLE_CONSTANTS, sizes=(5e5,), batches=(1024.0,), final_step=3000, points=20, seed=5)
    path = write_report(small_posterior, out, runs=realized, flops=1e12, target_loss=1.95)
    return path


def test_report_is_self_contained_html(report):
    text = report.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    page.close()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert page.headings == ["bayescale report", "Overview", "Convergence diagnostics", "Constants", "Forecasts",
                             "Compute budget", "Calibration against realized runs"]
    assert page.external == []
    assert page.tables >= 9
    assert len(page.images) == 10
    for src in page.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix):]).startswith(PNG_MAGIC)
    for word in ("alpha_N", "B_star", "R-hat", "risk-aware", "point estimate", "coverage"):
        assert word in text


def test_report_writes_every_figure_as_png(report):
    names = {p.name for p in report.parent.iterdir()}
    assert names == {"report.html", "rank.png", "pair_all.png", "prior_predictive.png", "posterior_predictive.png",
                     "trajectories_all.png", "min_loss.png", "critical_batch.png", "frontier.png",
                     "calibration_coverage.png", "calibration_pit.png"}
    for name in names - {"report.html"}:
        assert (report.parent / name).read_bytes().startswith(PNG_MAGIC)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless chromium is not installed")
def test_report_renders_in_a_browser(report, tmp_path):
    shot = tmp_path / "page.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,3000",
                    f"--screenshot={shot}", report.as_uri()], check=True, capture_output=True, timeout=120)
    assert shot.read_bytes().startswith(PNG_MAGIC) and shot.stat().st_size > 50_000


def test_report_command(small_posterior, tmp_path, capsys):
    posterior = str(small_posterior.save(tmp_path / "p.nc"))
    out = tmp_path / "rep"
    assert main(["report", "--posterior", posterior, "--out", str(out), "--quiet", "--level", "0.8"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.html")
    assert "Compute budget" not in (out / "report.html").read_text(encoding="utf-8")
    assert main(["report", "--posterior", posterior, "--out", str(out), "--target-loss", "2"]) == 2
    assert "give --flops too" in capsys.readouterr().err
    assert main(["report", "--posterior", str(tmp_path / "none.nc"), "--out", str(out)]) == 2
    assert "no such posterior file" in capsys.readouterr().err
