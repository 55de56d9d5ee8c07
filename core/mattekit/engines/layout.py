"""Where each stage of a run goes, for :func:`mattekit.engines.plan.decide`: the pipeline's layout (threads per
network call, calls at once, batch, padding, readers and writers: :func:`layout`) for the cores this process may use,
and the torch device of the work that follows the model onto its GPU (the finish of a large photo, roto's temporal
filter: :func:`device_work`). Facts in, numbers and reasons out; :mod:`mattekit.running.layout` reads them."""

from __future__ import annotations

from dataclasses import dataclass

from ..machine import cpu_count


@dataclass(frozen=True)
class Layout:
    """The pipeline's numbers: ``threads`` (CPU threads a network call uses; 0 on a GPU: torch's own), ``workers``
    (network calls at once), ``batch`` (images a call), ``readers`` (decode + input preparation threads), ``writers``
    (finish + encoding threads), ``pad`` (a short batch padded with zero inputs up to ``batch``) and ``why``."""

    threads: int
    workers: int
    batch: int
    readers: int
    writers: int
    pad: bool
    why: str


def layout(entry, kind: str, engine: str) -> Layout:
    """The layout of catalog ``entry`` on a device of ``kind`` ("cpu", "cuda", "mps") with ``engine``.

    CPU: a net on a small fixed input (at most :data:`mattekit.engines.onnx.SHRINK_ABOVE` pixels), or any net on
    torch, runs up to 4 calls at once with the cores shared out (one thread per call on up to 4 cores, where torch's
    CPU engine uses its Winograd kernels; u2netp at 320² on 2 cores: two one-thread calls gave 1.12-1.22x the frames/s
    of one two-thread call); a larger input on ONNX Runtime calls of torch's default thread count (the physical cores,
    :func:`mattekit.engines.threads.default_count`), as many at once as the cores hold. A writer per 4 cores, at least
    one (on 16 cores with one writer, u2netp's folder used 3.9 of them and the finish, a quarter of the CPU time, bound
    the speed); one reader (the network fills the cores).

    GPU: two workers (streams), batches of 8 for fixed-size models, full (one batch shape per input size: one CUDA
    graph, one cuDNN plan; filled by the readers, padded only when a new input size cuts one short; a worker's first
    batch and the run's last at their own size: :func:`mattekit.running.pipeline.run_pipeline`); the cores less two
    as writers (up to 8), since the finish and the encoding then bound the speed; a reader per 4 cores (up to 4: one,
    23 ms an image for BiRefNet on the H200, would cap it near 43 images/s).
    """
    from .onnx import SHRINK_ABOVE
    from .threads import default_count

    size, cores = entry.input.size, cpu_count()
    if kind != "cpu":
        writers, readers = max(1, min(8, cores - 2)), max(1, min(4, cores // 4))
        return Layout(
            0,
            2,
            8 if size is not None else 1,
            readers,
            writers,
            True,
            f"a GPU on {cores} cores: two streams; the cores less two write (up to 8), a reader per 4 cores (up to 4)",
        )
    writers = max(1, cores // 4)
    small = size is not None and size[0] * size[1] <= SHRINK_ABOVE
    if engine == "onnx" and not small:
        threads = default_count()
        workers = max(1, cores // threads)
        return Layout(
            threads,
            workers,
            1,
            1,
            writers,
            False,
            f"{cores} cores: {workers} call(s) of {threads} threads (a large input on ONNX Runtime); "
            f"a writer per 4 cores",
        )
    workers = min(cores, 4)
    return Layout(
        max(1, cores // workers),
        workers,
        1,
        1,
        writers,
        False,
        f"{cores} cores: {workers} calls at once; a writer per 4 cores",
    )


def device_work(device: str) -> tuple[str, str, str, str]:
    """(finish device, why, temporal filter device, why) for a model on ``device``: the model's GPU for both (the
    finish only for photos of 1 MP and up: :func:`mattekit.finish.device.device_of`), "" (the CPU cores' own
    path) elsewhere."""
    if device.split(":")[0] != "cuda":
        where = "the CPU cores' own path: the model is not on a CUDA GPU"
        return "", where, "", where
    return (
        device,
        "the model's GPU for photos of 1 MP and up (H200: 50 MP in 2.15 s against 3.50 s on 16 cores)",
        device,
        "the model's GPU at any size (the CPU's filter: 90-130 ms a 854x480 frame on 2 cores)",
    )
