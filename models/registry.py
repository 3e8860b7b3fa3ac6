"""The law forms by name: what ``--model`` and ``law="..."`` accept.

Light on purpose (no JAX import until a law is asked for), so that the command line
builds its choices from it. Adding a law form is one new module in
:mod:`bayescale.models` with a :class:`~bayescale.models.law.Law` object, and one entry
here.
"""

from __future__ import annotations

import importlib

#: Law name -> "module:attribute" of its :class:`~bayescale.models.law.Law` object, in the
#: default order of ``bayescale compare``.
LAWS = {
    "kaplan": "bayescale.models.kaplan:KAPLAN",
    "kaplan_irreducible": "bayescale.models.kaplan:KAPLAN_IRREDUCIBLE",
    "kaplan_schedule": "bayescale.models.schedule:KAPLAN_SCHEDULE",
    "kaplan_schedule_irreducible": "bayescale.models.schedule:KAPLAN_SCHEDULE_IRREDUCIBLE",
    "chinchilla": "bayescale.models.chinchilla:CHINCHILLA",
}

#: One line per law for the command line's help.
DESCRIPTIONS = {
    "kaplan": "Kaplan/Su: curves in N, B, S",
    "kaplan_irreducible": "Kaplan/Su with an irreducible loss L_inf",
    "kaplan_schedule": "Kaplan/Su on the learning-rate area, with annealing: any schedule",
    "kaplan_schedule_irreducible": "kaplan_schedule with an irreducible loss L_inf",
    "chinchilla": "Chinchilla: losses in N and tokens D = B S",
}

#: Suffix of the name of a law's variant with an irreducible loss (``--irreducible``).
IRREDUCIBLE_SUFFIX = "_irreducible"


def names() -> tuple[str, ...]:
    """The registered law names."""
    return tuple(LAWS)


def get_law(law):
    """The :class:`~bayescale.models.law.Law` registered as ``law`` (a name), or ``law`` itself."""
    if not isinstance(law, str):
        return law
    if law not in LAWS:
        raise ValueError(f"unknown model '{law}'; choose from {', '.join(LAWS)}")
    module, attribute = LAWS[law].split(":")
    return getattr(importlib.import_module(module), attribute)


def irreducible_variant(name: str) -> str:
    """The name of ``name``'s variant with an irreducible loss; ``ValueError`` when it has none."""
    variant = name if name.endswith(IRREDUCIBLE_SUFFIX) else name + IRREDUCIBLE_SUFFIX
    if variant not in LAWS:
        with_one = [n.removesuffix(IRREDUCIBLE_SUFFIX) for n in LAWS if n.endswith(IRREDUCIBLE_SUFFIX)]
        raise ValueError(f"model '{name}' has no irreducible-loss variant (--irreducible); models with one: "
                         + ", ".join(with_one))
    return variant
