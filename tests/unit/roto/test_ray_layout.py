"""How ``mattekit roto --ray`` spreads its workers over a cluster (:func:`mattekit.roto.ray.layout`): one per GPU with
the CPUs beside it, workers beyond the GPUs sharing them, CPU workers where the device or the cluster says so, and
every reservation fitting the nodes (an actor that never fits waits forever, and its chunk with it)."""

from __future__ import annotations

import random

import pytest

from mattekit.errors import MattekitError
from mattekit.roto.ray import Layout, layout


def node(cpus: float, gpus: int = 0) -> dict:
    return {"CPU": float(cpus), **({"GPU": float(gpus)} if gpus else {}), "memory": 1e10}


def fits(nodes: list[dict], plan: Layout) -> bool:
    """Every worker of ``plan`` placed at once: per node, as many as its CPUs hold, and as its GPUs hold (fractions
    of one GPU are packed on that GPU, as Ray packs them)."""
    room = 0
    for n in nodes:
        by_cpu = int(n.get("CPU", 0) / plan.cpus + 1e-9) if plan.cpus else 10**9
        by_gpu = int(n.get("GPU", 0)) * int(1 / plan.gpus + 1e-9) if plan.gpus else 10**9
        room += min(by_cpu, by_gpu)
    return room >= plan.workers


def test_one_worker_per_gpu_with_the_cpus_beside_it():
    plan = layout([node(16, 1)], "auto", None, None, chunks=40)
    assert plan == Layout(workers=1, cpus=16.0, gpus=1.0, device="auto", threads=16)
    plan = layout([node(64, 8), node(64, 8), node(4)], "auto", None, None, chunks=40)
    assert (plan.workers, plan.cpus, plan.gpus, plan.threads) == (16, 8.0, 1.0, 8)  # the CPU-only node idles
    assert plan.describe() == "16 worker(s), each 1 GPU and 8 CPU"


def test_workers_beyond_the_gpus_share_them_and_never_wait_for_one():
    plan = layout([node(16, 1)], "auto", 3, None, chunks=40)
    assert (plan.workers, plan.gpus, plan.cpus, plan.threads) == (3, 0.3333, 5.0, 5)
    plan = layout([node(2, 1)], "auto", 4, None, chunks=40)  # fewer CPUs than workers: fractions of a CPU
    assert (plan.gpus, plan.cpus, plan.threads) == (0.25, 0.5, 1) and fits([node(2, 1)], plan)


def test_the_device_asked_for_decides_before_the_cluster():
    cluster = [node(16, 2)]
    cpu = layout(cluster, "cpu", None, 4, chunks=40)  # --device cpu on a GPU cluster: CPU workers, no GPU asked
    assert (cpu.workers, cpu.cpus, cpu.gpus, cpu.device, cpu.threads) == (4, 4.0, 0.0, "cpu", 4)
    cuda = layout(cluster, "cuda:1", None, None, chunks=40)  # a worker sees its own GPU only: cuda
    assert (cuda.workers, cuda.gpus, cuda.device) == (2, 1.0, "cuda")
    with pytest.raises(MattekitError, match="needs GPUs, and the cluster has none"):
        layout([node(16)], "CUDA", None, None, chunks=40)
    auto = layout([node(16)], "auto", None, None, chunks=40)  # no GPUs: a worker per CPU, on the CPU
    assert (auto.workers, auto.cpus, auto.gpus, auto.device) == (16, 1.0, 0.0, "cpu")


def test_no_more_workers_than_chunks():
    assert layout([node(64, 8)], "auto", None, None, chunks=3).workers == 3
    assert layout([node(64, 8)], "auto", None, None, chunks=3).cpus == 8.0  # a GPU's share, not more
    assert layout([node(8)], "cpu", 20, None, chunks=2).workers == 2


def test_every_layout_fits_the_cluster_at_once():
    """On random clusters (CPU-only and GPU nodes of any size) and any asked workers and threads, every worker's
    reservation fits the nodes at once, and GPU workers reserve a GPU or an equal share of one."""
    rng = random.Random(69)
    for _ in range(3000):
        cluster = [
            node(rng.choice([1, 2, 3, 4, 6, 8, 12, 16, 48, 64, 96, 128]), rng.choice([0, 0, 1, 2, 3, 4, 8]))
            for _ in range(rng.randint(1, 4))
        ]
        device = rng.choice(["auto", "cpu", "cuda", "mps"])
        workers, threads = rng.choice([None, 1, 2, 3, 5, 8, 17, 40]), rng.choice([None, 1, 2, 4, 7, 16])
        chunks = rng.randint(1, 60)
        gpus = sum(int(n.get("GPU", 0)) for n in cluster)
        if device == "cuda" and not gpus:
            with pytest.raises(MattekitError):
                layout(cluster, device, workers, threads, chunks)
            continue
        plan = layout(cluster, device, workers, threads, chunks)
        assert 1 <= plan.workers <= chunks and plan.threads >= 1
        assert plan.workers == min(workers, chunks) if workers else True
        assert fits(cluster, plan), (cluster, device, workers, threads, chunks, plan)
        on_gpus = gpus > 0 and device in ("auto", "cuda")
        assert (plan.gpus > 0) == on_gpus
        if on_gpus:
            assert plan.gpus == 1.0 if plan.workers <= gpus else plan.gpus < 1.0
        elif threads and workers is None:
            assert plan.cpus == threads or plan.workers == 1
