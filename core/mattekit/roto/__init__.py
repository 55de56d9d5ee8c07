"""Roto: a plate sequence in, a matte sequence out, resumable, chunkable, distributable.

``RotoJob(RotoSpec(plate, output, ...)).run()`` writes one matte per frame (and optionally an
RGBA cut-out and a decontaminated foreground plate per frame):

- **Atomic writes**: every file is written under a temporary name and renamed into place
  (:func:`mattekit.io.write_image`), so a killed job never leaves a half-written frame.
- **Resumable, verified by content**: after a frame's files are in place, a record with their
  SHA-256 and the job's settings fingerprint is appended to a journal. A re-run treats a frame
  as finished only when a journal record with the same fingerprint matches the bytes on disk;
  anything else is recomputed. Each process appends to its own journal file, so chunks run
  side by side (render-farm tasks, Ray workers) never write the same file.
- **Manifest**: ``<output name>.mattekit.json`` beside the mattes records the plate, the
  settings, the model and the SHA-256 of its weights, and the provenance record
  (:mod:`mattekit.provenance`) that every matte file carries too. A re-run with other settings into the
  same output is refused unless ``overwrite``.
- **Chunks**: with temporal consistency a frame's matte depends only on plate frames within
  ``radius`` of it (see :mod:`mattekit.roto.temporal`), so any split of the frame range - ``frames``,
  :meth:`RotoJob.chunks <.job.RotoJob.chunks>`, Ray tasks - gives the same bytes as one run. A recurrent model (RVM)
  carries its state from frame to frame instead: each chunk first runs the catalog's ``warmup``
  plate frames before its first frame, so its mattes equal one run's within ``warmup`` frames of
  the shot's start and differ a little after (``mattekit bench roto --chunk`` measures it).
- **Throughput**: frames are decoded, inferred and post-processed through
  :func:`mattekit.pipeline.run_pipeline` (as ``mattekit remove`` runs folders), and handed in
  frame order to the temporal filter and the file writing; the bytes do not depend on the
  number of inference workers.
- **Progress** events with frames/s and ETA; **cancellation** between frames.
- **Hints** (``box``, ``point``, ``exclude``, ``hint_mask`` on keyframes; :mod:`mattekit.roto.tracking`):
  the subject's hint is carried from each keyframe to the next frames along the motion (backward
  before the first keyframe), so a frame's mask depends on the frames between its keyframe and it.
  Those chains run in order in the pipeline's writer (:class:`.chain.HintChain`; decoding still runs
  ahead), and from their keyframe whatever frames are asked for: chunks, ``frames`` splits and
  resumed runs (after a kill too) give the same bytes as one run, at the cost of re-running the
  chain from the keyframe before a split's first frame.
- **Tracking with SAM 2.1** (a ``prompt`` model, e.g. ``sam2.1-hiera-tiny``; it needs hints): each keyframe
  prompts a :class:`~mattekit.nets.sam2.predictor.SAM2VideoTracker` fed the frames up to the next keyframe
  (backward before the first), :class:`.sam.SamChain`; splits and resumed runs re-play from the keyframe
  to rebuild the memory, so their bytes equal one run's too.
- **Objects**: hints name their object (``--box 1001:10,10,80,90@dog``); each object is a job of its own with
  its own mattes, manifest and journal (:mod:`.objects`), run one after the other by :class:`RotoJob`.

Roto is a sequence task of the registry (:mod:`mattekit.tasks.roto`, a
:class:`~mattekit.tasks.registry.SequenceTask`) that declares its options, :class:`RotoSpec`, so ``mattekit roto``,
the worker and ``mattekit.rotoscope(plate, output, ...)`` find it there and check options the one way; they run
:class:`RotoJob` (the worker: :func:`run_operation`) from here.

Its per-frame stage is not a registry task's ``finish``, and cannot be without changing bytes: each frame
is the model's input as every task's (``predictor.prepare(pixels)``, what
:func:`~mattekit.tasks.registry.model_input` calls), the net, then
:func:`mattekit.subject.masks.mask_from_prediction` with the ``refine`` option, ``soft`` for a matting model
(``people``) and the model's upsampling, and the temporal filter's per-frame part
(:meth:`mattekit.roto.temporal.OrderedSmoother.keep`) in the same pipeline step. No declared finish is that:
``mask-preview`` never refines and rounds like a segmentation mask; ``remove`` takes only segmentation
models and mattes the mask's edge (:func:`mattekit.subject.masks.alpha_from_mask`) into a cut-out; ``matte`` mattes
a segmentation mask's edge always and resizes a matting model's alpha without refining. Nor do the
stages' shape fit: a keyframe chain runs the net on a hint carried from the frame before (and again on
its region when the whole frame loses the subject, :class:`.chain.HintChain`), and a recurrent model
(RVM) carries its state from frame to frame, so neither is one prepare -> infer -> finish per frame.

One job per module: :mod:`.spec` (the outputs-never-on-inputs checks),
:mod:`.source` (per-frame mattes in frame order), :mod:`.chain` (keyframe hints carried along the
motion), :mod:`.sam` (objects tracked by SAM 2.1's memory), :mod:`.objects` (several objects, one job each),
:mod:`.store` (manifest and journals), :mod:`.lock` (the frames a live run writes),
:mod:`.summary` (the summary; progress events are :class:`mattekit.progress.Progress` and cancellation
:class:`mattekit.errors.Cancelled`, re-exported here as ``roto.Progress`` and ``roto.Cancelled``),
:mod:`.job` (the job and the worker's operation) and :mod:`.ray` (chunks on a Ray cluster).
"""
from .job import RotoJob, run_operation
from ..errors import Cancelled
from ..progress import Progress
from .summary import Summary
from .ray import run_on_ray
from .source import MatteSource, recurrent_steps
from ..tasks.roto import ROTO_MODEL_TASKS, RotoSpec

__all__ = ["RotoSpec", "RotoJob", "run_on_ray", "run_operation", "MatteSource", "recurrent_steps", "Progress",
           "Summary", "Cancelled", "ROTO_MODEL_TASKS"]
