"""Baselines bayescale is benchmarked against; not part of the Bayesian product.

* :mod:`~bayescale.baselines.classic` -- the classical staged point estimate of the
  Kaplan/Su constants (Su et al. 2024);
* :mod:`~bayescale.baselines.bootstrap` -- the common practice for Chinchilla fits:
  Huber loss, L-BFGS from a grid, bootstrap intervals (Hoffmann et al. 2022).
"""
