"""Does ``track``'s update depend on how densely a live run logs its checkpoints?

The fit's AR(1) correlation ``rho`` is that of two fitted points one fitted spacing
apart in log-steps; ``track`` reads it as a process in log-steps
(:func:`bayescale.deviation.ar1_positions`), so checkpoints closer than that spacing
count as strongly correlated. This script replays the Gemstones 1-2B runs as in
``benchmarks/track.py`` (the Kaplan ladder of total N <= 0.6B, ``--points`` log-spaced
checkpoints per curve past the first 10%, the a-priori law error) and tracks each from
its first 20% and 40% of steps by reweighting, four ways:

- its checkpoints as logged (evenly in steps, so close together in log-steps) and every
  fourth of them;
- the AR(1) in log-steps (``track`` as shipped) and per checkpoint (``rho`` between
  consecutive logged checkpoints, whatever their spacing: the reading a log-step
  process replaces).

Scored as in ``benchmarks/track.py``: the final loss's error, the share of the rest of
the run inside the 90% band, the 90% width at the end, and the effective draws of the
reweighting. A forecast that reads the curve's evidence right should barely move when
a quarter of the same checkpoints is logged.

Prints the table and appends it, dated, to benchmarks/RESULTS.md.

Run: ``python benchmarks/track_density.py [--data ../shared/data]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import contextlib  # noqa: E402
import datetime as dt  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from unittest import mock  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import markdown_table, publish  # noqa: E402
from track import GEMSTONES_FIT_MAX_TOTAL, band_scores, next_until  # noqa: E402
from track_width import gemstones_ladder, ladder_arguments  # noqa: E402

import bayescale.track  # noqa: E402,F401  (the module, for the per-checkpoint reading)
from bayescale.environment import conditions  # noqa: E402
from bayescale.residuals import fitted_spacing  # noqa: E402
from bayescale.track import track  # noqa: E402

FRACTIONS = (0.2, 0.4)
#: Every how many logged checkpoints the sparse variant keeps (and the last).
SPARSE_EVERY = 4
TRACK_MODULE = sys.modules["bayescale.track"]


def per_checkpoint(log_steps: np.ndarray, spacing: float) -> np.ndarray:
    """The reading the log-step process replaces: one AR(1) lag per checkpoint."""
    return np.arange(len(log_steps), dtype=float)


def tracked(post, partial: pd.DataFrame, final_step: float, reading: str, seed: int) -> pd.DataFrame:
    """``track`` by reweighting, with the AR(1) read in log-steps or per checkpoint."""
    patch = (mock.patch.object(TRACK_MODULE, "ar1_positions", per_checkpoint) if reading == "per checkpoint"
             else contextlib.nullcontext())
    with warnings.catch_warnings(), patch:
        warnings.simplefilter("ignore")
        return track(post, partial, final_step, method="reweight", seed=seed, points=256)


def main() -> None:
    args = ladder_arguments(__doc__)
    start = time.perf_counter()
    notes: list[str] = []
    runs, post = gemstones_ladder(args, notes, "Gemstones ladder (as in track.py, a-priori law error)")
    spacing = fitted_spacing(post)
    notes.append(f"fitted spacing {spacing:.3f} log-steps, posterior median rho {np.median(post.draws('rho')):.2f}")
    held = runs[runs["params_total"] > GEMSTONES_FIT_MAX_TOTAL]
    rows = []
    for fraction in FRACTIONS:
        for logged in ("as logged", f"every {SPARSE_EVERY}th"):
            for reading in ("log-steps", "per checkpoint"):
                scores, ess, gaps = [], [], []
                for _, run in held.groupby("run"):
                    final = float(run["step"].max())
                    partial = run[run["step"] <= fraction * final].reset_index(drop=True)
                    if logged != "as logged":
                        index = np.arange(len(partial))
                        partial = partial[(index % SPARSE_EVERY == 0) | (index == len(partial) - 1)]
                    rest = run[run["step"] > partial["step"].max()]
                    truth = float(run.loc[run["step"] == final, "loss"].iloc[0])
                    df = tracked(post, partial, final, reading, args.seed)
                    scores.append(band_scores(df, "", rest, truth, next_until(fraction, final)))
                    ess.append(df.attrs["effective_draws"])
                    gaps.append(np.median(np.diff(np.log(df.attrs["observed"]["step"].to_numpy(float)))))
                rows.append({"observed": f"{fraction:.0%}", "checkpoints": logged, "AR(1) read": reading,
                             "runs": len(scores), "log-step gap (median)": f"{np.median(gaps):.3f}",
                             "err final (median)": f"{np.median([s['err'] for s in scores]):.2%}",
                             "in 90% (rest)": f"{np.concatenate([s['in90'] for s in scores]).mean():.0%}",
                             "90% width at end (median)": f"{np.median([s['width'] for s in scores]):.2%}",
                             "ESS (median)": f"{np.median(ess):.0f}"})
    table = pd.DataFrame(rows)
    text = "\n".join([
        "\n## track: does the update depend on how densely a run logs? (Gemstones) — "
        f"{dt.date.today().isoformat()}\n",
        f"Machine: {conditions()}. `benchmarks/track_density.py`: NUTS {args.chains} chains x {args.draws} draws "
        f"({args.warmup} warmup), seed {args.seed}, {args.points} checkpoints per fitted curve past the first 10%; "
        f"the six 1-2B runs tracked by reweighting (a-priori law error), with their checkpoints as logged and every "
        f"{SPARSE_EVERY}th, the AR(1) read in log-steps (as shipped) and per checkpoint. Whole script: "
        f"{time.perf_counter() - start:.0f} s.\n",
        markdown_table(table),
        "\nNotes:\n",
        *(f"- {n}" for n in notes),
    ])
    publish(text, args)


if __name__ == "__main__":
    main()
