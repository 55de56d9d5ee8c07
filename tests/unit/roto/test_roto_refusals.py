"""What a roto job refuses before it writes or waits, in one sentence: outputs that would replace its inputs, a
manifest roto did not write (left alone), a Ray address that cannot answer, an OCIO config outside the allowed
folders or a FIFO (the worker never blocks), a config named with the colour space."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from mattekit import roto
from mattekit.errors import OutputError

from plates import MODEL, make_plate, small_plate
from roto_runs import spec


# ------------------------------------------------- a roto job never writes over the files it reads

# (plate as given, options) per way of naming the plate's own files as an output; {p}: the plate folder
OVERWRITES = {
    "output-is-the-plate-pattern": ("{p}/f.####.png", ["-o", "{p}/f.####.png"]),
    "output-printf-pattern": ("{p}/f.####.png", ["-o", "{p}/f.%04d.png"]),
    "output-unpadded-pattern": ("{p}/f.0001.png", ["-o", "{p}/f.#.png"]),
    "output-is-the-plate-folder": ("{p}/f.####.png", ["-o", "{p}"]),
    "plate-folder-and-output-folder": ("{p}", ["-o", "{p}"]),
    "output-through-a-linked-folder": ("{p}/f.####.png", ["-o", "{link}/f.####.png"]),
    "rgba-is-the-plate-pattern": ("{p}/f.####.png", ["-o", "{out}/m.####.png", "--rgba", "{p}/f.####.png"]),
    "fg-is-the-plate-folder": ("{p}/f.####.png", ["-o", "{out}/m.####.png", "--fg", "{p}"]),
    "rgba-is-the-hint-mask-pattern": (
        "{p}/f.####.png",
        ["-o", "{out}/m.####.png", "--rgba", "{masks}/####.png", "--hint-mask", "{masks}/####.png"],
    ),
    "output-frame-is-the-weights-file": ("{p}/f.####.png", ["-o", "{w}/w.####.png", "--weights", "{w}/w.0002.png"]),
}


@pytest.mark.parametrize("case", list(OVERWRITES), ids=list(OVERWRITES))
def test_roto_refuses_outputs_that_would_replace_its_inputs(tmp_path, capsys, case):
    from mattekit.cli import main

    plate = small_plate(tmp_path / "plate")
    (tmp_path / "link").symlink_to(plate)
    masks = small_plate(tmp_path / "masks", frames=(2,))
    (masks / "f.0002.png").rename(masks / "0002.png")
    weights = small_plate(tmp_path / "weights", frames=(1,))
    (weights / "f.0001.png").rename(weights / "w.0002.png")  # an odd weights file name: an image with a number
    given, options = OVERWRITES[case]
    names = {"p": plate, "out": tmp_path / "out", "masks": masks, "link": tmp_path / "link", "w": weights}
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    start = time.perf_counter()
    code = main(["roto", given.format(**names), *[o.format(**names) for o in options], "--model", MODEL])
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert re.fullmatch(
        r"mattekit: error: The output .* (is the|is a file of the|is a frame of the) .*: writing it "
        r"would replace .*; choose another (-o \(output pattern or folder\)|--rgba pattern|--fg pattern)\.",
        err[0],
    ), err[0]
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()} == before  # nothing written
    assert not (tmp_path / "out").exists()
    assert seconds < 5, "refused before any model loads"


def test_roto_job_refuses_before_writing_and_a_distinct_output_still_runs_the_checks(tmp_path):
    plate = small_plate(tmp_path / "plate")
    with pytest.raises(OutputError, match=r"is the plate .*choose another -o"):
        roto.RotoJob(spec(str(plate / "f.####.png"), str(plate)))
    with pytest.raises(OutputError, match=r"is the --weights file"):
        roto.RotoJob(
            spec(
                str(plate / "f.####.png"),
                str(tmp_path / "o" / "m.####.png"),
                weights=str(tmp_path / "o" / "m.0003.png"),
            )
        )
    job = roto.RotoJob(spec(str(plate / "f.####.png"), str(plate / "matte.####.png")))  # beside the plate: fine
    assert job.frames == [1, 2, 3] and sorted(p.name for p in plate.iterdir()) == [
        "f.0001.png",
        "f.0002.png",
        "f.0003.png",
    ]


@pytest.mark.parametrize(
    "address, words",
    [("256.1.1.1:1", "(no such host)."), ("127.0.0.1:1", "(connection refused)."), ("10.0.0.5", "is not HOST:PORT")],
)
def test_a_ray_address_that_cannot_answer_is_one_sentence_at_once(address, words, shared, mirror, tmp_path, capsys):
    """`roto --ray ADDRESS`: an address that cannot be a cluster is refused before Ray waits on it (it hung)."""
    pytest.importorskip("ray")
    from mattekit import cli

    plate = make_plate(shared, tmp_path / "plate", 2)
    assert (
        cli.main(["roto", plate, "-o", str(tmp_path / "out" / "m.####.png"), "--model", MODEL, "--ray", address]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("mattekit: error: ") and words in err, err


# ------------------------------------------------- a manifest that roto did not write is refused, never replaced

BAD_MANIFESTS = {
    "a-list": "[1, 2]\n",
    "settings-a-number": '{"settings": 5}\n',
    "not-json": "my notes, not JSON\n",
    "model-a-text": '{"fingerprint": "x", "settings": {"model": "u2net"}, "outputs": {}}\n',
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS), ids=list(BAD_MANIFESTS))
def test_a_malformed_manifest_is_one_sentence_and_left_alone(tmp_path, capsys, case, request, monkeypatch):
    """A file at the manifest's name that is not a manifest is refused before the model's weights are looked for
    (no mirror, offline); one of roto's shape with other settings is compared with this run's, whose fingerprint
    holds the weights' sha256 (the shared mirror)."""
    from mattekit.cli import main

    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    if case == "model-a-text":
        request.getfixturevalue("mirror")
    else:
        monkeypatch.delenv("MATTEKIT_MIRROR", raising=False)

    plate = small_plate(tmp_path / "plate")
    out = tmp_path / "out"
    out.mkdir()
    manifest = out / "m.mattekit.json"
    manifest.write_text(BAD_MANIFESTS[case])
    code = main(["roto", str(plate / "f.####.png"), "-o", str(out / "m.####.png"), "--model", MODEL])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    if case == "model-a-text":  # a manifest of roto's shape, with other settings: the usual refusal
        assert "already holds mattes made with other settings (model u2net instead of csnet-sod)" in err[0], err[0]
    else:
        assert err[0] == (
            f"mattekit: error: {manifest} is not a mattekit roto manifest (the file roto keeps beside its "
            f"mattes); move or delete it, or choose another output."
        ), err[0]
    assert manifest.read_text() == BAD_MANIFESTS[case]  # left as it was
    assert sorted(p.name for p in out.iterdir()) == ["m.mattekit.json"]
    if case != "model-a-text":  # --overwrite redoes mattes; it does not replace a file roto did not write
        assert (
            main(["roto", str(plate / "f.####.png"), "-o", str(out / "m.####.png"), "--model", MODEL, "--overwrite"])
            == 2
        )
        assert "is not a mattekit roto manifest" in capsys.readouterr().err
        assert manifest.read_text() == BAD_MANIFESTS[case]


