"""NumPyro models of loss curves and final losses (importable as ``bayescale.models``)."""

from .chinchilla import (CHINCHILLA_CONSTANTS, CHINCHILLA_LATENTS, EPOCH_2024, ChinchillaConstants,
                         chinchilla_constants_from_latents, chinchilla_log_floor, chinchilla_log_loss,
                         chinchilla_log_tokens, chinchilla_model)
from .kaplan import CONSTANTS, LATENTS, constants_from_latents, kaplan_model
from .priors import ChinchillaPriors, KaplanPriors

__all__ = [
    "CHINCHILLA_CONSTANTS",
    "CHINCHILLA_LATENTS",
    "CONSTANTS",
    "EPOCH_2024",
    "LATENTS",
    "ChinchillaConstants",
    "ChinchillaPriors",
    "KaplanPriors",
    "chinchilla_constants_from_latents",
    "chinchilla_log_floor",
    "chinchilla_log_loss",
    "chinchilla_log_tokens",
    "chinchilla_model",
    "constants_from_latents",
    "kaplan_model",
]
