"""CPU devices for parallel chains, set up before JAX starts; imports neither JAX nor NumPy.

NUTS runs one chain per JAX device with ``chain_method="parallel"``. On a CPU, JAX has
one device unless XLA is told otherwise, and XLA reads its flags (``XLA_FLAGS``) once,
when JAX initialises its backend at the first JAX computation, not at ``import jax``.
:func:`use_cpu_cores` sets those flags; :func:`expose_cpu_cores` is what the fits call
right before their first JAX computation, so that parallel chains need no set-up by the
user. Once the backend runs, the device count is fixed and fits fall back to vectorized
chains (all chains in one XLA program) with a :class:`VectorizedChainsWarning`.

:func:`use_cpu_cores` also raises XLA's CPU rendezvous timeouts to a day: on a CPU that
another process saturates, XLA's parallel map used to wait 40 s for all device threads
and then abort the process; with these flags a busy machine makes a fit slow, never dead.

:func:`release_compiled_code` keeps a long process (a notebook, a test session) that
runs many fits from running out of memory mappings. XLA:CPU keeps the machine code of
every compiled executable in separate memory mappings (about three each), and JAX's
in-memory caches keep every executable alive; a fit builds fresh model closures, so it
compiles hundreds of new executables that no later fit reuses (about 1,600 mappings for
a small fit). Linux caps the mappings of a process (``vm.max_map_count``, 65,530 by
default); at the cap LLVM cannot map the next compiled function ("LLVM compilation
error: Cannot allocate memory") and XLA then crashes the process, a segmentation fault
or an abort inside compilation. Each fit therefore first drops JAX's compiled code
(``jax.clear_caches()``) when the process uses more than half of its mappings.
"""

from __future__ import annotations

import os
import sys
import warnings

#: XLA flag that sets the number of CPU devices.
_DEVICE_COUNT = "--xla_force_host_platform_device_count"

#: XLA flags that make CPU collectives wait instead of aborting the process.
_PATIENT_COLLECTIVES = ("--xla_cpu_collective_call_terminate_timeout_seconds=86400",
                        "--xla_cpu_collective_call_warn_stuck_timeout_seconds=86400",
                        "--xla_cpu_collective_timeout_seconds=86400")

_warned = False


class VectorizedChainsWarning(UserWarning):
    """Parallel chains were asked for, but JAX started with too few CPU devices for them."""


def default_devices() -> int:
    """The CPU devices :func:`use_cpu_cores` exposes by default: the larger of 4 and the core count."""
    return max(4, os.cpu_count() or 1)


def use_cpu_cores(devices: int | None = None) -> None:
    """Expose ``devices`` CPU devices to JAX (default: the larger of 4 and the core count)
    so chains run in parallel, with patient rendezvous timeouts.

    Must run before JAX initialises its backend (before the first JAX computation);
    afterwards it has no effect and fits fall back to vectorized chains.
    """
    devices = devices or default_devices()
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if not f.startswith((_DEVICE_COUNT, *(p.split("=")[0] for p in _PATIENT_COLLECTIVES)))]
    os.environ["XLA_FLAGS"] = " ".join([*flags, f"{_DEVICE_COUNT}={devices}", *_PATIENT_COLLECTIVES])


def requested_devices() -> int | None:
    """The CPU device count that ``XLA_FLAGS`` asks for, or ``None`` when it does not set one."""
    count = None
    for flag in os.environ.get("XLA_FLAGS", "").split():
        name, _, value = flag.partition("=")
        if name == _DEVICE_COUNT:
            try:
                count = int(value)
            except ValueError:
                count = None
    return count


def backends_are_initialized() -> bool:
    """Whether JAX has initialised its backend, after which ``XLA_FLAGS`` no longer applies.

    Never imports JAX: a process that has not imported it has not started it. Asks
    ``jax._src.xla_bridge.backends_are_initialized``, a private API that every supported
    JAX release (0.9 and later, pyproject.toml) has.
    """
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return bool(xla_bridge.backends_are_initialized())


def expose_cpu_cores(chains: int | None = None) -> bool:
    """Expose enough CPU devices for ``chains`` parallel chains if JAX has not started yet.

    Called by bayescale right before its first JAX computation. Keeps a device count that
    the user set (``use_cpu_cores``, ``numpyro.set_host_device_count`` or ``XLA_FLAGS``)
    unless ``chains`` needs more; otherwise exposes :func:`default_devices` (or ``chains``,
    if larger). Returns ``False``, changing nothing, when the backend already runs.
    """
    if backends_are_initialized():
        return False
    current = requested_devices()
    needed = chains or 0
    devices = current if current is not None and current >= needed else max(current or 0, needed, default_devices())
    use_cpu_cores(devices)
    return True


def warn_vectorized(devices: int, chains: int) -> None:
    """Warn, once per process, that ``chains`` chains run vectorized on ``devices`` devices, with the fix."""
    global _warned
    if _warned:
        return
    _warned = True
    warnings.warn(
        f"JAX started before this fit with {devices} CPU device(s) for {chains} chains, so the chains run "
        "vectorized (slower); for parallel chains call bayescale.use_cpu_cores() before any JAX computation",
        VectorizedChainsWarning, stacklevel=5)


#: Share of the process's memory-map limit above which :func:`release_compiled_code` clears JAX's caches.
MAP_SHARE = 0.5


def memory_maps() -> tuple[int, int] | None:
    """The memory mappings this process uses and the most it may have (``vm.max_map_count``),
    or ``None`` where the system does not say (not Linux)."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
        with open("/proc/self/maps", "rb") as f:
            used = sum(1 for _ in f)
    except (OSError, ValueError):
        return None
    return used, limit


def release_compiled_code(share: float = MAP_SHARE) -> bool:
    """Clear JAX's caches of compiled code when this process uses more than ``share`` of
    its memory mappings; returns whether it did.

    Called by every fit before it compiles its model. Clearing costs the next
    computations a recompilation (seconds) and frees the machine code of every
    executable that nothing else holds, with its mappings; without it a process that
    keeps fitting crashes inside XLA once it reaches ``vm.max_map_count``.
    """
    maps = memory_maps()
    if maps is None or maps[0] <= share * maps[1] or "jax" not in sys.modules:
        return False
    import gc

    import jax

    jax.clear_caches()
    gc.collect()  # executables held only by reference cycles go now, not at some later collection
    return True
