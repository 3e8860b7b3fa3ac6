"""``bayescale simulate``: a run table drawn from chosen true constants, to check a planned sweep."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from bayescale.commands.common import FORMATTER, check_output, nonnegative_float, note, positive_float
from bayescale.models.registry import get_law, names

EPILOG = """\
examples:
  # a planned Kaplan sweep: 3 sizes x 2 batches, curves to step 4000 with 30 points each
  bayescale simulate --model kaplan --sizes 1e5,3e5,1e6 --batch-tokens 1024,4096 \\
      --steps 4000 --points 30 --seeds 1 --noise 0.003 --run-sd 0.002 --seed 0 --out sim.csv

  # then fit it and compare the constants with sim.csv.truth.json
  bayescale fit --runs sim.csv --out sim.nc

  # other true constants (the rest keep their defaults)
  bayescale simulate --sizes 1e5,1e6 --batch-tokens 2048 --constants N_c=2e6,alpha_N=0.25 --out sim.csv

  # Chinchilla final losses: one run per size and tokens-per-parameter ratio
  bayescale simulate --model chinchilla --sizes 1e7,3e7,1e8 --tokens-per-param 5,20,80 --out final.csv

Kaplan curves follow the law with multiplicative noise on the loss: a per-run offset
Normal(0, run-sd) and AR(1) residuals with lag-1 correlation rho and standard
deviation noise (all on log loss). Chinchilla losses get Normal(0, noise) on log loss.
Default constants: kaplan, kaplan_irreducible bayescale.synthetic.EXAMPLE_CONSTANTS
(L_inf 0); chinchilla the re-estimate of Besiroglu et al. (2024). The true constants,
noise and design are written next to the table as OUT.truth.json.
"""

#: Table formats the command writes, by suffix (those :func:`bayescale.runs.read_table` reads).
SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet", ".pq")
#: Options that only the curve simulator (Kaplan) reads, with their defaults.
CURVE_DEFAULTS = {"steps": 3000, "points": 40, "seeds": 1, "run_sd": 0.002, "rho": 0.5}


def number_list(text: str) -> list[float]:
    """``1e5,3e5,2**20`` -> ``[1e5, 3e5, 1048576.0]``, every value positive."""
    values = [positive_float(t.strip()) for t in text.split(",") if t.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}")
    return values


def constant_values(text: str) -> dict[str, float]:
    """``N_c=2e6,alpha_N=0.25`` -> ``{"N_c": 2e6, "alpha_N": 0.25}``."""
    out = {}
    for pair in (p for p in text.split(",") if p.strip()):
        name, sep, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not math.isfinite(number):
            raise argparse.ArgumentTypeError(f"expected NAME=NUMBER pairs such as N_c=1e6,alpha_N=0.2, got {text!r}")
        out[name.strip()] = number
    return out


def register(subparsers) -> None:
    p = subparsers.add_parser("simulate", help="write a run table drawn from chosen true constants (plan a sweep)",
                              description=__doc__, epilog=EPILOG, formatter_class=FORMATTER)
    p.add_argument("--model", choices=names(), default="kaplan", help="law form (default: kaplan)")
    p.add_argument("--sizes", required=True, type=number_list, metavar="N1,N2,...",
                   help="non-embedding parameter counts, one or more runs each")
    p.add_argument("--batch-tokens", type=number_list, metavar="B1,B2,...",
                   help="tokens per optimizer step: kaplan one run per size and batch (required); "
                        "chinchilla one batch for every run (default: 2**19)")
    p.add_argument("--tokens-per-param", type=number_list, metavar="R1,R2,...",
                   help="chinchilla: training tokens per parameter, one run per size and ratio (required)")
    p.add_argument("--steps", type=int, metavar="S",
                   help=f"kaplan: final step of every curve (default: {CURVE_DEFAULTS['steps']})")
    p.add_argument("--points", type=int, metavar="K",
                   help=f"kaplan: about K log-spaced evaluation points per curve (default: {CURVE_DEFAULTS['points']})")
    p.add_argument("--seeds", type=int, metavar="K",
                   help=f"kaplan: runs per size and batch (default: {CURVE_DEFAULTS['seeds']})")
    p.add_argument("--noise", type=nonnegative_float, default=0.003,
                   help="standard deviation of the log-loss noise of every point (default: 0.003)")
    p.add_argument("--run-sd", type=nonnegative_float,
                   help=f"kaplan: standard deviation of each run's log-loss offset (default: {CURVE_DEFAULTS['run_sd']})")
    p.add_argument("--rho", type=float,
                   help=f"kaplan: lag-1 correlation of the residuals along a curve (default: {CURVE_DEFAULTS['rho']})")
    p.add_argument("--constants", type=constant_values, default={}, metavar="NAME=VALUE,...",
                   help="true constants as the papers print them (kaplan: N_c, alpha_N, S_c, alpha_S, B_star, "
                        "alpha_B, and L_inf for kaplan_irreducible; chinchilla: E, A, B, alpha, beta); the rest "
                        "keep the defaults")
    p.add_argument("--split", help="give every row this split (kaplan) or group (chinchilla)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", required=True, type=Path, metavar="FILE",
                   help="the run table to write (.csv, .tsv, .jsonl or .parquet); the truth goes to FILE.truth.json")
    p.set_defaults(func=run)


def truth_path(out: Path) -> Path:
    """Where the true constants of the table ``out`` are written."""
    return out.with_name(out.name + ".truth.json")


def write_table(table, path: Path) -> None:
    """Write ``table`` in the format of ``path``'s suffix (one of :data:`SUFFIXES`)."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        table.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    elif suffix in (".jsonl", ".ndjson"):
        table.to_json(path, orient="records", lines=True)
    else:
        table.to_parquet(path, index=False)


