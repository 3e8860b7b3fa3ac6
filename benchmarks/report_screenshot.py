"""The report's first screen in a browser: page height, where the recommendation sits, the gate banner.

Builds ``bayescale report`` from the demo's posterior (``bayescale demo --out DIR`` runs
first, about a minute on 2 cores, unless ``--posterior`` names one) with the
README's command: every bundled run for calibration (each point under its own run's
schedule), group ``in_domain``,
1e14 FLOPs and a target of 1.0 nats. Headless Chromium renders ``report.html`` at a
1280 x 900 window into two PNGs: the first screen and the full page. A copy of the page
with a few lines of JavaScript appended (the report itself carries none) measures, after
every image has loaded, the page height, the top and bottom of the recommendation
(``#decision``) and whether the red banner of a failed convergence gate
(``#gate-failed``) is there.

Prints a table and appends it, with the date, machine and versions, to
benchmarks/RESULTS.md. Run: ``python benchmarks/report_screenshot.py [--posterior P.nc]
[--first-screen docs/report-first-screen.png] [--out DIR]``. Needs Chromium
(``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import add_append_option, publish

from bayescale.environment import conditions
from bayescale.report import DECISION_ID, GATE_BANNER_ID

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1280, 900
#: The README's report command, after ``--posterior`` and ``--out``.
REPORT_ARGS = ["--runs", str(ROOT / "bayescale/data/sweep_runs.csv"),
               "--group", "in_domain", "--flops", "1e14", "--target-loss", "1.0", "--quiet"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]
#: Appended to a copy of the page: once every image has loaded, writes the measurements
#: into a <pre id="measure"> that --dump-dom prints.
MEASURE = """<script>
window.addEventListener("load", () => {
  const box = (id) => { const e = document.getElementById(id); if (!e) return null;
                        const r = e.getBoundingClientRect(); return [r.top + scrollY, r.bottom + scrollY]; };
  const out = document.createElement("pre");
  out.id = "measure";
  out.textContent = JSON.stringify({height: document.documentElement.scrollHeight,
                                    decision: box("%s"), banner: box("%s")});
  document.body.appendChild(out);
});
</script>""" % (DECISION_ID, GATE_BANNER_ID)


def _bayescale() -> list[str]:
    """The installed ``bayescale`` script next to this interpreter, else the CLI module."""
    script = shutil.which("bayescale", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "bayescale.cli"]


def _chromium(args: list[str], profile: Path) -> str:
    """Run headless Chromium with a fresh profile folder; its stdout."""
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=180).stdout


def chromium_version() -> str:
    """``Chromium 150.0.7871.100 ...``: the first line Chromium prints for ``--version``."""
    out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=60).stdout
    return out.strip().splitlines()[0] if out.strip() else "Chromium (version unknown)"


def build_report(posterior: Path | None, work: Path) -> tuple[Path, float]:
    """``report.html`` of ``posterior`` (the demo's, fitted first, when ``None``) and the report's seconds."""
    if posterior is None:
        subprocess.run([*_bayescale(), "demo", "--out", str(work / "demo"), "--quiet"], check=True,
                       capture_output=True)
        posterior = work / "demo" / "posterior.nc"
    start = time.perf_counter()
    out = subprocess.run([*_bayescale(), "report", "--posterior", str(posterior), "--out", str(work / "report"),
                          *REPORT_ARGS], check=True, capture_output=True, text=True).stdout
    return Path(out.strip()), time.perf_counter() - start


def measure(page: Path, work: Path) -> dict:
    """Page height and the boxes of the recommendation and the banner (``None`` when absent), in px."""
    probe = work / "measure.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = _chromium(["--dump-dom", "--virtual-time-budget=10000", f"--window-size={WIDTH},{HEIGHT}",
                     probe.as_uri()], work / "profile-measure")
    found = re.search(r'<pre id="measure">(.*?)</pre>', dom, re.DOTALL)
    if found is None:
        sys.exit("report_screenshot: Chromium did not run the measuring script; no measurements")
    return json.loads(html.unescape(found.group(1)))


def screenshot(page: Path, path: Path, height: int, work: Path) -> None:
    """A ``WIDTH`` x ``height`` PNG of the top of ``page``."""
    _chromium([f"--screenshot={path}", f"--window-size={WIDTH},{height}", page.as_uri()],
              work / f"profile-{path.stem}")


def markdown(m: dict, page: Path, first: Path, full: Path, seconds: float, posterior: Path | None) -> str:
    """The RESULTS.md section: header with the conditions, and one table row."""
    decision = m["decision"] or [float("nan")] * 2
    kb = {p: p.stat().st_size / 1024 for p in (page, first, full)}
    row = (f"| {WIDTH}x{HEIGHT} | {m['height']} | {decision[0]:.0f} | {decision[1]:.0f} | "
           f"{'yes' if decision[1] <= HEIGHT else 'no'} | {'yes' if m['banner'] else 'no'} | "
           f"{kb[page]:.0f} | {kb[first]:.0f} | {kb[full]:.0f} | {seconds:.1f} |")
    source = f"the posterior {posterior.name}" if posterior else "the demo's posterior (`bayescale demo`, seed 0)"
    return (f"\n## report first screen — {dt.date.today().isoformat()}\n\n"
            f"`python benchmarks/report_screenshot.py`: {conditions()}; {chromium_version()}. "
            f"`bayescale report` on {source} with the README's options (calibration runs, group "
            "in_domain, 1e14 FLOPs, target 1.0 nats), rendered headless at the window size shown; "
            "positions in CSS px from the top of the page, after every image loaded.\n\n"
            "| window | page height (px) | recommendation top (px) | recommendation bottom (px) | "
            "recommendation in first screen | red FAILED banner | report.html (KB) | first-screen PNG (KB) | "
            "full-page PNG (KB) | report (s) |\n|---|---|---|---|---|---|---|---|---|---|\n" + row)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posterior", type=Path, help="posterior to report on (default: run `bayescale demo` first)")
    ap.add_argument("--out", type=Path, help="folder for first_screen.png and full_page.png (default: a temporary one)")
    ap.add_argument("--first-screen", type=Path, metavar="PNG", help="also copy the first screen here")
    add_append_option(ap)
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"report_screenshot: Chromium is missing ({CHROMIUM}); install it, e.g. apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="report-screenshot-") as tmp:
        work = Path(tmp)
        out = args.out or work / "shots"
        out.mkdir(parents=True, exist_ok=True)
        page, seconds = build_report(args.posterior, work)
        m = measure(page, work)
        first, full = out / "first_screen.png", out / "full_page.png"
        screenshot(page, first, HEIGHT, work)
        screenshot(page, full, m["height"], work)
        if args.first_screen:
            shutil.copyfile(first, args.first_screen)
        table = markdown(m, page, first, full, seconds, args.posterior)
    publish(table, args)


if __name__ == "__main__":
    main()
