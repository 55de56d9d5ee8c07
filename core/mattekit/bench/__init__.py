"""Benchmarks behind ``mattekit bench``: each module adds one KIND and prints its figures."""
