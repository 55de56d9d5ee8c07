"""The roto job (:class:`RotoJob`): a plate sequence in, a matte sequence out, resumable and chunkable, and what
a run did (:class:`Summary`); and the worker's ``roto`` operation (:func:`run_operation`). See :mod:`mattekit.roto`
for the rules."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Callable

import numpy as np

from . import temporal
from ..errors import InputError, OutputError
from ..fsutil import Confinement, sha256_file
from ..weights import file_sha256
from ..io import Picture, write_image, write_layers
from ..matting import shadow as shadows
from ..io.frame_ranges import chunk_frames, format_frames
from ..io.sequences import open_plate, output_pattern, select_frames
from ..provenance import changed_options, model_record, roto_record
from ..runtime import ModelCache
from ..options import options_of
from ..weights import pinned_sha256s
from ..engines.files import Recipe, recipe_for
from ..options import model_choice
from .chain import keyframes_of
from .objects import PLACEHOLDER
from .objects import split as split_objects
from .objects import strip as strip_object
from ..progress import Progress, Reporter
from .sam import shared_features
from .source import MatteSource, frames_read
from .layers import ShotLayers, coverage_of, decontaminated
from ..tasks.roto import RotoSpec
from .spec import refuse_overwriting_inputs, refuse_shared_outputs
from .store import Store


@dataclasses.dataclass
class Summary:
    """What a run did: frames computed, frames found finished, seconds, and where it ran when that is not
    this process (``placement``, e.g. "on Ray: 2 worker(s), each 1 GPU and 8 CPU"; empty here)."""

    frames: list[int]
    computed: list[int] = dataclasses.field(default_factory=list)
    skipped: list[int] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    placement: str = ""

    def merge(self, other: "Summary") -> None:
        self.computed += other.computed
        self.skipped += other.skipped


class RotoJob:
    """A roto job on disk: plate, output patterns, manifest, journals (:class:`~mattekit.roto.store.Store`)."""

    def __init__(self, spec: RotoSpec, models=None, confine: Confinement | None = None):
        """``models``: the :class:`mattekit.runtime.ModelCache` to load the model into (the worker's own,
        so a model it holds is reused; None: a fresh one); ``confine``: the folders every file and folder the job
        writes must lie in when it is written (the worker's, :func:`mattekit.fsutil.check_folder`; None: anywhere)."""
        self.plate = open_plate(spec.plate, spec.colorspace, spec.view)
        layers = output_pattern(spec.layers, self.plate) if spec.layers else None
        if layers is not None and layers.suffix.lower() != ".exr":
            raise OutputError(f"The --layers pattern {spec.layers} must name .exr files (a layered EXR per frame).")
        objects = split_objects(spec, self.plate)
        if objects and spec.shadow:
            raise InputError(
                f"--shadow {spec.shadow} takes one subject, and the hints name {len(objects)} objects; "
                "run each object with its own --shadow pattern."
            )
        self.features = None  # a SAM model's frame features, shared with the shot's other objects (_run_objects)
        self.parts: list[RotoJob] = []  # several objects: one job each (:mod:`.objects`)
        if objects:
            self._of_objects(spec, objects, layers, models, confine)
        else:
            self._of_one(strip_object(spec), models, confine)

    def _of_objects(self, spec: RotoSpec, objects: list, layers, models, confine: Confinement | None) -> None:
        """A job of several objects: one job each (``objects``: (name, its spec)), the model loaded once for all,
        the first one's frames and model; one layered file per frame for every object where --layers names one
        (``layers``: its pattern, or None)."""
        models = models or ModelCache()  # the model loads once for every object
        self.parts = [RotoJob(part, models, confine) for _, part in objects]
        self.objects = [name for name, _ in objects]
        self.spec, self.models = spec, models
        first = self.parts[0]
        self.frames, self.missing, self.model, self.alpha_out = (
            first.frames,
            first.missing,
            first.model,
            first.alpha_out,
        )
        together = layers is not None and PLACEHOLDER not in spec.layers  # one layered file per frame for all
        shot = dict(zip(self.objects, self.parts))
        self.layers = ShotLayers(self.plate, layers, shot, spec.keep_personal, confine) if together else None

    def _of_one(self, spec: RotoSpec, models, confine: Confinement | None) -> None:
        """A job of one subject: its frames, outputs (checked against each other, the inputs and the bit depth),
        model, temporal options and keyframes, and every check of the store that needs no model."""
        self.spec, self.models = spec, models
        self.objects = []
        self.frames, self.missing = select_frames(self.plate, spec.frames, skip_missing=spec.skip_missing)
        self.alpha_out = output_pattern(spec.output, self.plate)
        self.extra_out = {
            name: output_pattern(value, self.plate)
            for name, value in (("rgba", spec.rgba), ("fg", spec.fg), ("layers", spec.layers), ("shadow", spec.shadow))
            if value
        }
        refuse_shared_outputs({"output": self.alpha_out, **self.extra_out})
        refuse_overwriting_inputs(spec, self.plate, self.frames, {"output": self.alpha_out, **self.extra_out})
        if spec.bit_depth not in (8, 16, 32) or (spec.bit_depth == 32 and self.alpha_out.suffix.lower() != ".exr"):
            raise OutputError(
                f"A {spec.bit_depth}-bit matte cannot be written as {self.alpha_out.suffix}: use 8 or 16 (PNG, TIFF) or 16 or 32 (EXR)."
            )
        self.model = spec.model or model_choice(None, "segment")  # the checked option's, or the catalog's default
        default = temporal.for_model(self.model.entry)
        radius = default.radius if spec.radius is None else spec.radius
        self.temporal = dataclasses.replace(default, radius=radius) if spec.temporal and radius > 0 else None
        self.keyframes = keyframes_of(spec, self.plate, self.model)
        # readable headers, one size, for every frame the run decodes (neighbours, warm-up): before any model loads
        self.plate.check_frames(frames_read(self.plate, self.model, self.temporal, self.keyframes, self.frames))
        self.store = Store(self.plate, {"alpha": self.alpha_out, **self.extra_out}, confine)
        self.store.check(self.frames, spec.overwrite)  # before the weights: every check that needs no model
        self._recipe: Recipe | None = None
        self._fingerprint: str | None = None
        self._provenance: dict | None = None

    # -- settings and manifest
    def recipe(self) -> Recipe:
        """What the model loads (:func:`mattekit.engines.files.recipe_for`): the weights file given, or the catalog's,
        and the net with its arguments."""
        if self._recipe is None:
            self._recipe = recipe_for(self.model.entry, self.spec.weights)
        return self._recipe

    def settings(self) -> dict:
        """What decides the bytes of the output files (the fingerprint is its hash); outputs aside,
        since each frame's record names its files (adding --rgba later recomputes only to add them)."""
        made = self.recipe()
        settings = {
            "kind": "roto",
            "plate": self.plate.describe(),
            "model": {
                "name": self.model.model,
                **made.spec,  # the net and its arguments
                "weights": made.weights.name,
                "sha256": file_sha256(made.weights),
            },
            "refine": self.spec.refine,
            "bit_depth": self.spec.bit_depth,
            "temporal": self.temporal.describe() if self.temporal else None,
            "input": "8-bit levels, rounded",
        }  # (engines.inputs.prepare_array: a float frame on the grid as its 8 bits)
        if self.model.recurrent:
            settings["warmup"] = self.model.warmup
        if self.spec.colorspace:
            settings["colorspace"] = self.spec.colorspace
        if self.spec.view:
            settings["view"] = self.plate.view
        if self.spec.keep_personal and self.spec.layers:  # the layered files keep the plate's personal metadata
            settings["personal"] = "kept"
        if "shadow" in self.extra_out:  # the shadow matte (and the layers' shadow.A): its method decides them
            settings["shadow"] = shadows.describe()
        if self.keyframes is not None:
            settings["hints"] = self.keyframes.describe()
            if self.model.task == "prompt":  # tracked by SAM 2.1's memory (:mod:`.sam`), not carried along the flow
                settings["hints"]["carry"] = {"method": "sam2.1-memory"}
        return settings

    def provenance(self) -> dict:
        """What makes this job's files (:func:`mattekit.provenance.roto_record`): in the manifest and each file."""
        if self._provenance is None:
            model = self.settings()["model"]
            changed = changed_options(
                options_of(RotoSpec),
                self.spec,
                RotoSpec(plate="", output=""),
                unrecorded=("threads", "workers", "overwrite", "skip_missing", "frames", "keep_personal"),
            )
            row = self.model.entry
            record = model_record(row, self.recipe().weights, model["sha256"], pinned_sha256s(row.files))
            self._provenance = roto_record(changed, record)
        return self._provenance

    def outputs(self) -> dict[str, str]:
        return self.store.outputs()

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            text = json.dumps(self.settings(), sort_keys=True)
            self._fingerprint = hashlib.sha256(text.encode()).hexdigest()[:32]
        return self._fingerprint

    def prepare_output(self) -> None:
        """Create the output folders; write the manifest, or check it against these settings."""
        for part in self.parts:
            part.prepare_output()
        if self.parts:
            return
        self.store.make_folders()
        self.store.open(self.settings(), self.fingerprint(), self.provenance, self.spec.overwrite)

    def finished(self, frames: list[int] | None = None) -> set[int]:
        """Frames whose every requested output is on disk with exactly the bytes a journal recorded
        (for the same plate file as now)."""
        frames = self.frames if frames is None else frames
        if self.parts:
            return set.intersection(*(part.finished(frames) for part in self.parts))
        if self.spec.overwrite:
            return set()
        return self.store.finished(frames, self.fingerprint())

    # -- chunks
    def chunks(self, size: int) -> list[list[int]]:
        return chunk_frames(self.frames, size)

    # -- running
    def run(
        self,
        frames: list[int] | None = None,
        progress: Callable[[Progress], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> Summary:
        """Compute the unfinished frames among ``frames`` (default: the job's); returns a Summary."""
        frames = sorted(self.frames if frames is None else frames)
        if self.parts:
            return self._run_objects(frames, progress, cancel)
        self.prepare_output()
        with self.store.lock(frames):  # no other live run writes these frames meanwhile
            return self._run_frames(frames, progress, cancel)

    def _run_frames(self, frames: list[int], progress, cancel) -> Summary:
        """:meth:`run` of one object's job, its output prepared and its frames locked."""
        started = time.monotonic()
        done = self.finished(frames)
        todo = [f for f in frames if f not in done]
        summary = Summary(frames, skipped=sorted(done))
        self.store.clean_temporaries(todo)
        report = Reporter(progress, len(frames), "frame", len(done), started)
        report.start()
        if not todo:
            summary.seconds = time.monotonic() - started
            return summary
        self.recipe()  # its weights file checked (and recorded in the manifest) before the model loads
        # the user's file, or None for the catalog's (the same file): a model the worker holds is reused
        source = MatteSource(
            self.plate,
            self.model,
            weights=self.spec.weights,
            device=self.spec.device,
            refine=self.spec.refine,
            temporal_options=self.temporal,
            refine_above=self.temporal.refine_above if self.temporal else 1.0,
            workers=self.spec.workers,
            threads=self.spec.threads,
            keyframes=self.keyframes,
            models=self.models,
            features=self.features,
            shadow="shadow" in self.extra_out,
        )
        with self.store.journal() as journal:

            def finish(frame: int, picture: Picture | None, alpha: np.ndarray, cast: np.ndarray | None) -> None:
                files = self._write(frame, picture, alpha, cast)
                journal.append({"frame": frame, "fingerprint": self.fingerprint(), "files": files})
                summary.computed.append(frame)
                report(frame)

            source.run(todo, finish, cancel, pictures=bool(self.extra_out))
        summary.seconds = time.monotonic() - started
        return summary

    def _run_objects(self, frames: list[int], progress, cancel) -> Summary:
        """Each object's job in turn over ``frames``: a frame counts as computed when any object's matte of it
        was, as skipped when every object's was already done; progress counts object frames."""
        summary, started = Summary(frames), time.monotonic()
        computed, skipped = set(), set(frames)
        features = shared_features() if self.model.task == "prompt" else None  # each frame encoded once for all
        for n, part in enumerate(self.parts):
            part.features = features

            def report(event, before=n * len(frames)):
                progress(dataclasses.replace(event, done=before + event.done, total=len(self.parts) * len(frames)))

            done = part.run(frames, report if progress else None, cancel)
            computed.update(done.computed)
            skipped.intersection_update(done.skipped)
        if self.layers is not None:
            written = self.layers.write(frames, self.spec.overwrite)
            computed.update(written)
            skipped.difference_update(written)
        summary.computed, summary.skipped = sorted(computed), sorted(skipped)
        summary.seconds = time.monotonic() - started
        return summary

    def _write(
        self, frame: int, picture: Picture | None, alpha: np.ndarray, cast: np.ndarray | None
    ) -> dict[str, list]:
        """Write a frame's outputs atomically (``cast``: its temporally filtered shadow matte, with ``--shadow``);
        returns {output name: [path, sha256, plate stamp]}."""
        stamp = self.store.plate_stamp(frame)
        path = self.alpha_out.path(frame)
        confine = self.store.confine
        write_image(path, alpha, bit_depth=self.spec.bit_depth, provenance=self.provenance(), confine=confine)
        files = {"alpha": [str(path), sha256_file(path), stamp]}
        if not self.extra_out:
            return files
        scene = picture.scene if picture.scene is not None else picture.pixels  # the plate's own values
        coverage = coverage_of(picture, alpha)  # transparent stays so
        foreground = decontaminated(scene[..., :3], coverage) if {"fg", "layers"} & set(self.extra_out) else None
        half = picture.format == "EXR" and picture.bit_depth == 16  # EXR: float unless the plate is half
        for name, pattern in self.extra_out.items():
            path = pattern.path(frame)
            if name == "layers":
                write_layers(
                    path,
                    scene[..., :3],
                    foreground,
                    coverage,
                    half=half,
                    colorspace=picture.colorspace,
                    source=self.plate.files[frame] if self.plate.kind == "images" else None,
                    provenance=self.provenance(),
                    objects=None if cast is None else {"shadow": cast},
                    personal=self.spec.keep_personal,
                    confine=confine,
                )
            elif name == "shadow":
                write_image(path, cast, bit_depth=self.spec.bit_depth, provenance=self.provenance(), confine=confine)
            else:
                rgb = scene[..., :3] if name == "rgba" else foreground
                exr = pattern.suffix.lower() == ".exr"
                write_image(
                    path,
                    np.concatenate([rgb, coverage[..., None]], axis=2),
                    colorspace=picture.colorspace or None,
                    bit_depth=(16 if half else 32) if exr else 16 if picture.bit_depth >= 16 else 8,
                    provenance=self.provenance(),
                    confine=confine,
                )
            files[name] = [str(path), sha256_file(path), stamp]
        return files


# ----------------------------------------------------------------------------------- worker operation


def run_operation(
    options: RotoSpec | dict, progress: Callable[[float, str], None], models=None, confine: Confinement | None = None
) -> list:
    """The worker's asynchronous ``roto`` operation: paths in, files out, progress reported; the model
    comes from ``models`` (the worker's :class:`mattekit.runtime.ModelCache`: loaded once, kept warm).

    ``progress(fraction, message)`` may raise to cancel (the worker does when a client cancels);
    frames already written stay, and a re-run resumes. ``confine``: as :class:`RotoJob`'s.
    """
    spec = options if isinstance(options, RotoSpec) else RotoSpec.from_dict(options)  # (checked, or plain values)
    job = RotoJob(spec, models, confine)
    progress(0.0, f"Roto: {len(job.frames)} frames of {job.plate.describe()}")
    summary = job.run(progress=lambda p: progress(p.fraction, p.message()))  # "frame 5 of 40 (1005), ..."
    progress(
        1.0,
        f"Roto: {len(summary.computed)} frames computed, {len(summary.skipped)} already done "
        f"-> {job.alpha_out} (frames {format_frames(job.frames)})",
    )
    return []