def run(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() not in SUFFIXES:
        raise ValueError(f"--out {args.out}: unknown table format '{args.out.suffix}'; use .csv, .tsv, .jsonl or .parquet")
    check_output(args.out, example="sim.csv")
    law = get_law(args.model)
    unknown = sorted(set(args.constants) - set(law.gated()))
    if unknown:
        raise ValueError(f"--constants: {', '.join(unknown)} is not a constant of {args.model}; "
                         f"its constants are {', '.join(law.gated())}")
    chinchilla = args.model == "chinchilla"
    curve_options = {k: getattr(args, k) for k in CURVE_DEFAULTS}
    if chinchilla:
        given = [f"--{k.replace('_', '-')}" for k, v in curve_options.items() if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: curve options of kaplan; chinchilla simulates final losses "
                             "(use --tokens-per-param)")
        if not args.tokens_per_param:
            raise ValueError("--model chinchilla needs --tokens-per-param, e.g. --tokens-per-param 5,20,80")
        if args.batch_tokens and len(args.batch_tokens) > 1:
            raise ValueError("--model chinchilla takes one --batch-tokens value (every run uses it)")
    else:
        if args.tokens_per_param:
            raise ValueError("--tokens-per-param applies to --model chinchilla; kaplan curves use --steps")
        if not args.batch_tokens:
            raise ValueError(f"--model {args.model} needs --batch-tokens, e.g. --batch-tokens 1024,4096")
        curve_options = {k: CURVE_DEFAULTS[k] if v is None else v for k, v in curve_options.items()}
        for name in ("steps", "points", "seeds"):
            if curve_options[name] < 1:
                raise ValueError(f"--{name} must be at least 1, got {curve_options[name]}")
        if not -1.0 < curve_options["rho"] < 1.0:
            raise ValueError(f"--rho must be in (-1, 1), got {curve_options['rho']}")

    import numpy as np

    from bayescale.runs import validate_runs

    if chinchilla:
        from bayescale.models.chinchilla import EPOCH_2024, ChinchillaConstants
        from bayescale.synthetic import simulate_chinchilla_runs

        paper = {"E": float(np.exp(EPOCH_2024.log_E)), "A": float(np.exp(EPOCH_2024.log_A)),
                 "B": float(np.exp(EPOCH_2024.log_B)), "alpha": float(EPOCH_2024.alpha), "beta": float(EPOCH_2024.beta)}
        paper = {k: float(f"{v:.12g}") for k, v in paper.items()}  # exp(log(x)) rounding
        paper.update(args.constants)
        constants = ChinchillaConstants.from_paper(**paper)
        batch = args.batch_tokens[0] if args.batch_tokens else 2.0**19
        table = simulate_chinchilla_runs(constants, args.sizes, args.tokens_per_param, batch_tokens=batch,
                                         noise=args.noise, seed=args.seed, group=args.split)
        design = {"sizes": args.sizes, "tokens_per_param": args.tokens_per_param, "batch_tokens": batch}
        noise = {"noise": args.noise}
    else:
        from bayescale.models.kaplan import KaplanConstants
        from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs

        c = EXAMPLE_CONSTANTS
        paper = {"N_c": float(np.exp(c.log_N_c)), "alpha_N": float(c.alpha_N), "S_c": float(np.exp(c.log_S_c)),
                 "alpha_S": float(c.alpha_S), "B_star": float(np.exp(c.log_B_star)), "alpha_B": float(c.alpha_B)}
        if args.model == "kaplan_irreducible":
            paper["L_inf"] = float(c.L_inf)
        paper = {k: float(f"{v:.12g}") for k, v in paper.items()}  # exp(log(x)) rounding
        paper.update(args.constants)
        constants = KaplanConstants.from_paper(**paper)
        table = simulate_runs(constants, args.sizes, args.batch_tokens, final_step=curve_options["steps"],
                              points=curve_options["points"], noise=args.noise, rho=curve_options["rho"],
                              run_sd=curve_options["run_sd"], seeds=curve_options["seeds"], seed=args.seed,
                              split=args.split)
        design = {"sizes": args.sizes, "batch_tokens": args.batch_tokens, "steps": curve_options["steps"],
                  "points": curve_options["points"], "seeds": curve_options["seeds"]}
        noise = {"noise": args.noise, "run_sd": curve_options["run_sd"], "rho": curve_options["rho"]}
    if not np.all(np.isfinite(table["loss"])):
        raise ValueError("the chosen constants give non-finite losses; check --constants")
    validate_runs(table, source="simulated table")  # what `fit` will read
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_table(table, args.out)
    truth = {"model": args.model, "constants": paper, **noise, "seed": args.seed, "design": design,
             "split": args.split, "rows": len(table), "runs": int(table["run"].nunique())}
    truth_path(args.out).write_text(json.dumps(truth, indent=2) + "\n")
    note(f"wrote {len(table)} rows of {truth['runs']} runs to {args.out} and the true constants to "
         f"{truth_path(args.out)}")
    return 0
