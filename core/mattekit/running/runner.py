"""One runner for every front end: a task's inputs from a source, prepare -> infer -> finish, results to a sink.

The CLI (files, folders, standard input), the Python API (paths and arrays), the worker (arrays) and
``bench speed`` run tasks here, and always through :func:`mattekit.running.pipeline.run_pipeline` (one image is
a pipeline of one). A task that streams (one network input per image) has decoding and ``prepare`` in
the pipeline's reader, its main model in the inference workers and ``finish`` and encoding in the
writer; any other task's pipeline has no inference stage: the task runs whole in the writer (its models
may tile, or run more than once).

Failures: anything that goes wrong with one item (a bad file, an unwritable output, a bug) fails that
item only; the run's :class:`mattekit.running.pipeline.Result` keeps the original exception, so that a run of one
input can raise it as it was. Whatever fails in the shared inference stage stops the run, as in the pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from .. import io, startup
from . import layout, pipeline
from ..errors import MattekitError
from ..fsutil import ensure_folder, sha256_file
from ..options import NONE
from ..io import outputs


class _ItemFailed(MattekitError):
    """One item's own exception, carried through the pipeline (which fails an item on a MattekitError)."""

    def __init__(self, original: BaseException):
        super().__init__(str(original))
        self.original = original


def _guarded(stage: Callable) -> Callable:
    """``stage`` with any exception of its item carried as an :class:`_ItemFailed`."""

    def call(item, *rest):
        try:
            return stage(item, *rest)
        except Exception as exc:  # noqa: BLE001 - one item's failure never stops the others
            raise _ItemFailed(exc) from None

    return call


def transparent_note(task, result: dict, options=None) -> str | None:
    """The note for a ``task``'s ``result`` whose subject came out empty: a cut-out (the registry's RESULT port)
    whose alpha, or an alpha or mask output, is zero everywhere; in the CLI's words, naming what the task offers
    to try given its ``options`` (after a box, what else may find the subject in it, not a box again); for a shadow
    result, that no shadow was found. A result's own note (under :data:`mattekit.finish.cutout.NOTE`: why an output
    is empty, e.g. the shadow on a textured surface) comes first. None for any other result (a composite or colours
    hold no alpha to judge)."""
    from ..finish.cutout import NOTE
    from ..tasks.registry import RESULT

    if isinstance(result.get(NOTE), str):
        return result[NOTE]

    port = task.outputs[0]
    array = result.get(port.name)
    if array is None or not (port == RESULT or port.kind in ("alpha", "mask")):
        return None
    if array.ndim == 3:
        if array.shape[-1] not in (1, 2, 4):
            return None
        array = array[..., -1]
    if array.size == 0 or array.max() > (0 if array.dtype.kind in "ui" else 0.5 / 255):
        return None
    if getattr(options, "result", None) == "shadow":  # the shadow matte: the subject's own alpha is not in it
        return "the result is empty (no shadow of the subject was found in the photo)."
    names = {o.name for o in task.declared}
    if getattr(options, "box", None) is not None and "point" in names:  # the box was the hint: no box again
        answered = "hint_model" in names and options.hint_model != NONE
        tries = ["--point on the subject inside the box"] + (
            ["--hint-model none (the segmentation model answers the box)"]
            if answered
            else ["--model with another model", "--hint-model at its default (SAM 2.1 answers a box)"]
        )
        return f"the result is fully transparent (no subject was found in the box); try {', or '.join(tries)}."
    tries = (["--model with another model"] if "model" in names else []) + (
        ["--box around the subject or --point on it"] if {"box", "point"} <= names else []
    )
    return (
        "the result is fully transparent (no subject was found)"
        + (f"; try {', or '.join(tries)}" if tries else "")
        + "."
    )


