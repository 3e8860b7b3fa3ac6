"""What assembling a fit's ``InferenceData`` costs: ``az.from_numpyro`` against bayescale's own.

A fit ends by turning NumPyro's draws into an ArviZ ``InferenceData`` with the pointwise
log-likelihood (for PSIS-LOO). ``az.from_numpyro`` runs the model outside any compiled
function to find the observed sites and again, vectorised, for the log-likelihood; on a CPU
each small operation is compiled on its own. :func:`bayescale.inference_data.inference_data`
computes the log-likelihood in one compiled program instead.

Each measurement is a fresh process (compiled code is cached within a process, so a second
conversion in one process would measure nothing) that prepares the bundled sweep as
``bayescale fit`` does, finds starting points, runs NUTS and draws the prior, then times the
conversion alone. The two converters alternate ``--repeats`` times so that a burst of load on
a shared machine hits both alike. Prints the median, fastest and slowest seconds of each and
the median of the per-repeat ratios, and appends the table to benchmarks/RESULTS.md.

Run: ``python benchmarks/inference_data.py [--repeats 3] [--chains 2 --warmup 300 --draws 700]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time

from common import (BUNDLED_RUNS, add_append_option, add_sampler_options, markdown_table, print_round, publish,
                    timing_table)

from bayescale.environment import conditions

CONVERTERS = ("az.from_numpyro", "bayescale.inference_data")


def convert_once(converter: str, chains: int, warmup: int, draws: int, seed: int) -> dict:
    """In this (fresh) process: one fit's sampling, then the timed conversion by ``converter``."""
    import numpyro

    from bayescale import use_cpu_cores

    numpyro.set_platform("cpu")
    use_cpu_cores(chains)
    import arviz as az
    import jax
    from numpyro.infer import MCMC, NUTS, Predictive

    from bayescale.defaults import DEFAULT_MAX_POINTS, DEFAULT_MIN_STEP_FRACTION
    from bayescale.inference_data import inference_data
    from bayescale.models.registry import get_law
    from bayescale.models.skeleton import curve_model, dims
    from bayescale.runs import load_runs
    from bayescale.start import starting_points

    law = get_law("kaplan")
    priors = law.default_priors()
    data = law.prepare(load_runs(BUNDLED_RUNS), group_by="auto", min_step_fraction=DEFAULT_MIN_STEP_FRACTION,
                       min_step=0.0, max_points=DEFAULT_MAX_POINTS)
    coords, site_dims = dims(data, law)
    key_start, key_mcmc, key_prior = jax.random.split(jax.random.PRNGKey(seed), 3)
    args = (data, law, priors)
    init = starting_points(key_start, curve_model, args, {"log_loss": data.log_loss}, chains)
    mcmc = MCMC(NUTS(curve_model, target_accept_prob=0.9, dense_mass=True), num_warmup=warmup, num_samples=draws,
                num_chains=chains, chain_method="parallel", progress_bar=False)
    mcmc.run(key_mcmc, *args, log_loss=data.log_loss, init_params=init, extra_fields=("diverging", "num_steps"))
    prior = Predictive(curve_model, num_samples=500)(key_prior, *args)
    constant_data = {"log_N": data.log_N, "log_B": data.log_B, "log_S": data.log_S, "run_idx": data.run_idx,
                     "group_idx": data.group_idx, **data.covariates}
    jax.block_until_ready((mcmc.get_samples(), prior))
    start = time.perf_counter()
    if converter == "az.from_numpyro":
        idata = az.from_numpyro(mcmc, prior=prior, coords=coords, dims=site_dims, constant_data=constant_data,
                                log_likelihood=True)
    else:
        idata = inference_data(mcmc, curve_model, args, {"log_loss": data.log_loss}, prior=prior, coords=coords,
                               dims=site_dims, constant_data=constant_data)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "points": data.n_points, "groups": sorted(idata.groups())}


def measure(converter: str, args: argparse.Namespace) -> dict:
    """:func:`convert_once` in a fresh Python process."""
    command = [sys.executable, __file__, "--worker", converter, "--chains", str(args.chains), "--warmup",
               str(args.warmup), "--draws", str(args.draws), "--seed", str(args.seed)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sampler_options(ap, chains=2, warmup=300, draws=700)
    ap.add_argument("--repeats", type=int, default=3, help="measurements per converter (default: 3)")
    ap.add_argument("--worker", choices=CONVERTERS, help=argparse.SUPPRESS)
    add_append_option(ap)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(convert_once(args.worker, args.chains, args.warmup, args.draws, args.seed)))
        return
    seconds: dict[str, list[float]] = {name: [] for name in CONVERTERS}
    for repeat in range(args.repeats):
        for name in CONVERTERS:
            result = measure(name, args)
            seconds[name].append(result["seconds"])
        print_round(repeat, args.repeats, seconds, digits=2)
    table = timing_table(seconds, "converter", CONVERTERS[0], digits=2)
    text = "\n".join([
        f"\n## inference_data — assembling a fit's InferenceData — {dt.date.today().isoformat()}\n",
        f"Machine: {conditions()}. The bundled sweep as `bayescale fit` prepares it under `kaplan` "
        f"({result['points']} points), NUTS {args.chains} chains x {args.draws} draws ({args.warmup} warmup) and "
        f"500 prior draws, then the conversion alone timed (groups: {', '.join(result['groups'])}); each "
        f"measurement a fresh process, the converters alternated {args.repeats} times.\n",
        markdown_table(table),
    ])
    publish(text, args)


if __name__ == "__main__":
    main()
