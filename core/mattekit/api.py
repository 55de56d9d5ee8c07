"""The Python API, one function per registered task, as small as rembg's:

    import mattekit
    cut = mattekit.remove_background("photo.jpg")                  # -> Path of photo_cutout.png
    png = mattekit.remove_background(open("photo.jpg", "rb").read())  # bytes in -> PNG bytes out
    model = mattekit.load_model("u2netp")                          # load once ...
    alpha = mattekit.remove_background(pixels, model=model, result="alpha")  # ... reuse; numpy in -> numpy out

``x`` may be a path (the result is written beside it as the CLI would, or to ``output=``, and its
path returned; the file keeps of the input's metadata only what describes the picture and its rights (no location,
names, serial numbers, ids nor comments) unless ``keep_personal=True``; ``provenance=False`` writes no provenance record: the CLI's
``--keep-personal`` and ``--no-provenance``), bytes of an image file (PNG bytes back, no metadata), a PIL image (a PIL
image back) or a numpy
array (H x W x 3|4 or H x W; uint8 / uint16 / float in [0,1]; the same dtype back). Keyword
arguments are the task's options (``mattekit <task> --help`` lists them) and its other inputs
(``trimap=``, ``mask=``, ``subject=``, ``hint_mask=``..., in any of the same kinds); an option whose value is a
box, points, a shadow, a focus point or frames takes that value as it is, or its text as the CLI takes it:
``box=(x0, y0, x1, y1)`` or ``box="x0,y0,x1,y1"``, ``point=[(x, y), ...]``. A model option may be a name or
a model from :func:`load_model`; models loaded by name are kept for reuse until :func:`clear_models`.

A sequence task takes paths and writes files (:func:`run_sequence`)::

    summary = mattekit.rotoscope("shot/plate.####.exr", "shot/matte.####.png", radius=2, progress=print)
    summary.computed, summary.skipped                              # frames written now, frames already done
"""

from __future__ import annotations

import functools
import io as _bytes_io
import warnings
from pathlib import Path

import numpy as np

from .errors import MattekitError, in_words
from .options import options_of
from .tasks import registry
from .tasks.common import FileOptions

_CACHE = None  # the API's own ModelCache, made on first use


def models_cache():
    """The ModelCache the API functions load named models into."""
    global _CACHE
    if _CACHE is None:
        from .runtime import ModelCache, say_on_stderr

        _CACHE = ModelCache(say=say_on_stderr)
    return _CACHE


def load_model(name: str | None = None, task: str = "segment", device: str = "auto", weights: str | None = None):
    """A loaded model (a ``mattekit.runtime.Predictor``) to pass as ``model=`` (or ``depth_model=``...)."""
    from .options import model_choice

    return models_cache().get(model_choice(name, task), device=device, weights_path=weights)


def clear_models() -> None:
    """Forget the models the API functions loaded by name (frees their memory)."""
    if _CACHE is not None:
        _CACHE.clear()


def _to_array(x, integers: bool = False) -> tuple[np.ndarray, object]:
    """(float32 H x W [x C] in [0,1], how to give the result back) for any supported kind of ``x``;
    with ``integers`` (the task takes stored integers, as the CLI reads them) a uint8 / uint16 H x W x C
    array, or a decoded 8/16-bit image, stays as it is."""
    if isinstance(x, np.ndarray):
        if integers and x.dtype in (np.uint8, np.uint16) and x.ndim == 3:
            return np.ascontiguousarray(x), x.dtype.type
        if x.dtype == np.uint8:
            return x.astype(np.float32) / 255.0, np.uint8
        if x.dtype == np.uint16:
            return x.astype(np.float32) / 65535.0, np.uint16
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"arrays must be uint8, uint16 or float in [0,1], not {x.dtype}")
        return np.clip(x.astype(np.float32), 0.0, 1.0), x.dtype
    from PIL import Image

    if isinstance(x, Image.Image):
        buffer = _bytes_io.BytesIO()
        x.save(buffer, format="PNG")
        return _decode(buffer.getvalue(), integers), "pil"
    if isinstance(x, (bytes, bytearray, memoryview)) or hasattr(x, "read"):
        return _decode(x, integers), "bytes"
    raise TypeError(
        f"expected a path, bytes, a binary file object, a PIL image or a numpy array, not {type(x).__name__}"
    )


