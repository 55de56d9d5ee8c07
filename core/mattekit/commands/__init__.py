"""Subcommands of the ``mattekit`` command, one module each."""