def test_a_malformed_manifest_is_refused_by_the_api_and_the_worker(tmp_path, monkeypatch):
    import mattekit

    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")  # refused before any weights are looked for
    monkeypatch.delenv("MATTEKIT_MIRROR", raising=False)
    from workers import meta_header, raw
    from mattekit.worker import service

    plate = small_plate(tmp_path / "plate")
    out = tmp_path / "out"
    out.mkdir()
    manifest = out / "m.mattekit.json"
    manifest.write_text('{"settings": 5}')
    options = {"model": MODEL, "device": "cpu", "threads": 1}
    with pytest.raises(OutputError, match=r"is not a mattekit roto manifest .*; move or delete it, or choose another"):
        mattekit.rotoscope(str(plate / "f.####.png"), str(out / "m.####.png"), **options)
    srv = service.WorkerServer(
        state_file=str(tmp_path / "state" / "worker.json"),
        idle_timeout=None,
        log=lambda text: None,
        threads=1,
        allow_dirs=[str(tmp_path)],
    ).start_background()
    try:
        status, answer, _ = raw(
            srv,
            "POST",
            "/v1/run/roto",
            b"",
            meta_header([], plate=str(plate / "f.####.png"), output=str(out / "m.####.png"), **options),
        )
    finally:
        srv.stop(wait=True)
    assert (status, answer["error"]["code"]) == (400, "bad_option"), answer  # refused before the job is queued
    assert "is not a mattekit roto manifest" in answer["error"]["message"], answer
    assert manifest.read_text() == '{"settings": 5}'
    assert sorted(p.name for p in out.iterdir()) == ["m.mattekit.json"]


