"""Roto: a plate sequence in, a matte sequence out, resumable, chunkable, distributable.

``RotoJob(RotoSpec(plate, output, ...)).run()`` writes one matte per frame (and optionally an RGBA cut-out, a
decontaminated foreground plate and a layered EXR per frame):

- **Atomic writes**: each file is written under a temporary name and renamed into place.
- **Resumable**: a frame counts as finished only when a journal record (its files' SHA-256 and the settings'
  fingerprint) matches the bytes on disk; each process appends to its own journal file.
- **Manifest** ``<output name>.mattekit.json``: the plate, the settings, the model, its weights' SHA-256 and the
  provenance record (:mod:`mattekit.provenance`); other settings into the same output are refused unless ``overwrite``.
- **Chunks** (``frames``, :meth:`RotoJob.chunks <.job.RotoJob.chunks>`, Ray tasks) give one run's bytes: a matte
  depends on the plate frames within ``radius`` (:mod:`.temporal`) and hint chains re-run from their keyframe. A
  recurrent model (RVM) first runs the catalog's ``warmup`` frames: its mattes equal one run's within ``warmup``
  frames of the shot's start and differ a little after (``mattekit bench roto --chunk`` measures it).
- **Throughput**: frames go through :func:`mattekit.running.pipeline.run_pipeline` and reach the temporal filter and the
  writer in frame order; the bytes do not depend on the number of inference workers.
- **Hints** (``box``, ``point``, ``exclude``, ``hint_mask`` on keyframes) are carried along the motion to the next
  frames (backward before the first): :class:`.chain.HintChain`, or SAM 2.1's memory with a ``prompt`` model
  (:class:`.sam.SamChain`). Hints name their object (``--box 1001:10,10,80,90@dog``); each object is a job of its own.
- **Progress** events with frames/s and ETA; **cancellation** between frames.

The task and its options are declared in :mod:`mattekit.tasks.roto`. Modules: :mod:`.spec`, :mod:`.source`,
:mod:`.tracking`, :mod:`.chain`, :mod:`.sam` (hints), :mod:`.temporal`, :mod:`.flow_blocks` (the temporal filter),
:mod:`.objects`, :mod:`.store`, :mod:`.lock`, :mod:`.layers`, :mod:`.job`, :mod:`.ray`.
"""

from .job import RotoJob, Summary, run_operation
from ..errors import Cancelled
from ..progress import Progress
from .ray import run_on_ray
from .source import MatteSource, recurrent_steps
from ..tasks.roto import ROTO_MODEL_TASKS, RotoSpec

__all__ = [
    "RotoSpec",
    "RotoJob",
    "run_on_ray",
    "run_operation",
    "MatteSource",
    "recurrent_steps",
    "Progress",
    "Summary",
    "Cancelled",
    "ROTO_MODEL_TASKS",
]