def _decode(data, integers: bool = False) -> np.ndarray:
    """The pixels of an image file's bytes, a binary file object or a path, as :func:`mattekit.io.read_image`
    gives them (float32 H x W x 3|4 in [0,1]; uint8/uint16 as stored with ``integers``)."""
    from . import io

    return io.read_image(data, integers=integers).pixels


def _back(result: np.ndarray, kind):
    """The result as the caller's kind of input."""
    if kind in ("pil", "bytes"):
        from PIL import Image

        ints = np.round(np.clip(result, 0.0, 1.0) * 255.0).astype(np.uint8)
        image = Image.fromarray(ints[..., 0] if ints.ndim == 3 and ints.shape[-1] == 1 else ints)
        if kind == "pil":
            return image
        buffer = _bytes_io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    if kind in (np.uint8, np.uint16):
        return np.round(np.clip(result, 0.0, 1.0) * np.iinfo(kind).max).astype(kind)
    return result.astype(kind, copy=False)


def run(
    task_name: str,
    x,
    output: str | Path | None = None,
    keep_personal: bool = False,
    provenance: bool = True,
    overwrite: bool = False,
    **kwargs,
):
    """Run the task ``task_name`` on ``x`` (module docstring) and return its first output in ``x``'s kind.
    ``keep_personal`` / ``provenance``: for a path, what the written file carries; ``overwrite``: an existing output
    mattekit did not write is replaced (:class:`~mattekit.tasks.common.FileOptions`; the old ``strip_personal=`` and
    ``metadata=`` still work, with a DeprecationWarning)."""
    written = file_options(kwargs, keep_personal=keep_personal, provenance=provenance, overwrite=overwrite)
    task = registry.get(task_name)
    ports = {p.name: p for p in task.inputs[1:]}
    given = {k: kwargs.pop(k) for k in list(kwargs) if k in ports and kwargs[k] is not None}
    options = task.make_options(kwargs, host="api")  # a model option holds a loaded model given here
    if isinstance(x, (str, Path)):
        return _run_file(task, Path(x), output, options, given, written)
    image, kind = _to_array(x, integers=task.inputs[0].integers)
    inputs = {"image": image}
    for name, value in given.items():
        plane, _ = _to_array(value) if not isinstance(value, (str, Path)) else (_decode(value), None)
        inputs[name] = plane if ports[name].kind == "image" or plane.ndim == 2 else plane[..., 0]
    from .running.runner import Runner

    models = models_cache().for_task(task, options, set(given))
    result = Runner(task, models, options).arrays(inputs, note=lambda sentence: _warn(task, sentence))
    return _back(result[task.outputs[0].name], kind)


def file_options(kwargs: dict, **values) -> FileOptions:
    """What a written file carries (:class:`~mattekit.tasks.common.FileOptions`) from ``values``, each checked
    (OptionError), and the old keywords popped from ``kwargs``: ``metadata`` (now ``provenance``) and
    ``strip_personal`` (leaving out is the default; False keeps), each with a DeprecationWarning."""
    if "metadata" in kwargs:
        warnings.warn(
            "metadata= is now provenance= (it says whether the provenance record is written).",
            DeprecationWarning,
            stacklevel=4,
        )
        values["provenance"] = kwargs.pop("metadata")
    if "strip_personal" in kwargs:
        warnings.warn(
            "strip_personal= is the default now; keep_personal=True keeps the personal metadata.",
            DeprecationWarning,
            stacklevel=4,
        )
        values["keep_personal"] = values["keep_personal"] or kwargs.pop("strip_personal") is False
    return FileOptions(**{o.name: o.check(values[o.name]) for o in options_of(FileOptions)})


def _warn(task, sentence: str, path: Path | None = None) -> None:
    """A UserWarning of a note on a result (:func:`mattekit.running.runner.transparent_note`), naming the written ``path``
    if any, the options named as Python names them (``box=``)."""
    text = in_words(sentence, task.declared, lambda option: f"{option}=")
    warnings.warn(f"{path}: {text}" if path is not None else text[:1].upper() + text[1:], stacklevel=2)


