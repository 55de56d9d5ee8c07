"""Benchmarks behind ``mattekit bench``: each KIND's module adds its subcommand and prints its figures; the others
serve them (:mod:`.metrics`: the quality metrics of masks; :mod:`.stand_in`, :mod:`.speed_setup` ...)."""
