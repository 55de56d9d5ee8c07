"""``mattekit roto --ray``: chunks on a local Ray cluster give the same files as one local run, resumably."""

from __future__ import annotations

import dataclasses

import pytest

from mattekit import catalog, roto
from plates import MODEL, make_plate
from roto_runs import files_of, spec

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # a local Ray cluster and a roto run: ~50 s on a busy 2-core machine


@pytest.fixture(scope="module")
def local_ray(shared, tmp_path_factory):
    """A local Ray instance of two worker CPUs and two GPUs (declared: Ray schedules them, torch here has no CUDA;
    weights from the shared mirror), shut down afterwards."""
    import tempfile

    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    env = {"MATTEKIT_MIRROR": str(shared / "weights"), "MATTEKIT_HOME": str(tmp_path_factory.mktemp("ray_home"))}
    ray.init(
        num_cpus=2,
        num_gpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        _temp_dir=temp,
        runtime_env={"env_vars": env},
    )
    yield
    ray.shutdown()
    import shutil

    shutil.rmtree(temp, ignore_errors=True)


def test_roto_on_ray_matches_local_run(shared, tmp_path, monkeypatch, local_ray):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    plate = make_plate(shared, tmp_path / "plate", 7)
    roto.RotoJob(spec(plate, str(tmp_path / "local" / "m.####.png"), radius=2)).run()

    events = []
    summary = roto.run_on_ray(
        spec(plate, str(tmp_path / "ray" / "m.####.png"), radius=2), chunk=3, workers=2, progress=events.append
    )
    assert summary.computed == list(range(1001, 1008)) and not summary.skipped
    assert files_of(tmp_path / "ray") == files_of(tmp_path / "local")
    assert events and events[-1].done == 7
    journals = list((tmp_path / "ray" / ".m.mattekit-journal").glob("*.jsonl"))
    assert 1 <= len(journals) <= 3  # written by the workers, one journal per chunk run

    # resumable the same way: remove two frames, run again, only they are computed
    (tmp_path / "ray" / "m.1002.png").unlink()
    (tmp_path / "ray" / "m.1006.png").write_bytes(b"half-written")
    again = roto.run_on_ray(spec(plate, str(tmp_path / "ray" / "m.####.png"), radius=2), chunk=3, workers=2)
    assert again.computed == [1002, 1006] and len(again.skipped) == 5
    assert files_of(tmp_path / "ray") == files_of(tmp_path / "local")


def test_roto_on_ray_gives_each_worker_a_gpu_and_says_when_the_model_ran_on_the_cpu(
    shared, tmp_path, monkeypatch, local_ray
):
    """With the device on auto and GPUs in the cluster, each worker reserves one GPU (and its share of the CPUs), and
    three workers share the two GPUs rather than one of them waiting for a third GPU forever. Torch here has no CUDA,
    so the workers ran the model on the CPU: the files are a local run's, and the run says where the model ran (each
    worker keeps its model from chunk to chunk: its cache is what it reports)."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    plate = make_plate(shared, tmp_path / "plate", 5)
    roto.RotoJob(spec(plate, str(tmp_path / "local" / "m.####.png"))).run()
    for workers, placement in (
        (None, "2 worker(s), each 1 GPU and 1 CPU"),
        (3, "3 worker(s), each 0.5 GPU and 0.5 CPU"),
    ):
        said = []
        out = tmp_path / f"ray-{workers}"
        job = dataclasses.replace(spec(plate, str(out / "m.####.png")), device="auto")
        summary = roto.run_on_ray(job, chunk=2, workers=workers, say=said.append)
        assert summary.placement == f"on Ray: {placement}"
        assert summary.computed == list(range(1001, 1006))
        assert files_of(out) == files_of(tmp_path / "local")
        gpu = placement.split("each ")[1].split(" GPU")[0]
        assert said and said[0].startswith(f"mattekit: warning: Ray gave each worker {gpu} GPU, but ")
        assert "worker(s) ran the model on the CPU (torch there sees no CUDA GPU" in said[0]


def test_recurrent_roto_on_ray_warms_each_chunk_up(shared, tmp_path, monkeypatch, local_ray):
    """A Ray task of a recurrent model (rvm-people) runs the catalog's warm-up before its chunk, as a local
    chunk does: on a plate no longer than the warm-up, chunks of 3 give one local run's bytes (a chunk that
    started with a fresh state would not: tests/unit/roto/test_roto_people.py)."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    plate = make_plate(
        shared, tmp_path / "plate", min(7, catalog.load().get("rvm-people").warmup + 1), sequence="breakdance"
    )

    def rvm(output: str) -> roto.RotoSpec:
        return roto.RotoSpec(plate=plate, output=output, model="rvm-people", device="cpu", threads=1, temporal=False)

    roto.RotoJob(rvm(str(tmp_path / "local" / "m.####.png"))).run()
    summary = roto.run_on_ray(rvm(str(tmp_path / "ray" / "m.####.png")), chunk=3, workers=2)
    assert len(summary.computed) == len(files_of(tmp_path / "local")) and not summary.skipped
    assert files_of(tmp_path / "ray") == files_of(tmp_path / "local")


def test_ray_cli_reports_errors_in_one_sentence(shared, tmp_path, monkeypatch, capsys, local_ray):
    from mattekit import cli

    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    plate = make_plate(shared, tmp_path / "plate", 2)
    code = cli.main(["roto", plate, "-o", str(tmp_path / "out"), "--frames", "1001-1003", "--model", MODEL, "--ray"])
    assert code == 2
    assert "1 frame(s) of" in capsys.readouterr().err
