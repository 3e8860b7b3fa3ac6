r"""How much a fit's curves weigh their levels, under AR(1) residuals.

With AR(1) residuals of correlation ``rho`` along a run (:mod:`bayescale.models.skeleton`),
the likelihood of a curve of ``n`` points is that of its first point and of ``n - 1``
innovations ``r_i - rho r_{i-1}``. A shift ``c`` of the whole curve moves the first by
``c`` and each innovation by ``(1 - rho) c``, each with variance ``1 - rho^2`` times the
first point's, so the curve measures its level as well as

.. math::

    w(\rho, n) = 1 + (n - 1) \frac{1 - \rho}{1 + \rho}

independent points would. The size term lives in the runs' levels; the steps and the
schedule in their shapes. Where ``w`` is a small share of the points (``rho`` near 1), the
fit follows the curves' shapes, and a forecast beyond the fitted sizes can inherit levels
that a fit with independent residuals (``fit --residuals independent``) would place
otherwise: on the Multi-Power-Law curves (rho 0.97, ``w`` 1.5 of 32 points) 1.57% against
0.37% on a held-out 4x larger size; on Gemstones (rho 0.56, ``w`` 4.9 of 15) 0.78% against
0.84% (docs/model.md, section 4.4; benchmarks/RESULTS.md).
"""

from __future__ import annotations

import numpy as np

from bayescale.posterior import Posterior, fitted_points
from bayescale.predict import fitted_priors

#: Below this share of a curve's points, ``fit`` says that the fit follows the curves' shapes.
SHAPE_LED_SHARE = 0.1


def level_weight(rho: float, points: float) -> float:
    """``w(rho, n)``: how many independent points a curve of ``points`` AR(1) points is worth
    for its level (module docstring)."""
    return 1.0 + (points - 1.0) * (1.0 - rho) / (1.0 + rho)


def points_per_curve(posterior: Posterior) -> np.ndarray:
    """How many points the fit saw on each curve (one run in one group)."""
    cd = posterior.idata.constant_data
    curves = np.stack([np.asarray(cd["run_idx"]).ravel(), np.asarray(cd["group_idx"]).ravel()], axis=1)
    return np.unique(curves, axis=0, return_counts=True)[1]


def fitted_spacing(posterior: Posterior) -> float:
    """``delta``: the median log-step spacing of consecutive fitted points of one curve (run
    and group); ``inf`` where no curve has two points."""
    points = fitted_points(posterior).sort_values(["run", "group", "step"])
    gaps = np.log(points["step"].to_numpy(float))
    same = (points["run"].to_numpy()[1:] == points["run"].to_numpy()[:-1]) & \
           (points["group"].to_numpy()[1:] == points["group"].to_numpy()[:-1])
    gaps = np.diff(gaps)[same]
    return float(np.median(gaps)) if gaps.size else float("inf")


def residual_model(posterior: Posterior) -> str:
    """How the fit modelled the residuals along a run: ``"ar1"``, ``"independent"``, or ``"none"``
    where no run had two points (final losses only: a law that keeps run offsets there
    samples ``rho`` from its prior, no point informs it). Posteriors saved before the choice
    existed were fitted with the AR(1)."""
    if "rho" not in posterior.idata.posterior or points_per_curve(posterior).max() < 2:
        return "none"
    return fitted_priors(posterior).residual_correlation


def describe_residuals(posterior: Posterior) -> str:
    """One phrase on :func:`residual_model`, with the AR(1)'s posterior median ``rho`` and, for fits of
    curves, its correlation length in log-steps."""
    model = residual_model(posterior)
    if model == "none":
        return "one point per run: no correlation along a run"
    if model == "independent":
        return "independent (rho = 0: each run's level counts in full; docs/model.md, section 4.4)"
    text = f"AR(1), posterior median rho {float(np.median(posterior.draws('rho'))):.3f}"
    if "correlation_length" in posterior.idata.posterior:  # fits of curves (docs/model.md, section 4.4)
        text += f" (correlation length {float(np.median(posterior.draws('correlation_length'))):.2g} e-folds of steps)"
    return text


def shape_led_note(posterior: Posterior) -> str | None:
    """A sentence for ``fit`` when the posterior's curves weigh their levels at less than
    :data:`SHAPE_LED_SHARE` of their points on a ladder of two or more sizes; ``None`` otherwise
    (independent residuals, final losses only, one size)."""
    if residual_model(posterior) != "ar1" or len(posterior.meta.sizes) < 2:
        return None
    rho = float(np.median(posterior.draws("rho")))
    points = float(np.median(points_per_curve(posterior)))
    weight = level_weight(rho, points)
    if points < 2 or weight >= SHAPE_LED_SHARE * points:
        return None
    return (f"the residuals along each run are strongly correlated (rho {rho:.2f}): a curve of {points:.0f} points "
            f"weighs its level as {weight:.1f} independent points, so the fit follows the curves' shapes more than "
            "their levels, which carry the size term; for forecasts beyond the fitted sizes, compare a fit with "
            "--residuals independent (docs/model.md, section 4.4)")
