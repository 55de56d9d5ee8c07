"""The worker's operations, generated from the task registry, and their pixel codec.

One operation per registered task (:func:`mattekit.tasks.registry.tasks`), same name, same ports
and options: options are checked by ``task.make_options(values, host="worker")``; the models a run
needs (``task.models_needed``) come from the worker's own :class:`mattekit.runtime.ModelCache`;
:class:`mattekit.running.runner.Runner` does the work. The sequence task (``roto``, :func:`registry.sequences
<mattekit.tasks.registry.sequences>`) is an operation without pixels: frame sequences travel as paths and its
job's operation (:func:`mattekit.roto.run_operation`) reads and writes the files itself, inside
the folders the user allowed (:class:`PathPolicy`).

Pixels: inputs arrive as float32 in [0,1] (H x W x C for "image" ports, H x W for the others;
straight alpha, sRGB), named by port (``"name"`` in each input's description) or, without names,
in port order; outputs go back in ``task.outputs`` order (absent ones skipped), each named, in
the request's dtype.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..io import colour
from ..errors import InputError, MattekitError, in_words
from ..io.picture import check_size
from ..progress import Reporter
from ..ops.pixels import finite
from ..options import OptionError
from ..tasks.registry import Port, SequenceTask, Task, sequences, tasks
from ..wire import protocol
from ..wire.protocol import ProtocolError

Progress = Callable[[float, str], None]


# ---------------------------------------------------------------- operations


@dataclass(frozen=True)
class Operation:
    """A worker operation: pixel ports, option checking, and the run.

    make_options(values) -> options (OptionError with one sentence); run(models, inputs, options,
    progress, warn=None) -> ({output name: array}, the provenance record of the outputs or None), ``inputs``
    {port name: array or None}, ``warn(sentence)``: a note on the result for the answer's ``warnings`` (in the
    CLI's words, see :func:`worker_words`); describe() -> schema.
    """

    name: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    make_options: Callable[[dict], Any]
    run: Callable[[Any, dict, Any, Progress], tuple]  # (the worker's runtime.ModelCache, inputs, options, progress)
    describe: Callable[[], dict]


def from_task(task: Task) -> Operation:
    """The worker operation of one registered task."""

    def run(
        models, inputs: dict, options, progress: Progress, warn: Callable[[str], None] | None = None
    ) -> tuple[dict, dict]:
        from .. import provenance
        from ..running.runner import Runner

        present = {name: array for name, array in inputs.items() if array is not None}
        given = {p.name for p in task.inputs if p.optional and p.name in present}
        needed = models.for_task(task, options, given)  # the worker's own cache: loaded once
        progress(0.1, f"Running {task.name}")

        tiles = Reporter(
            lambda event: progress(0.1 + 0.88 * event.fraction, event.message()), 0, "tile"
        )  # "tile 3 of 12, 0.80 tiles/s, ETA 0:11"
        found = Runner(task, needed, options).arrays(present, steps=tiles.steps, note=warn)
        return found, provenance.record(task, options, needed)

    return Operation(
        task.name,
        task.inputs,
        task.outputs,
        lambda values: task.make_options(values, host="worker"),
        run,
        lambda: task.describe("worker"),
    )


# ---------------------------------------------------------------- roto: paths in, files out


class PathPolicy:
    """Where roto may read plates and write mattes.

    A path is refused when it has a ``..`` component, and unless it lies (after resolving
    symbolic links) inside one of ``allowed`` folders: those named with ``mattekit serve
    --allow-dir`` and in $MATTEKIT_ALLOW_DIRS (os.pathsep-separated). With none named, the
    default is the user's home folder minus its hidden folders (``~/.ssh``, ``~/.config``, ...),
    so that a client holding the token cannot read or write system or configuration files.
    A roto job asks it again where it writes each file (a :class:`mattekit.fsutil.Confinement`).
    """

    def __init__(self, allowed: list[str] | None = None):
        named = list(allowed or []) + [p for p in os.environ.get("MATTEKIT_ALLOW_DIRS", "").split(os.pathsep) if p]
        self.home_default = not named
        folders = named or [os.path.expanduser("~")]
        self.allowed = [os.path.realpath(os.path.expanduser(p)) for p in folders]
        self.where = (
            "your home folder (hidden folders excluded)"
            if self.home_default
            else "the allowed folders " + ", ".join(self.allowed)
        )  # the folders, in a sentence

    def holds(self, real: str) -> bool:
        """Whether the real path ``real`` (links resolved) lies in an allowed folder (not in a hidden one of home)."""
        for folder in self.allowed:
            if real == folder or real.startswith(folder.rstrip(os.sep) + os.sep):
                inner = os.path.relpath(real, folder).split(os.sep)
                if not (self.home_default and any(part.startswith(".") and part != "." for part in inner)):
                    return True
        return False

    def check(self, field_name: str, path: str) -> None:
        """OptionError unless ``path`` (a pattern, file or folder; it need not exist yet) is allowed (an option
        naming several, such as roto's hint masks, has each checked: :meth:`mattekit.options.Option.paths`)."""
        if "\0" in path:  # before os.path reads it (its ValueError is Python's text, not the user's sentence)
            raise OptionError(f"Option '{field_name}' holds a null character, which no file name or text may hold.")
        parts = path.replace("\\", "/").split("/")
        if ".." in parts:
            raise OptionError(f"Option '{field_name}' must not contain '..' ({path!r}).")
        if not os.path.isabs(os.path.expanduser(path)):
            raise OptionError(f"Option '{field_name}' must be an absolute path, not {path!r}.")
        if self.holds(os.path.realpath(os.path.expanduser(path))):
            return
        raise OptionError(
            f"Option '{field_name}' names {path!r}, outside {self.where}; start the worker with "
            f"'mattekit serve --allow-dir FOLDER' to allow another folder."
        )


def sequence_operation(task: SequenceTask, paths: PathPolicy) -> Operation:
    """The operation of a sequence task (roto): no pixel inputs or outputs; its path options confined by
    ``paths``; its options checked by the declaration (host "worker"), the job run by roto's operation."""
    from ..roto import RotoJob, run_operation  # the one sequence task's job

    table = {o.name: o for o in task.declared if "worker" in o.hosts}
    path_options = [name for name, o in table.items() if o.path]  # confined by ``paths``
    space_options = [name for name, o in table.items() if o.parse == "mattekit.io.colour:check_colorspace"]

    def make_options(values: dict):
        for name in space_options:  # NAME@CONFIG names a file: an OCIO config file anywhere (Blender's own is
            config = colour.named_config(values[name]) if isinstance(values.get(name), str) else ""
            if config and not os.path.isfile(config):  # outside), else confined (the same sentence, found or not)
                paths.check(name, config)
        checked = task.make_options(values, host="worker")  # the path options' parse reads text, no file
        for name in path_options:  # every path the request names is confined before anything opens it
            for path in table[name].paths(getattr(checked, name)):
                paths.check(name, path)
        try:  # the job's own checks (plate, frames, outputs, hints), no model loaded: refused before it is queued
            for name in space_options:  # what the config reads: beside it or in the allowed folders (colour.confine)
                colour.confine(getattr(checked, name) or "", paths.holds, getattr(checked, "view", None))
            RotoJob(checked)
        except MattekitError as exc:  # its sentence names CLI flags: name the options as the dialogs do
            raise OptionError(worker_words(task.name, str(exc))) from None
        return checked

    def run(models, inputs: dict, options, progress: Progress, warn=None) -> tuple[dict, None]:
        run_operation(options, progress, models, confine=paths)  # checked again as files are written
        return {}, None  # the files written and their manifest carry the provenance

    def describe() -> dict:
        described = task.describe("worker")
        described["summary"] += " No pixel inputs: the worker reads and writes the files."
        return described | {"paths": path_options}

    return Operation(task.name, (), (), make_options, run, describe)


def worker_words(name: str, message: str) -> str:
    """``message``, a sentence in the CLI's words, with the flags of operation ``name``'s options named as the
    API names them (``option 'device'``); unchanged for an operation of no registered task."""
    task = tasks().get(name) or sequences().get(name)
    return in_words(message, task.declared, lambda option: f"option '{option}'") if task else message


def build(paths: PathPolicy) -> dict[str, Operation]:
    """Every operation this worker offers: one per registered task, image tasks and sequence tasks (roto)."""
    found = {name: from_task(task) for name, task in tasks().items()}
    found |= {name: sequence_operation(task, paths) for name, task in sequences().items()}
    return found


def schema(offered: dict[str, Operation], models) -> dict:
    """What ``GET /v1/operations`` answers (and installers record): every operation's description and the
    model menus (``models``: the worker's ModelCache, for which models are loaded)."""
    return {"operations": [op.describe() for op in offered.values()], "models": model_menus(models)}


def model_menus(models) -> dict[str, list[dict]]:
    """{catalog task: [{"name", "description", "licence", "notice", "default", "cached", "loaded"}]} for dialogs
    (notice: the licence notice, or that the weights were published with none; default: the user's pin first)."""
    from .. import catalog, settings, weights

    cat = catalog.load()
    config = str(settings.config_path())
    loaded = {predictor.name for predictor in models.loaded()}
    menus: dict[str, list[dict]] = {}
    for m in cat.models.values():
        menus.setdefault(m.task, []).append(
            {
                "name": m.name,
                "description": m.description,
                "licence": m.licence,
                "notice": m.notice or cat.unlicensed_notice(m, config),
                "default": cat.defaults.get(m.task) == m.name,
                "cached": weights.is_cached(m.weights),
                "loaded": m.name in loaded,
            }
        )
    return menus


# ---------------------------------------------------------------- pixels in and out


def _ports_of(op: Operation, metas: Any) -> list[Port]:
    """The port each input description is for: by its "name", or (no names at all) in port order."""
    ports = {p.name: p for p in op.inputs}
    listed = ", ".join(p.name + (" (optional)" if p.optional else "") for p in op.inputs) or "none"
    if not isinstance(metas, list) or not all(isinstance(m, dict) for m in metas):
        raise ProtocolError("bad_meta", f"Operation '{op.name}' takes a list of pixel inputs: {listed}.")
    names = [m.get("name") for m in metas]
    if not all(name is None or isinstance(name, str) for name in names):
        raise ProtocolError("bad_meta", f"An input's name must be text, one of: {listed}.")
    if all(name is None for name in names):
        if len(metas) > len(op.inputs):
            raise ProtocolError("bad_meta", f"Operation '{op.name}' takes these pixel inputs: {listed}.")
        chosen = list(op.inputs[: len(metas)])
    else:
        if any(n not in ports for n in names) or len(set(names)) != len(names):
            raise ProtocolError("bad_meta", f"Name each pixel input once, from: {listed} (got {names!r}).")
        chosen = [ports[n] for n in names]
    missing = [p.name for p in op.inputs if not p.optional and p not in chosen]
    if missing:
        raise ProtocolError(
            "bad_meta", f"Operation '{op.name}' needs the pixel input(s) {', '.join(missing)}; it takes: {listed}."
        )
    return chosen


def _channels_held(port: Port, channels: int) -> int:
    """The channels an input is decoded to: grey (with alpha) becomes RGB(A) for a port that wants colour."""
    return channels + 2 if channels in (1, 2) and channels not in port.channels and 3 in port.channels else channels


def pixel_sizes(op: Operation, metas: Any) -> tuple[int, int]:
    """(bytes the body must hold, bytes of float32 the decoded inputs will take) of the inputs described,
    checked (ProtocolError: bad_meta, too_many_pixels) before any body is read: an input larger than the pixel
    budget the CLI keeps to (:func:`mattekit.io.picture.check_size`, ``MATTEKIT_MAX_PIXELS``) is refused in the CLI's
    words."""
    body = held = 0
    for port, meta in zip(_ports_of(op, metas), metas):
        try:
            width, height, channels, dtype = protocol.check_pixels(meta, port.name)
            check_size(f"input '{port.name}'", width, height)
        except InputError as exc:
            raise ProtocolError("too_many_pixels", str(exc)) from None
        body += protocol.byte_size(width, height, channels, dtype)
        held += protocol.byte_size(width, height, _channels_held(port, channels), "f32")
    return body, held


def decode_inputs(op: Operation, metas: Any, body: bytes) -> dict:
    """Raw bytes -> {port name: float32 array in [0,1]} ("image": H x W x C, others H x W; None if left out)."""
    chosen = _ports_of(op, metas)
    views = protocol.split_body(metas, body, [p.name for p in chosen])
    arrays: dict[str, np.ndarray | None] = {p.name: None for p in op.inputs}
    first = None
    for port, meta, view in zip(chosen, metas, views):
        width, height, channels, dtype = protocol.check_pixels(meta, port.name)
        spec = protocol.DTYPES[dtype]
        pixels = np.frombuffer(view, spec.code).reshape(height, width, channels)
        if spec.scale != 1.0:
            pixels = pixels.astype(np.float32) / np.float32(spec.scale)
        else:
            pixels = finite(pixels.astype(np.float32), 0, 1)
        if _channels_held(port, channels) != channels:
            pixels = np.concatenate([np.repeat(pixels[..., :1], 3, axis=2), pixels[..., 1:]], axis=2)
        if pixels.shape[2] not in port.channels:
            allowed = " or ".join(map(str, port.channels))
            raise ProtocolError("bad_meta", f"Input '{port.name}' must have {allowed} channel(s), not {channels}.")
        if first is None:
            first = (port.name, width, height)
        elif (width, height) != first[1:]:
            raise ProtocolError(
                "bad_meta",
                f"Input '{port.name}' is {width} x {height} pixels but '{first[0]}' is "
                f"{first[1]} x {first[2]}; all inputs of one request must have the same size.",
            )
        arrays[port.name] = pixels if port.kind == "image" else pixels[..., 0]
    return arrays


def encode_outputs(
    op: Operation, outputs: dict, dtype: str, provenance: dict | None = None, warnings: list[str] = ()
) -> tuple[dict, bytes]:
    """{output name: float array in [0,1], H x W or H x W x C} -> the answer's description
    ({"outputs": [meta per output], "provenance": record, "warnings": [sentence...] when any}, for the
    X-Mattekit-Meta header) and bytes, in ``op.outputs`` order."""
    spec = protocol.DTYPES[dtype]
    metas, chunks = [], []
    for port in op.outputs:
        array = outputs.get(port.name)
        if array is None:
            continue
        array = np.asarray(array, np.float32)
        if array.ndim == 2:
            array = array[..., None]
        if spec.scale != 1.0:
            array = np.rint(np.clip(array, 0.0, 1.0) * np.float32(spec.scale))
        chunks.append(np.ascontiguousarray(array, spec.code).tobytes())
        metas.append(
            {
                "name": port.name,
                "width": int(array.shape[1]),
                "height": int(array.shape[0]),
                "channels": int(array.shape[2]),
                "dtype": dtype,
            }
        )
    head = (
        {"outputs": metas}
        | ({"provenance": provenance} if provenance else {})
        | ({"warnings": list(warnings)} if warnings else {})
    )
    return head, protocol.join_body(chunks)
