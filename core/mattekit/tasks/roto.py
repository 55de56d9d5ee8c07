"""Roto (task ``roto``, kind "sequence"): a plate sequence in, a matte sequence out, declared here by path.

The job itself (:class:`mattekit.roto.RotoSpec`, :class:`mattekit.roto.RotoJob`) lives a layer above the
tasks, so this declaration names it without importing it (:class:`.registry.SequenceTask`): the registry
stays cheap to read, and ``mattekit roto``, the worker's ``roto`` operation and the API function
``mattekit.rotoscope(plate, output, ...)`` (not ``mattekit.roto``: that is the package) find it here.
"""
from __future__ import annotations

from .registry import SequenceTask

TASK = SequenceTask(
    name="roto",
    summary="Matte every frame of a plate (pattern, folder or movie) into a matte sequence; resumable.",
    spec="mattekit.roto.spec:RotoSpec",
    runner="mattekit.roto.job:RotoJob",
    operation="mattekit.roto.job:run_operation",
    api="rotoscope",  # mattekit.roto is the package that runs it
)