def _run_file(task, source: Path, output, options, given: dict, written) -> Path:
    """Run ``task`` on the file ``source`` and write its result where :mod:`mattekit.io.naming` puts it (beside it, or
    ``output``); an output that would replace a file the run reads is refused before any model loads. ``written``:
    what the file carries besides its pixels (:class:`~mattekit.tasks.common.FileOptions`)."""
    from . import provenance
    from .io import naming
    from .running.runner import Runner

    out = str(output) if output else None
    paths = {name: str(value) for name, value in given.items() if isinstance(value, (str, Path))}
    suffix = naming.output_suffix(task, options)
    [(_, target)] = naming.plan_outputs(
        [(source, source.parent)],
        out,
        suffix,
        naming.output_extension(task, options, out),
        task.files_read(options, paths),
        api=True,
        overwrite=written.overwrite,
    )
    models = models_cache().for_task(task, options, set(given))
    runner = Runner(
        task,
        models,
        options,
        {name: str(value) for name, value in given.items()},
        provenance.record(task, options, models) if written.provenance else None,
        personal=written.keep_personal,
    )
    result = runner.files([(source, target)], note=lambda pair, sentence: _warn(task, sentence, pair[1]))
    if result.failed:
        raise result.failed[0][1]
    return target


def _make(task_name: str):
    def call(
        x,
        output: str | Path | None = None,
        keep_personal: bool = False,
        provenance: bool = True,
        overwrite: bool = False,
        **options,
    ):
        return run(
            task_name,
            x,
            output=output,
            keep_personal=keep_personal,
            provenance=provenance,
            overwrite=overwrite,
            **options,
        )

    task = registry.get(task_name)
    call.__name__ = call.__qualname__ = task.api_name
    lines = [f"{task.summary}", "", "Options:"] + [_doc_line(o) for o in task.declared if "api" in o.hosts]
    lines += ["", "Of a file written (x a path):"] + [_doc_line(o) for o in options_of(FileOptions)]
    call.__doc__ = "\n".join(lines) + "\n\nSee mattekit.api for the kinds of x and the result."
    return call


def _doc_line(option) -> str:
    """An option's line in an API function's docstring: name, type, default and help."""
    return f"    {option.name} ({option.type.__name__}, default {option.default!r}): {option.help}"


def run_sequence(task_name: str, *paths, progress=None, **kwargs):
    """Run the sequence task ``task_name`` (roto): ``paths`` are its required path options in order
    (roto: ``plate``, ``output``), ``kwargs`` its other options, checked by the declaration (host "api")
    as the CLI's and the worker's are; models load into :func:`models_cache` (kept for the next call).
    ``progress``: called with each progress event (:class:`mattekit.progress.Progress`, also
    ``mattekit.roto.Progress``). Returns the job's summary (:class:`mattekit.roto.Summary`: frames, computed,
    skipped, seconds)."""
    task = registry.sequences()[task_name]
    required = [o.name for o in task.declared if o.required]
    if len(paths) != len(required):
        raise TypeError(
            f"{task.api_name}() takes {len(required)} positional arguments ({', '.join(required)}), not {len(paths)}"
        )
    kwargs |= dict(zip(required, paths))
    table = task.option_table()
    for name, value in list(kwargs.items()):
        if name in table and isinstance(value, Path):
            kwargs[name] = str(value)
    options = task.make_options(kwargs, host="api")
    from .roto import RotoJob  # the one sequence task's job

    try:
        job = RotoJob(options, models_cache())  # the job's own checks, before any model loads
    except MattekitError as exc:  # its sentence names CLI flags: name the arguments instead
        exc.args = (in_words(str(exc), task.declared, lambda name: f"{name}="),)
        raise
    return job.run(progress=progress)


def _make_sequence(task):
    def call(*paths, progress=None, **options):
        return run_sequence(task.name, *paths, progress=progress, **options)

    required = [o.name for o in task.declared if o.required]
    call.__name__ = call.__qualname__ = task.api_name
    lines = [f"{task.api_name}({', '.join(required)}, progress=None, **options): {task.summary}", "", "Options:"]
    lines += [_doc_line(o) for o in task.declared if "api" in o.hosts and not o.required]
    call.__doc__ = "\n".join(lines) + "\n\nReturns the job's summary; see mattekit.api.run_sequence."
    return call


@functools.lru_cache(maxsize=1)
def functions() -> dict:
    """{API function name: function} for every registered task, image tasks and sequence tasks (made once;
    ``mattekit.<name>`` looks here)."""
    found = {task.api_name: _make(task.name) for task in registry.tasks().values()}
    return found | {task.api_name: _make_sequence(task) for task in registry.sequences().values()}
