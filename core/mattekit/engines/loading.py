"""A catalog model's pieces as the engines need them: its weights file, its net loaded with them, its ONNX export's
recipe; and :func:`measure_engines`, the first-use timing of both CPU engines that
:func:`mattekit.engines.plan.decide` asks for where no table has the model."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import nets, weights
from ..catalog import ModelEntry
from ..errors import MattekitError
from . import threads


def weights_file(entry: ModelEntry, weights_path: str | Path | None = None) -> Path:
    """The weights file ``entry`` loads: the one given, else the catalog's (fetched and verified on first use)."""
    return weights.given_file(weights_path) if weights_path else weights.model_file(entry.name, entry.files)


def export_recipe(entry: ModelEntry, path: Path) -> dict:
    """The keyword arguments that identify and shape ``entry``'s ONNX export (:func:`mattekit.engines.create`)."""
    example = entry.input.net_size(64, 64)
    return dict(index=entry.output.index, weights_path=path, recipe={"net": entry.net, "kwargs": entry.kwargs},
                example=tuple(-(-v // entry.pad_multiple) * entry.pad_multiple for v in example),
                dynamic_size=entry.input.size is None)


def _empty_net(entry: ModelEntry, path: Path):
    """``entry``'s net built on the meta device (its layers' random initialisation skipped: BiRefNet's took 1.7 s
    of a 5 s load), or None where its weights could not fill it all: an .onnx release (mapped through a traced net),
    a net holding a non-persistent buffer or a plain tensor attribute made in a constructor."""
    import torch

    if path.suffix.lower() == ".onnx":
        return None
    try:
        with torch.device("meta"):
            net = nets.build(entry.net, **entry.kwargs)
    except Exception:  # noqa: BLE001 - a constructor that reads its own tensors' values: built as before
        return None
    for module in net.modules():  # a tensor no state dict fills: a non-persistent buffer, a plain attribute
        if module._non_persistent_buffers_set:
            return None
        for name, value in vars(module).items():
            if name in ("_parameters", "_buffers", "_modules"):
                continue
            values = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else (value,)
            if any(isinstance(v, torch.Tensor) for v in values):
                return None
    return net


def load_net(entry: ModelEntry, path: Path):
    """``entry``'s net (eval mode, fp32, CPU) with the weights at ``path``; one sentence when they do not fit. The
    checkpoint's tensors (cast to fp32 where they are not) become the parameters themselves: no second copy, and no
    random initialisation where the net can be built empty (:func:`_empty_net`)."""
    import torch

    empty = _empty_net(entry, path)
    net = empty if empty is not None else nets.build(entry.net, **entry.kwargs)
    try:
        state = weights.load_state_dict_file(path, net, nets.family(entry.net).trace)
        fp32 = all(t.dtype is torch.float32 for t in state.values() if t.is_floating_point())
        if empty is not None and not fp32:
            state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        net.load_state_dict(state, strict=True, assign=fp32 or empty is not None)
        del state
    except (RuntimeError, ValueError, OSError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MattekitError(f"Weights file {path.name} does not fit model '{entry.name}' ({first[:160]}).") from None
    return net.eval()


def build(entry: ModelEntry, plan):
    """(the engine ``plan`` names for ``entry``, the plan as built, the weights file): the weights fetched and checked
    (:func:`weights_file`), then :func:`mattekit.engines.create`; weights that are an ONNX release whose layers the
    net does not take (rembg's BiRefNet files: the catalog's ``onnx_as_is``) run as they are, on ONNX Runtime on the
    CPU (the catalog's pre- and postprocessing apply either way), and the plan returned says so
    (:func:`mattekit.engines.plan.release_as_is`)."""
    from .. import engines
    from .plan import release_as_is

    path = weights_file(entry, plan.weights or None)
    made = export_recipe(entry, path)
    exported = plan.engine == "onnx" and engines.onnx_export_path(**made).is_file()  # then not a release as it is
    if path.suffix.lower() == ".onnx" and not exported and entry.onnx_as_is:
        return engines.from_onnx_file(path), release_as_is(plan, entry), path
    return engines.create(plan, lambda: load_net(entry, path), label=entry.name, **made), plan, path


def measure_engines(entry: ModelEntry, weights_path: str | Path | None = None) -> dict:
    """Time ``entry``'s two CPU engines here (fp32, one thread, turn by turn, CPU seconds: torch warmed on a 64 x 64
    input and ONNX Runtime by its first call, then the least of the timed calls, at least one of torch's and two of
    ONNX Runtime's, at its input for a 1024 x 768 photo shrunk (to multiples of 32) to at most
    :data:`mattekit.engines.choice.MEASURE_PIXELS`), save the row under this machine's fingerprint and return it (with
    "cost_s", the wall seconds the measurement took, "load_s" and "export_s", those of them that loaded the net and
    made the ONNX export where it was not cached; "export_kept": the export is the one the ONNX engine runs from
    then on, the model's input being no larger). Loads the model once; a fixed-size model larger than that is measured on a dynamic export of its net,
    kept in the export cache. Said on standard error, with its cost beyond what the first load takes anyway."""
    import time

    from ..progress import Display

    start = time.perf_counter()
    from . import choice

    display = Display()
    with display.ticking(f"measuring torch and ONNX Runtime for {entry.name} once on this CPU "
                         "(cached; `mattekit doctor --measure` measures again)"):
        row = _timed_engines(entry, weights_path)
    row["cost_s"] = round(time.perf_counter() - start, 2)
    exported = row["export_kept"] and choice.winner(row) == "onnx"  # the export its ONNX engine runs from now on
    anyway = row["load_s"] + (row["export_s"] if exported else 0.0)  # what its first load takes without measuring
    display.note(f"measured {entry.name}'s engines in {row['cost_s'] - anyway:.1f} s ({choice.winner(row)}, "
                 f"{row['ratio']:.2f}x), beyond the {anyway:.1f} s of loading{' and exporting' if exported else ''}"
                 " it that its first use takes anyway.")
    choice.save({entry.name: row})
    return row


def _timed_engines(entry, weights_path: str | None) -> dict:
    """The measurement row of :func:`measure_engines` (without its cost)."""
    import time

    from .. import engines
    from ..machine import cpu_info
    from .choice import MEASURE_PIXELS

    h, w = entry.input.net_size(768, 1024)
    scale = min(1.0, (MEASURE_PIXELS / (h * w)) ** 0.5)  # shrunk: sides of multiples of 32, which these nets take
    size = (h, w) if scale == 1.0 else tuple(max(32, int(v * scale) // 32 * 32) for v in (h, w))
    begin = time.perf_counter()
    path = weights_file(entry, weights_path)
    net, made = load_net(entry, path), export_recipe(entry, path)
    load_s = time.perf_counter() - begin
    own = engines.onnx_export_path(**made)  # the export its ONNX engine runs
    if size != (h, w):
        made.update(example=size, dynamic_size=True)
    begin = time.perf_counter()
    onnx = engines.onnx_engine(lambda: net, label=entry.name, **made)  # its export made once, kept for later runs
    if not own.is_file():  # a fixed-size net larger than the measurement's input: its fixed export, made from this one
        fixed_dims(onnx.path, own, (h, w))
    export_s = time.perf_counter() - begin
    torch_engine = engines.build_torch(net, "cpu", "fp32", made["index"])
    x = np.random.default_rng(0).random((1, 3) + size, dtype=np.float32) * 2 - 1
    previous = threads.count()
    threads.set_count(1)
    seconds = {"torch": [], "onnx": []}
    try:
        import torch

        torch_engine(torch.from_numpy(x[:, :, :64, :64].copy()))  # its one-time costs, on a small input
        calls = {"torch": lambda: torch_engine(torch.from_numpy(x)), "onnx": lambda: onnx(x)}

        def timed(name: str) -> float:
            begin = time.thread_time()
            calls[name]()
            seconds[name].append(time.thread_time() - begin)
            return seconds[name][-1]

        spent = sum(timed(name) for name in ("onnx", "torch", "onnx"))  # ONNX Runtime's first call: its warm-up
        while spent < 0.5 and len(seconds["torch"]) < 4:  # a fast net: more turns, while under half a second
            spent += timed("torch") + timed("onnx")
    finally:
        threads.set_count(previous)
    torch_s, onnx_s = min(seconds["torch"]), min(seconds["onnx"])
    info = cpu_info()
    return {"torch_s": round(torch_s, 5), "onnx_s": round(onnx_s, 5), "ratio": round(torch_s / onnx_s, 3),
            "input": list(size), "load_s": round(load_s, 2), "export_s": round(export_s, 2), "export_kept": own.is_file(), "measured": time.strftime("%Y-%m-%d"),
            "machine": info[0] if info else ""}


def fixed_dims(dynamic: Path, fixed: Path, size: tuple[int, int]) -> Path:
    """Write ``dynamic`` (an export whose batch, height and width are dynamic) to ``fixed`` with its input fixed at
    1 x 3 x ``size`` (H, W pixels): the static graph of the same net, without tracing it again; ONNX Runtime folds
    its shape arithmetic at that size as it does a static export's."""
    import onnx

    from ..fsutil import atomic_write

    model = onnx.load(str(dynamic))
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, (1, 3) + tuple(size)):
        dim.dim_value = value
    for dim in model.graph.output[0].type.tensor_type.shape.dim[:1]:
        dim.dim_value = 1
    atomic_write(fixed, lambda tmp: onnx.save(model, str(tmp)))
    return fixed
