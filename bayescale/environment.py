"""What a result was computed with: library versions and the machine.

MCMC paths change with the versions of JAX and NumPyro (and can with the CPU), so
every posterior records :func:`library_versions` in its metadata and every benchmark
section in ``benchmarks/RESULTS.md`` starts with :func:`conditions`. Nothing here
imports JAX or the other heavy libraries: versions are read from the installed
distributions' metadata.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

#: Distributions whose versions decide a fit's numbers.
LIBRARIES = ("bayescale", "jax", "jaxlib", "numpyro", "arviz", "numpy", "pandas", "scipy")


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """``{name: version}`` of Python and each installed distribution in ``names``
    (``"not installed"`` for a missing one)."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, or the platform's description."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def conditions(names: tuple[str, ...] = LIBRARIES) -> str:
    """One line for a results table: cores, CPU, load average and library versions."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    versions = ", ".join(f"{k} {v}" for k, v in library_versions(names).items())
    return f"{os.cpu_count()}-core CPU ({cpu_model()}), load average at start {load:.2f}; {versions}"
