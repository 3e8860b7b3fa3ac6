"""NumPyro models of loss curves and final losses (importable as ``bayescale.models``)."""

from .kaplan import CONSTANTS, LATENTS, constants_from_latents, kaplan_model
from .priors import ChinchillaPriors, KaplanPriors

__all__ = [
    "CONSTANTS",
    "LATENTS",
    "ChinchillaPriors",
    "KaplanPriors",
    "constants_from_latents",
    "kaplan_model",
]
