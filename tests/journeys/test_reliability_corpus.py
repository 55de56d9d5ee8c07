"""Bad, big and hostile input: a corpus generated here (never committed, tests/helpers/hostile_corpus.py) of
malformed, tiny, huge-declared and exotic images, run through every CLI task in subprocesses under an address-space
cap (RLIMIT_AS, as ``ulimit -v``; tests/helpers/capped_runs.py), asserting for each run: success or one
``mattekit: error:`` line, no traceback, no other noise, no hang, inputs unchanged.

Two folder runs over a handful of files; then the full corpus: one run per task over all of it (each file's outcome
read from that run's lines), each bad file alone once, and it prints per task the files tried, succeeded, clean
errors, tracebacks, hangs and the run's peak RSS. All ``slow``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from capped_runs import CAP, TASK_ARGS, Run, _env, _mattekit, check_single, lines, noise, run_capped
from hostile_corpus import _hashes, _listed, make_corpus


FAST = {
    "photo.png",
    "strip_2x3000.png",
    "animated.webp",
    "empty.png",
    "truncated.png",
    "declared_65535x65535.png",
    "display_60000x60000.exr",
    "folder.png",
}


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
@pytest.mark.needs_data
@pytest.mark.parametrize("task", ["remove", "enhance"])
def test_a_folder_of_hostile_files_under_the_cap(task, tmp_path, shared):
    corpus_dir = tmp_path / "in"
    corpus_dir.mkdir()
    corpus = make_corpus(corpus_dir, FAST)
    before = _hashes(corpus_dir)
    out = tmp_path / "out"
    home = Path(os.environ["MATTEKIT_HOME"])  # conftest's, whose ONNX exports the session's tests share
    run = run_capped(_mattekit(task, shared) + [str(corpus_dir), "-o", str(out)], _env(shared, home))
    assert not run.hung and "Traceback" not in run.stderr and not noise(run.stderr), run.stderr
    assert run.returncode == 1, run.stderr
    valid = sorted(Path(n).stem for n, ok in corpus.items() if ok)
    assert sorted(p.stem for p in out.iterdir()) == valid
    files = [n for n, ok in corpus.items() if not ok and _listed(corpus_dir / n)]
    for name in files:
        assert any(line.startswith("mattekit: error:") and name in line for line in lines(run.stderr)), name
    assert f"{len(files)} of {len(files) + len(valid)} images failed" in run.stderr
    assert "only the first is used" in run.stderr  # the animated WebP
    assert _hashes(corpus_dir) == before
    assert run.peak_kb * 1024 < CAP


@pytest.fixture
def full_corpus(tmp_path):
    """(folder, {name: valid}, hashes before any run) of the whole corpus."""
    folder = tmp_path / "in"
    folder.mkdir()
    corpus = make_corpus(folder)
    return folder, corpus, _hashes(folder)


RUN_TIMEOUT = 1200  # seconds one run over the whole corpus may take before it counts as a hang


def output_stems(names: list[str]) -> dict[str, str]:
    """{input name: the stem of its output in a ``-o FOLDER`` run}: inputs of one folder sharing a stem get their
    extension in it (``photo_png``), as :func:`mattekit.io.naming.plan_outputs` names them."""
    stems = [Path(n).stem.lower() for n in names]
    return {
        n: f"{Path(n).stem}_{Path(n).suffix[1:].lower()}" if stems.count(Path(n).stem.lower()) > 1 else Path(n).stem
        for n in names
    }


def check_each_file(run: Run, out: Path, corpus: dict[str, bool], corpus_dir: Path, what: str) -> dict[str, str]:
    """{name: 'ok' or 'error'} for each input of one run over several files (``corpus``: {name: valid}); fails the
    test unless each valid file has its one output and each bad one its one ``mattekit: error: PATH: sentence.``
    line (a clean refusal: no internal error, no out of memory) and no output, the run's summary names exactly the bad
    ones and the exit status is 1; no hang, traceback or other noise."""
    assert not run.hung, f"{what}: no answer after {RUN_TIMEOUT} s:\n{run.stderr[-3000:]}"
    assert "Traceback" not in run.stderr and not noise(run.stderr), f"{what}:\n{run.stderr}"
    written = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    said = sorted(Path(line.rpartition(" wrote ")[2]).name for line in lines(run.stderr) if " wrote " in line)
    assert written == said and not any(n.endswith(".tmp") for n in written), (what, written, said)
    stems = output_stems(list(corpus))
    outcome = {}
    for name, valid in corpus.items():
        path = str(corpus_dir / name)
        errors = [line for line in lines(run.stderr) if line.startswith(f"mattekit: error: {path}: ")]
        outputs = [n for n in written if Path(n).stem == stems[name]]
        if errors:
            sentence = errors[0][len(f"mattekit: error: {path}: ") :]
            assert len(errors) == 1 and sentence.endswith("."), f"{what} {name}: {errors}"
            assert not sentence.startswith(("Internal error", "Out of memory")), f"{what} {name}: {sentence}"
            assert not valid, f"{what} {name}: a valid image failed: {sentence}"
            assert not outputs, f"{what} {name}: an output {outputs} beside its error"
            outcome[name] = "error"
        else:
            assert valid, f"{what} {name}: an invalid input was accepted (no error line):\n{run.stderr}"
            assert len(outputs) == 1, f"{what} {name}: outputs {outputs}"
            outcome[name] = "ok"
    bad = [name for name, result in outcome.items() if result == "error"]
    summary = [line for line in lines(run.stderr) if line.startswith("mattekit: ") and " images failed: " in line]
    head = f"mattekit: {len(bad)} of {len(corpus)} images failed: "
    assert len(summary) == 1 and summary[0].startswith(head), (what, head, summary)
    assert sorted(summary[0][len(head) :].split(", ")) == sorted(str(corpus_dir / n) for n in bad), (what, summary)
    assert run.returncode == 1, f"{what}: exit {run.returncode}"
    return outcome


@pytest.mark.slow
@pytest.mark.needs_data
@pytest.mark.parametrize("task", list(TASK_ARGS))
def test_every_corpus_file_through_every_task(task, tmp_path, shared, full_corpus):
    """One capped run of the task over the whole corpus (its folder, whose images a folder run takes, and the files
    it does not list named one by one): each file's own outcome (its output, or one clean sentence naming it), the
    summary, exit 1, inputs unchanged. The folder entry (``folder.png``) and the single-file refusal path: below."""
    corpus_dir, corpus, before = full_corpus
    files = {name: valid for name, valid in corpus.items() if (corpus_dir / name).is_file()}
    unlisted = [name for name in files if not _listed(corpus_dir / name)]
    assert unlisted == ["animated.gif"], unlisted  # a folder run leaves GIF out: named itself here
    out = tmp_path / "out"
    run = run_capped(
        _mattekit(task, shared) + [str(corpus_dir)] + [str(corpus_dir / n) for n in unlisted] + ["-o", str(out)],
        _env(shared, tmp_path / "home"),
        timeout=RUN_TIMEOUT,
    )
    outcome = check_each_file(run, out, files, corpus_dir, task)
    assert _hashes(corpus_dir) == before
    assert run.peak_kb * 1024 < CAP
    print(
        f"\ncorpus through {task} in one run under RLIMIT_AS = {CAP >> 30} GiB: {len(outcome)} files tried, "
        f"{list(outcome.values()).count('ok')} ok, {list(outcome.values()).count('error')} clean errors, "
        f"0 tracebacks, 0 hangs; peak RSS {run.peak_kb / 1024:.0f} MiB, {run.seconds:.0f} s"
    )


@pytest.mark.slow
@pytest.mark.needs_data
def test_each_bad_file_alone_is_one_sentence(tmp_path, shared, full_corpus):
    """A single bad input (each of the corpus's, the folder named like an image too) is refused with one
    ``mattekit: error:`` sentence and exit 2, no output (the single-input path: its header is checked before any
    model loads, a failure is raised as it is). The task is the same for all: this path is the same for every task
    up to reading the image, which each task's run above covers file by file."""
    corpus_dir, corpus, before = full_corpus
    env = _env(shared, tmp_path / "home")
    for i, name in enumerate(n for n, valid in corpus.items() if not valid):
        out = tmp_path / "out" / f"{i}.png"
        run = run_capped(_mattekit("remove", shared) + [str(corpus_dir / name), "-o", str(out)], env)
        assert check_single(run, out, False, f"remove {name}") == "error"
    assert _hashes(corpus_dir) == before
