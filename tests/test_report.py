"""The HTML report: the decision first, self-contained, parses, embeds every figure; the command end to end."""

from __future__ import annotations

import base64
import copy
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from bayescale.cli import main
from bayescale.hardware import Hardware
from bayescale.posterior import Posterior
from bayescale.report import DECISION_ID, GATE_BANNER_ID, write_report
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """Collects headings, image sources, tables and any reference to an outside resource."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.headings: list[str] = []
        self.summaries: list[str] = []
        self.tables = 0
        self.external: list[str] = []
        self._heading: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag in ("script", "link", "iframe") or any(
                (attrs.get(a) or "").startswith(("http:", "https:", "//")) for a in ("src", "href")):
            self.external.append(tag)
        self.tables += tag == "table"
        if tag in ("h1", "h2", "summary"):
            self._heading = self.summaries if tag == "summary" else self.headings
            self._heading.append("")

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "summary"):
            self._heading = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading[-1] += data


def _page(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


@pytest.fixture(scope="module")
def report(small_posterior, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    realized = simulate_runs(EXAMPLE_CONSTANTS, sizes=(5e5,), batches=(1024.0,), final_step=3000, points=20, seed=5)
    path = write_report(small_posterior, out, runs=realized, flops=1e12, target_loss=1.95,
                        hardware=Hardware(gpus=8, peak_flops=1e12, mfu=0.5))
    return path


def test_report_is_self_contained_html(report):
    text = report.read_text(encoding="utf-8")
    page = _page(text)
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert page.headings == ["bayescale report", "Recommendation for 1e+12 FLOPs", "Overview", "Compute budget",
                             "Forecasts", "Calibration against realized runs", "Constants"]
    assert [s.split(":")[0] for s in page.summaries] == ["Pair plots", "Diagnostics"]
    assert page.external == []
    assert page.tables >= 11
    assert len(page.images) == 10
    for src in page.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix):]).startswith(PNG_MAGIC)
    for word in ("alpha_N", "B_star", "R-hat", "risk-aware", "point estimate", "coverage",
                 "law error set a priori: kappa 0.01 per e-fold", "AR(1), posterior median rho 0.",
                 "of the predictive variance of the loss of N = 2.5e+06 at step 30000 is the law's own error"):
        assert word in text


def test_the_first_screen_leads_with_the_recommendation(report):
    """The decision comes before every section, figure and the diagnostics, and states the
    choice, its odds and band, the point-estimate alternative, the extrapolation, the hours
    on the given hardware and the gate."""
    text = report.read_text(encoding="utf-8")
    decision = text.index(f'<section id="{DECISION_ID}">')
    end = text.index("</section>", decision)
    first_screen = text[decision:end]
    assert decision < text.index("<h2>Overview</h2>") < text.index("<summary>Diagnostics: ")
    assert decision < text.index("<img")
    for words in ("Train <b>N = ", "tokens per step for <b>S = ", "at a constant learning rate",
                  "Reaches the target of 1.95 nats/token with probability", "nats/token, 90% band [",
                  "recommended (risk-aware)", "point estimate (ignores uncertainty)", "P(loss &le; 1.95)",
                  "beyond the fitted data", "size ", "steps ", "batch ", "convergence gate"):
        assert words in first_screen, words
    passed = "PASS (R-hat max " in first_screen  # whether a quick fit passes depends on the MCMC path
    assert passed != ("FAIL (R-hat max " in first_screen)
    assert (f'id="{GATE_BANNER_ID}"' in text) is not passed
    # 1e12 FLOPs (every candidate spends the budget) on 8 GPUs at 0.5 x 1e12 FLOP/s
    assert ("0.25 s on 8 GPUs at 0.5 TFLOP/s each (peak 1 TFLOP/s x MFU 0.5); 0.000556 GPU-hours</td>"
            in first_screen)


def test_a_failed_gate_puts_a_red_banner_above_everything(small_posterior, tmp_path, capsys):
    """Divergent transitions written into the draws fail the gate: the banner opens the page and
    names the failing check and its fix; the CLI passes the hardware options through."""
    idata = copy.deepcopy(small_posterior.idata)
    diverging = idata.sample_stats["diverging"]
    idata.sample_stats["diverging"] = diverging.copy(data=diverging.values | (diverging.draw.values < 3))
    failing = Posterior(idata=idata, meta=small_posterior.meta).save(tmp_path / "failing.nc")
    out = tmp_path / "rep"
    assert main(["report", "--posterior", str(failing), "--out", str(out), "--quiet", "--flops", "1e12",
                 "--gpus", "2", "--peak-flops", "2e12", "--mfu", "0.25"]) == 0
    text = (out / "report.html").read_text(encoding="utf-8")
    body = text[text.index("<body>") + len("<body>"):].lstrip()
    assert body.startswith(f'<div id="{GATE_BANNER_ID}" role="alert"><strong>Convergence gate FAILED</strong>')
    banner = body[:body.index("</div>")]
    assert "<li>6 divergent transitions: " in banner and "--target-accept" in banner  # 3 draws x 2 chains
    assert text.index(GATE_BANNER_ID) < text.index("<h1>") < text.index(f'id="{DECISION_ID}"')
    assert '<span class="fail">FAIL (R-hat max ' in text and "<summary>Diagnostics: FAIL (" in text
    assert "on 2 GPUs at 0.5 TFLOP/s each (peak 2 TFLOP/s x MFU 0.25)" in text


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
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "Compute budget" not in text and "No compute budget given" in text and "GPU-hours" not in text
    assert main(["report", "--posterior", posterior, "--out", str(out), "--target-loss", "2"]) == 2
    assert "give --flops too" in capsys.readouterr().err
    assert main(["report", "--posterior", posterior, "--out", str(out), "--gpus", "8"]) == 2
    assert "hours of the recommended run; give --flops too" in capsys.readouterr().err
    assert main(["report", "--posterior", posterior, "--out", str(out), "--flops", "1e12", "--mfu", "0"]) == 2
    assert "MFU in (0, 1]" in capsys.readouterr().err
    assert main(["report", "--posterior", str(tmp_path / "none.nc"), "--out", str(out)]) == 2
    assert "no such posterior file" in capsys.readouterr().err


def test_report_recommends_what_budget_does_under_the_same_limits(small_posterior, tmp_path, capsys):
    """The search-space options reach the report's recommendation: at most 400 steps and 2e5
    tokens, the same run `bayescale budget` chooses; without --flops they are refused."""
    import json

    posterior = str(small_posterior.save(tmp_path / "p.nc"))
    limits = ["--flops", "1e12", "--max-steps", "400", "--max-tokens", "2e5", "--quiet"]
    assert main(["budget", "--posterior", posterior, "--json", *limits]) == 0
    choice = json.loads(capsys.readouterr().out)["choices"][0]
    assert choice["steps"] <= 400 and choice["tokens"] <= 2e5
    out = tmp_path / "rep"
    assert main(["report", "--posterior", posterior, "--out", str(out), *limits]) == 0
    text = (out / "report.html").read_text(encoding="utf-8")
    assert f"tokens per step for <b>S = {choice['steps']:,.0f}</b> steps" in text
    assert f"(shape <b>{choice['shape']}</b>" in text
    capsys.readouterr()
    assert main(["report", "--posterior", posterior, "--out", str(out), "--max-steps", "400"]) == 2
    assert "search-space options limit the recommended run; give --flops too" in capsys.readouterr().err
