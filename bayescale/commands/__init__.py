"""Subcommands of the ``bayescale`` command line, one module each.

Every module exposes ``register(subparsers)``, which adds its subcommand and sets
``func`` to a function taking the parsed namespace and returning an exit code.
"""