class Runner:
    """A task with its loaded models (``{model option: Predictor}``) and checked options, ready to run.

    ports: {optional input port: the file or folder given} for file runs (a folder holds files named
    like the inputs); provenance: the record embedded in every written file (None: none); personal: written files
    keep the source's personal metadata (location, owner and people's names, serial numbers, maker notes:
    :mod:`mattekit.io.metadata`) with its profile, dpi, EXIF and XMP; by default they leave it out.
    """

    def __init__(
        self,
        task,
        models: dict,
        options,
        ports: dict | None = None,
        provenance: dict | None = None,
        personal: bool = False,
    ):
        self.task, self.models, self.options = task, models, options
        self.ports, self.provenance, self.personal = dict(ports or {}), provenance, personal
        self.output = task.outputs[0].name

    # ------------------------------------------------------------------ the one executor

    def run(
        self,
        items: Iterable,
        load: Callable,
        store: Callable,
        *,
        single: bool = False,
        steps: Callable | None = None,
        note: Callable | None = None,
        stored: Callable | None = None,
        **given,
    ) -> pipeline.Result:
        """For every item: ``load(item) -> (inputs, kept)``, the task's stages, ``store(item, kept, outputs)``, as the
        run's layout (:func:`mattekit.running.layout.decide`) lays them out, with where each item's finish runs.

        single: one item. steps(done, total): the task's own progress within one image (tiles). note(item, sentence)
        after an item is stored whose subject came out empty (:func:`transparent_note`); stored(item) after an item
        is stored.
        given: ``threads``, ``workers``, ``batch`` (the layout's; None: the plan's) and ``progress``, ``cancel``,
        ``timings`` (:func:`mattekit.running.pipeline.run_pipeline`'s)."""
        task, models, options = self.task, self.models, self.options
        startup.done()  # a task command's start-up (its imports, its models' load) ends as its run begins
        shape = {k: given.pop(k, None) for k in ("threads", "workers", "batch")}
        plan = layout.decide(task, models, items, single=single, **shape)

        def read(item):
            inputs, kept = load(item)
            x, context = task.prepare(models, inputs, options) if plan.infer is not None else (None, None)
            return x, (inputs, kept, context, plan.device_for(inputs["image"]))  # the finish's device, asked once

        def write(item, carried, y) -> None:
            inputs, kept, context, device = carried
            if plan.infer is None:
                result = task.run(models, inputs, options, progress=steps, device=device)
            else:
                result = task.finished(models, inputs, options, context, y, device, steps)
            store(item, kept, result)
            sentence = transparent_note(task, result, options) if note is not None else None
            if stored is not None:
                stored(item)
            if sentence:
                note(item, sentence)

        plan.begin()
        result = pipeline.run_pipeline(items, _guarded(read), plan.infer, _guarded(write), **given, **plan.stages)
        result.failed = [(item, exc.original if isinstance(exc, _ItemFailed) else exc) for item, exc in result.failed]
        return result

    # ------------------------------------------------------------------ sources and sinks

    def inputs_for(self, picture: io.Picture, source: Path) -> dict:
        """The task's inputs for the decoded ``source``: the image and the companion files named by ``ports``."""
        inputs = {"image": picture.pixels}
        for port in self.task.inputs[1:]:
            if port.name in self.ports:
                inputs[port.name] = outputs.read_companion(
                    str(self.ports[port.name]), source, port, picture.pixels.shape[:2]
                )
        return inputs

    def provenance_for(self, source: Path) -> dict | None:
        """The provenance record of ``source``'s output: the run's, and for each input port that is ``recorded``
        (a second shot) the companion file given for it, {"name", "sha256"} under the port's name."""
        ports = [p for p in self.task.inputs[1:] if p.recorded and p.name in self.ports]
        if self.provenance is None or not ports:
            return self.provenance
        record = dict(self.provenance)
        for port in ports:
            path = outputs.companion(str(self.ports[port.name]), source, port.name)
            record[port.name] = {"name": path.name, "sha256": sha256_file(path)}
        return record

    def files(
        self,
        planned: list[tuple[Path, Path]],
        *,
        skip_existing: bool = False,
        wrote: Callable | None = None,
        data: dict | None = None,
        **run,
    ) -> pipeline.Result:
        """Read each (input file, output file) of ``planned``, run, write the first output there (atomically,
        with the provenance and the source's colours and metadata, :func:`mattekit.io.outputs.with_metadata`;
        16-bit kept where the format allows). ``data``: {an input that is no file (standard
        input): (its bytes, what messages call it)}, decoded from memory. ``wrote(target)`` after each file;
        ``run``: :meth:`run`'s keywords. Items of the Result are the (input, output) pairs."""
        todo = [pair for pair in planned if not (skip_existing and pair[1].exists())]
        integers = self.task.inputs[0].integers
        data = data or {}

        def load(pair):
            given, name = data.get(pair[0], (pair[0], None))
            picture = io.read_image(given, integers=integers, name=name)
            return self.inputs_for(picture, pair[0]), picture

        def store(pair, picture, result) -> None:
            target = pair[1]
            pixels, kept = outputs.with_metadata(
                outputs.for_file(result[self.output], target), picture, target, self.personal
            )
            ensure_folder(target.parent)
            io.write_image(
                target,
                pixels,
                bit_depth=outputs.bit_depth_for(picture, target),
                provenance=self.provenance_for(pair[0]),
                metadata=kept,
            )

        result = self.run(
            todo,
            load,
            store,
            single=len(todo) == 1,
            stored=None if wrote is None else lambda pair: wrote(pair[1]),
            **run,
        )
        result.skipped = len(planned) - len(todo)
        return result

    def arrays(self, inputs: dict, steps: Callable | None = None, note: Callable | None = None) -> dict:
        """The task's outputs for in-memory ``inputs`` ({port: array}); the item's own exception raised;
        ``note(sentence)`` when the subject came out empty (:func:`transparent_note`)."""
        found: dict = {}
        result = self.run(
            [0],
            lambda _: (inputs, None),
            lambda _, kept, produced: found.update(produced),
            single=True,
            steps=steps,
            note=None if note is None else lambda _, sentence: note(sentence),
        )
        if result.failed:
            raise result.failed[0][1]
        return found