def test_a_requests_ocio_config_is_confined_and_a_fifo_never_blocks_the_worker(tmp_path, monkeypatch):
    """A roto request's ``colorspace`` NAME@CONFIG names a file: outside the allowed folders only an OCIO config file
    is read (Blender sends its own so), anything else is refused with the same sentence whether it exists (a FIFO)
    or not; a FIFO inside them is refused as no regular file. A real worker process: reading a FIFO would block it
    whole (OpenColorIO holds the GIL), so the requests have a deadline and the worker is killed after."""
    import http.client
    import json as json_module

    from mattekit.wire import client
    from mattekit.wire import protocol
    from checkout import this_python

    monkeypatch.delenv("OCIO", raising=False)
    shot, elsewhere = tmp_path / "shot", tmp_path / "elsewhere"
    plate = small_plate(shot / "plate")
    elsewhere.mkdir()
    os.mkfifo(elsewhere / "fifo.ocio")
    os.mkfifo(shot / "fifo.ocio")
    monkeypatch.setenv("MATTEKIT_ALLOW_DIRS", str(shot))
    state = tmp_path / "state" / "worker.json"
    worker = client.start_worker(this_python(tmp_path), str(state), idle_timeout=120)  # this checkout's worker
    host, port = worker.url.removeprefix("http://").split(":")

    def request(method, path, options=None):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)  # a frozen worker fails the test, not CI
        meta = {protocol.META_HEADER: json_module.dumps({"inputs": [], "options": options or {}})}
        conn.request(method, path, body=b"", headers={"Authorization": f"Bearer {worker.token}", **meta})
        answer = conn.getresponse()
        status, body = answer.status, json_module.loads(answer.read())
        conn.close()
        return status, body

    def roto(colorspace):
        return request(
            "POST",
            "/v1/run/roto",
            dict(
                plate=str(plate / "f.####.png"),
                model=MODEL,
                output=str(shot / "out" / "m.####.png"),
                colorspace=colorspace,
            ),
        )

    try:
        for name in ("fifo.ocio", "absent.ocio"):
            status, answer = roto(f"ACEScg@{elsewhere / name}")
            assert (status, answer["error"]["code"]) == (400, "bad_option"), answer
            assert answer["error"]["message"] == (
                f"Option 'colorspace' names {str(elsewhere / name)!r}, outside the allowed folders {shot}; start the "
                f"worker with 'mattekit serve --allow-dir FOLDER' to allow another folder."
            ), answer
        status, answer = roto(f"ACEScg@{shot / 'fifo.ocio'}")
        assert (status, answer["error"]["code"]) == (400, "bad_option"), answer
        message = answer["error"]["message"]
        assert message == f"Cannot load the OCIO config {shot / 'fifo.ocio'}: it is a FIFO, not a regular file.", (
            message
        )
        assert request("GET", "/v1/health")[0] == 200
    finally:
        pid = json_module.loads(state.read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
    assert not (shot / "out").exists()


def test_a_config_named_with_the_colour_space_is_not_called_ocios(tmp_path, monkeypatch, capsys):
    """ "(from $OCIO)" is said only of the config $OCIO names, not of one a NAME@CONFIG names."""
    from mattekit.cli import main

    monkeypatch.delenv("OCIO", raising=False)
    plate = small_plate(tmp_path / "plate")
    missing = tmp_path / "missing.ocio"

    def roto_args(colorspace: str) -> list[str]:
        out = str(tmp_path / "out" / "m.####.png")
        return ["roto", str(plate / "f.####.png"), "-o", out, "--model", MODEL, "--colorspace", colorspace]

    code = main(roto_args(f"ACEScg@{missing}"))
    line = capsys.readouterr().err.strip()
    assert code == 2 and line.startswith(f"mattekit: error: Cannot load the OCIO config {missing}: "), line
    assert "$OCIO" not in line
    monkeypatch.setenv("OCIO", str(missing))
    code = main(roto_args("ACEScg"))
    line = capsys.readouterr().err.strip()
    assert code == 2 and line.startswith(f"mattekit: error: Cannot load the OCIO config {missing} (from $OCIO): "), line
