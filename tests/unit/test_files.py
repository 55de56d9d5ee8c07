"""Per-file runs: outputs never replace inputs or each other, and one bad file never stops a folder."""

from __future__ import annotations

import numpy as np
import pytest

from mattekit import io
from mattekit.cli import main


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("base.png", "base.jpg", "base.tif", "other.png"):
        io.write_image(folder / name, rng.random((20, 30, 3)).astype(np.float32))
    return folder


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_output_that_is_an_input_is_refused_and_nothing_changes(photos, capsys):
    before = _snapshot(photos)
    assert main(["enhance", str(photos), "-o", str(photos)]) == 2
    assert "is an input" in capsys.readouterr().err
    assert main(["enhance", str(photos / "other.png"), "-o", str(photos / "other.png")]) == 2
    assert _snapshot(photos) == before


def test_same_stems_get_distinct_names_and_the_summary_matches_the_disk(photos, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["enhance", str(photos), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["base_jpg.jpg", "base_png.png", "base_tif.tif", "other.png"]
    assert main(["enhance", str(photos / "base.png"), str(photos / "base.jpg")]) == 0
    assert {"base_png_enhanced.png", "base_jpg_enhanced.jpg"} <= {p.name for p in photos.iterdir()}


def test_a_bad_file_is_listed_and_the_others_are_written(photos, tmp_path, capsys):
    (photos / "broken.png").write_bytes((photos / "other.png").read_bytes()[:60])  # truncated
    out = tmp_path / "out"
    assert main(["enhance", str(photos), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "1 of 5 images failed" in err and "broken.png" in err and "Traceback" not in err
    assert len(list(out.iterdir())) == 4


# Every file a task reads besides its images (trimap, mask, hint mask, backdrop, subject, weights) is an
# input too: an -o that would replace one is refused in one sentence before any model loads.
AUXILIARY = {
    "matte-trimap": (["matte"], "--trimap", "t.png"),
    "matte-mask": (["matte"], "--mask", "m.png"),
    "remove-hint-mask": (["remove"], "--hint-mask", "h.png"),
    "remove-composite-backdrop": (["remove", "--result", "composite"], "--backdrop", "b.jpg"),
    "bokeh-mask-only-subject": (["bokeh", "--mask-only"], "--subject", "s.png"),
    "remove-weights-file": (["remove"], "--weights", "w.png"),  # a path option of the declaration, not a port
}


def _auxiliary(folder, name):
    rng = np.random.default_rng(1)
    io.write_image(folder / name, rng.random((20, 30) if name[0] in "tmhs" else (20, 30, 3)).astype(np.float32))
    return folder / name


def _refused(capsys, argv) -> str:
    """Run the CLI; it must exit 2 with exactly one line on stderr ending in the fix; that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mattekit: error: ") and err[0].endswith("choose another -o."), err
    return err[0]


@pytest.mark.parametrize("case", list(AUXILIARY), ids=list(AUXILIARY))
def test_an_auxiliary_input_named_as_the_output_is_refused(photos, tmp_path, capsys, case):
    command, flag, name = AUXILIARY[case]
    aux = _auxiliary(tmp_path, name)
    before, inputs = aux.read_bytes(), _snapshot(photos)
    line = _refused(capsys, [*command, str(photos / "other.png"), flag, str(aux), "-o", str(aux)])
    assert f"is the {flag} input" in line and str(aux) in line
    assert aux.read_bytes() == before and _snapshot(photos) == inputs
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in", name])  # nothing else written


def test_an_output_folder_whose_default_name_is_the_trimap_is_refused(photos, tmp_path, capsys):
    trimaps = tmp_path / "trimaps"
    trimaps.mkdir()
    trimap = _auxiliary(trimaps, "other.png")  # -o trimaps/ writes other.png there: the trimap itself
    before = _snapshot(trimaps)
    line = _refused(capsys, ["matte", str(photos / "other.png"), "--trimap", str(trimap), "-o", str(trimaps)])
    assert "is the --trimap input" in line
    assert _snapshot(trimaps) == before


def test_an_output_landing_in_a_trimap_folder_of_same_named_files_is_refused(photos, tmp_path, capsys):
    trimaps = tmp_path / "trimaps"
    trimaps.mkdir()
    for name in ("base.png", "other.png"):
        _auxiliary(trimaps, name)
    before, inputs = _snapshot(trimaps), _snapshot(photos)
    line = _refused(capsys, ["matte", str(photos / "other.png"), "--trimap", str(trimaps), "-o", str(trimaps)])
    assert "is the --trimap input" in line and "other.png" in line
    (photos / "base.jpg").unlink()  # the folder run: other.png and base.png (base_png.png, base_tif.tif: no clash)
    (photos / "base.tif").unlink()
    inputs = _snapshot(photos)
    _refused(capsys, ["matte", str(photos), "--trimap", str(trimaps), "-o", str(trimaps)])
    assert _snapshot(trimaps) == before and _snapshot(photos) == inputs


def test_the_python_api_refuses_an_output_that_is_an_auxiliary_input(photos, tmp_path):
    from mattekit import api
    from mattekit.errors import OutputError

    trimap = _auxiliary(tmp_path, "t.png")
    before, inputs = trimap.read_bytes(), _snapshot(photos)
    with pytest.raises(OutputError, match=r"^The output .*t\.png is the trimap= input: .*; choose another output=\.$"):
        api.run("matte", photos / "other.png", output=trimap, trimap=trimap)
    with pytest.raises(OutputError, match=r"is the input: "):
        api.run("matte", photos / "other.png", output=photos / "other.png", trimap=trimap)
    assert trimap.read_bytes() == before and _snapshot(photos) == inputs


def test_the_python_api_names_its_output_as_the_cli_does(photos, tmp_path, capsys):
    """One naming rule (mattekit.io.naming) for both front ends: beside the input with the task's suffix, into a
    folder given as the output, the named file; an output name that is no image is refused in the API's words."""
    from mattekit import api
    from mattekit.errors import OutputError

    source = photos / "other.png"
    assert api.run("enhance", source) == photos / "other_enhanced.png"
    (tmp_path / "api").mkdir()
    (tmp_path / "cli").mkdir()
    assert api.run("enhance", source, output=tmp_path / "api") == tmp_path / "api" / "other.png"
    assert main(["enhance", str(source), "-o", str(tmp_path / "cli")]) == 0
    assert sorted(p.name for p in (tmp_path / "api").iterdir()) == sorted(p.name for p in (tmp_path / "cli").iterdir())
    assert api.run("enhance", source, output=tmp_path / "e.jpg") == tmp_path / "e.jpg"
    with pytest.raises(
        OutputError,
        match=r"^output= .*e\.txt is not an image file name \(exr, jpeg, .*\) nor an existing "
        r"folder; name the output file with one of those extensions\.$",
    ):
        api.run("enhance", source, output=tmp_path / "e.txt")
    assert not (tmp_path / "e.txt").exists()


def test_a_folder_run_in_place_runs_again_and_resumes_with_only_the_new_photos(tmp_path, capsys, monkeypatch):
    """``enhance .`` twice in a folder of JPEGs. The first run's outputs (NAME_enhanced.jpg beside an
    input NAME.*, or NAME_jpg_enhanced.jpg for stems shared) are no inputs of the second; a lone y_enhanced.jpg (no y.*)
    may be the user's and is kept; --skip-existing after adding a photo computes only it."""
    rng = np.random.default_rng(2)
    for name in ("a.jpg", "b.jpg", "y_enhanced.jpg", "s.jpg", "s.png"):
        io.write_image(tmp_path / name, rng.random((12, 16, 3)).astype(np.float32))
    monkeypatch.chdir(tmp_path)
    assert main(["enhance", "."]) == 0
    first = _snapshot(tmp_path)
    mine = {"a_enhanced.jpg", "b_enhanced.jpg", "y_enhanced_enhanced.jpg", "s_jpg_enhanced.jpg", "s_png_enhanced.png"}
    assert set(first) == {"a.jpg", "b.jpg", "y_enhanced.jpg", "s.jpg", "s.png"} | mine
    capsys.readouterr()
    assert main(["enhance", "."]) == 0  # again: the same files, rewritten with the same bytes
    assert _snapshot(tmp_path) == first and capsys.readouterr().err.count("wrote") == 5
    io.write_image(tmp_path / "c.jpg", rng.random((12, 16, 3)).astype(np.float32))
    assert main(["enhance", str(tmp_path / "*"), "--skip-existing"]) == 0  # a glob resumes the same way
    err = capsys.readouterr().err
    assert "c_enhanced.jpg" in err and err.count("wrote") == 1 and "skipped 5 input(s)" in err, err
    assert main(["enhance", str(tmp_path / "a_enhanced.jpg")]) == 0  # a file named on its own is an input
    assert (tmp_path / "a_enhanced_enhanced.jpg").is_file()


def test_an_existing_output_mattekit_did_not_write_is_refused_unless_overwrite(tmp_path, capsys):
    """Issue 81: ``remove -o user.png`` replaced an unrelated file without a word while roto refused the same without
    --overwrite. One rule now: an output replaces only mattekit's own earlier output (it carries the provenance
    record), else --overwrite (overwrite=True) is needed; a re-run onto its own output needs none."""
    import mattekit
    from mattekit.errors import OutputError
    from PIL import Image

    quick = ["--no-white-balance", "--no-contrast", "--no-denoise"]
    src, user = tmp_path / "photo.png", tmp_path / "user.png"
    io.write_image(src, np.random.default_rng(3).random((24, 32, 3)).astype(np.float32))
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(user)  # the user's own picture
    before = user.read_bytes()
    assert main(["enhance", str(src), "-o", str(user), *quick]) == 2
    assert capsys.readouterr().err.strip() == (
        f"mattekit: error: {user} already exists and is not an output of mattekit's left as written (another "
        f"file, or one changed since); move it away, choose another -o, or use --overwrite to replace it."
    )
    assert user.read_bytes() == before
    with pytest.raises(OutputError, match=r"choose another output=, or use overwrite=True to replace it\.$"):
        mattekit.enhance(src, output=user, white_balance=False, contrast=False, denoise=False)
    assert user.read_bytes() == before
    assert main(["enhance", str(src), "-o", str(user), *quick, "--overwrite"]) == 0
    assert user.read_bytes() != before
    assert main(["enhance", str(src), "-o", str(user), *quick]) == 0  # its own output now: a re-run replaces it
    assert main(["enhance", str(src), *quick]) == 0 and main(["enhance", str(src), *quick]) == 0  # beside the input
    kept = mattekit.enhance(
        src, output=tmp_path / "api.png", white_balance=False, contrast=False, denoise=False, provenance=False
    )
    with pytest.raises(OutputError):  # without a record, it cannot be told from the user's: --overwrite says so
        mattekit.enhance(src, output=kept, white_balance=False, contrast=False, denoise=False)
    assert (
        mattekit.enhance(src, output=kept, white_balance=False, contrast=False, denoise=False, overwrite=True) == kept
    )


@pytest.mark.parametrize("count", [1, 3])
def test_a_photo_that_fails_to_decode_fails_alone_in_one_sentence(shared, monkeypatch, tmp_path, capsys, count):
    """A photo whose pixels are cut short fails in one sentence naming it, the other photos written (exit 1), or
    exit 2 for a run of one."""
    import shutil

    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    photos = sorted((shared / "data" / "grabcut50" / "im").iterdir())[:count]
    folder = tmp_path / "in"
    folder.mkdir()
    for photo in photos:
        shutil.copy(photo, folder)
    bad = folder / photos[0].name
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # its header whole, its pixels cut short
    out = tmp_path / "out"
    given = [str(folder / p.name) for p in photos]
    assert main(["remove", "-q", "--model", "u2netp", "-o", str(out), *given]) == (2 if count == 1 else 1)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("mattekit: error: ")]
    assert "Traceback" not in err
    assert errors == [f"mattekit: error: {'' if count == 1 else f'{bad}: '}Cannot read {bad}: the file is truncated."]
    assert count == 1 or f"1 of 3 images failed: {bad}" in err
    written = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert written == sorted(p.stem + ".png" for p in photos[1:])
