"""Scaling-law forms and the one NumPyro model they plug into (importable as ``bayescale.models``).

* :mod:`~bayescale.models.law` -- the :class:`Law` protocol: name, latent sites and
  priors, mean log loss as a function of the covariates, derived quantities, and
  extrapolation distance;
* :mod:`~bayescale.models.skeleton` -- the shared NumPyro model (pooled groups, run
  offsets, AR(1) Student-t observation), :func:`curve_model`;
* :mod:`~bayescale.models.kaplan`, :mod:`~bayescale.models.chinchilla` -- the law forms;
* :mod:`~bayescale.models.priors` -- their prior settings;
* :mod:`~bayescale.models.registry` -- law names (``--model``) to law objects.

Names load on first use, so that the command line can read the registry without JAX.
"""

import importlib as _importlib

#: Public name -> submodule that defines it.
_PUBLIC = {
    "Law": "law", "Covariates": "law", "Extrapolation": "law",
    "curve_model": "skeleton",
    "KAPLAN": "kaplan", "KAPLAN_IRREDUCIBLE": "kaplan", "KaplanConstants": "kaplan", "KAPLAN_2020": "kaplan",
    "CHINCHILLA": "chinchilla", "ChinchillaConstants": "chinchilla", "EPOCH_2024": "chinchilla",
    "KaplanPriors": "priors", "ChinchillaPriors": "priors",
    "LAWS": "registry", "get_law": "registry",
}


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is not None:
        return getattr(_importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_PUBLIC)
