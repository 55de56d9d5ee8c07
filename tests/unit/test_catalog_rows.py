"""The catalog's rows and rules: each default serves its task under a licence said or pinned instead, the
sizing rule, backends and family a row declares, and one sentence for a catalog or a row that does not hold."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mattekit import catalog, nets
from mattekit.errors import MattekitError


def test_every_default_serves_its_task_and_its_licence_is_permissive_or_said_with_a_pin_instead():
    """Issue 70: this was "commercial friendly", which the segment default's weights (published with no licence)
    are not known to be. What holds: each default is a model of its own task with no licence notice (none forbids
    commercial use), and its weights' licence is permissive, or unstated and the first run says so, naming a
    default of the same task whose weights state one (stated, and no notice) to pin instead."""
    cat = catalog.load()
    assert set(catalog.TASKS) >= set(cat.defaults)
    for task, name in cat.defaults.items():
        model = cat.models[name]
        assert model.task == task and model.notice is None, f"{name} is the {task} default"
        if model.licence in PERMISSIVE:
            continue
        said = cat.unlicensed_notice(model, "C")
        assert said and f'set [defaults] {task} = "' in said, f"{name}: {model.licence}, and no pin said instead"
        instead = cat.models[said.split(f'set [defaults] {task} = "')[1].split('"')[0]]
        assert instead.task == task and instead.terms.stated and instead.notice is None


PERMISSIVE = {"MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause"}


def test_the_segment_default_obeys_the_default_rule():
    """catalog.toml's rule for the segment default, its parts a test can check: a permissive licence,
    and the fidelity test's list (its plain path was checked on real weights and photos here). The speed part
    and the published figures are in docs/quality.md "The default's rule" and catalog.toml's comment."""
    import ast

    fidelity = Path(__file__).resolve().parents[1] / "conformance" / "test_fidelity.py"
    (models,) = [
        node.value
        for node in ast.parse(fidelity.read_text()).body  # its MODELS, read, not imported
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "MODELS"
    ]
    passed = {ast.literal_eval(key) for key in models.keys}

    cat = catalog.load()
    default = cat.default("segment")
    # (1): its weights' licence is permissive, or its publisher stated none and the first run says so
    assert default.licence in PERMISSIVE or (not default.terms.stated and cat.unlicensed_notice(default, "C")), (
        f"{default.name}: {default.licence}"
    )
    assert default.name in passed, f"{default.name} never passed tests/conformance/test_fidelity.py on real weights"
    assert cat.get("objects", "segment").name == default.name
    toml = (Path(catalog.__file__).parent / "catalog.toml").read_text()
    rule = toml.split("[aliases]")[0]
    assert "in tests/conformance/test_fidelity.py" in rule, "the rule is written above [defaults]' end"


def test_unknown_model_and_wrong_task_are_sentences():
    cat = catalog.load()
    with pytest.raises(MattekitError, match="Unknown model 'nope'; choose one of: .*csnet-sod"):
        cat.get("nope", "segment")


def test_malformed_catalog_is_refused(tmp_path):
    bad = tmp_path / "catalog.toml"
    bad.write_text('[models.x]\ntask = "segment"\nnet = "u2net:U2NETP"\n')
    with pytest.raises(MattekitError, match=f"^The model catalog {bad} is not valid: catalog entry 'x' is malformed"):
        catalog.load(str(bad))


def test_a_catalog_of_the_users_that_does_not_hold_is_one_sentence(tmp_path):
    """``$MATTEKIT_CATALOG`` naming a catalog whose row sets two sizing rules: the command ends with that one
    sentence and a non-zero exit, not an internal error."""
    import subprocess
    import sys

    bad = tmp_path / "catalog.toml"
    bad.write_text(
        catalog.CATALOG_PATH.read_text(encoding="utf-8").replace(
            "input = { size = [320, 320],", "input = { size = [320, 320], ref_size = 512,", 1
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "MATTEKIT_CATALOG": str(bad), "PYTHONPATH": str(Path(catalog.__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, "-m", "mattekit", "models", "list"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and done.stderr.strip() == (
        f"mattekit: error: The model catalog {bad} is not valid: catalog entry 'u2net' sets size and ref_size in its "
        "input; a model takes one sizing rule: size, ref_size or short_side."
    ), done.stderr


def test_a_key_the_entry_does_not_declare_is_refused(tmp_path):
    """Every key of a row is a typed field of ModelEntry: a misspelt one is an error, not silently kept."""
    row = catalog.CATALOG_PATH.read_text(encoding="utf-8").replace("overlap = 64", "overlapp = 64", 1)
    with pytest.raises(ValueError, match="catalog entry 'realesr-general-x4v3' is malformed: .*'overlapp'"):
        catalog.parse(row)


def test_each_entry_agrees_with_its_net_family():
    """A recurrent row's family steps frame by frame; a non-recurrent one's does not."""
    for entry in catalog.load().models.values():
        assert entry.recurrent == (nets.family(entry.net).step is not None), entry.name


def test_the_sizing_rule_is_the_one_of_the_field_a_row_sets():
    """One image, one multiple, four specs: ``size`` gives itself; ``ref_size`` MODNet's demo rule (a 1000 x 2000
    photo: short side to 512); ``short_side`` Depth Anything's (short side to 518 in multiples of 14); neither
    the photo's own size floored to the multiple (shrunk to ``max_side`` where given). No family is asked."""
    assert catalog.InputSpec(size=(320, 320), multiple=14).net_size(1000, 2000) == (320, 320)
    assert catalog.InputSpec(ref_size=512, multiple=14).net_size(1000, 2000) == (504, 1022)
    assert catalog.InputSpec(short_side=518, multiple=14).net_size(1000, 2000) == (518, 1036)
    assert catalog.InputSpec(multiple=14).net_size(1000, 2000) == (994, 1988)
    assert catalog.InputSpec(multiple=14, max_side=1000).net_size(1000, 2000) == (490, 1000 - 1000 % 14)
    cat = catalog.load()
    assert cat.get("modnet-portrait").input.sizing() == ("ref_size",)
    assert cat.get("depth-anything-v2-small").input.sizing() == ("short_side",)
    assert cat.get("u2netp").input.sizing() == ("size",) and cat.get("birefnet-dynamic").input.sizing() == ()


@pytest.mark.parametrize(
    "change, said",
    [
        (
            "input = { size = [320, 320], ref_size = 512,",
            "catalog entry 'u2netp' sets size and ref_size in its input; "
            "a model takes one sizing rule: size, ref_size or short_side.",
        ),
        (
            'backends = ["torch", "cuda"]\ninput = { size = [320, 320],',
            "catalog entry 'u2netp' names backends ['torch', 'cuda']; choose one or more of torch, onnx.",
        ),
        (
            "backends = []\ninput = { size = [320, 320],",
            "catalog entry 'u2netp' names backends []; choose one or more of",
        ),
        ('backends = "torch"\ninput = { size = [320, 320],', "catalog entry 'u2netp' names backends 'torch'; choose"),
        (
            "onnx_as_is = true\ninput = { multiple = 32,",
            "catalog entry 'u2netp' sets onnx_as_is without a fixed input "
            "size or on a recurrent net; only a fixed-size, non-recurrent",
        ),
    ],
    ids=["two sizing rules", "unknown backend", "no backend", "backends not a list", "as-is without a fixed size"],
)
def test_a_row_whose_sizing_backends_or_onnx_flag_cannot_hold_is_one_sentence(change, said):
    """The catalog check refuses a row with two sizing rules, an engine of no name it knows (or none), and an
    ``onnx_as_is`` on a model without a fixed input size."""
    text = catalog.CATALOG_PATH.read_text(encoding="utf-8")
    start = text.index("[models.u2netp]")
    row = text[start : text.index("\n[", start + 1)]
    before = row[row.index("input = {") :].split(" eight_bit")[0]
    text = text[:start] + row.replace(before, change, 1) + text[start + len(row) :]
    with pytest.raises(ValueError) as caught:
        catalog.parse(text)
    assert str(caught.value).startswith(said) and len(str(caught.value).splitlines()) == 1, caught.value


def test_the_engines_a_model_runs_on_are_its_rows(monkeypatch):
    """SAM 2.1's rows and Depth Anything's pin torch (``backends = ["torch"]``: no single-tensor forward; a position
    embedding resized per photo in Python, which an export fixes at the trace size): the plan runs them on torch when
    ONNX Runtime is the session's preference ($MATTEKIT_BACKEND) and refuses ONNX Runtime asked by name in one
    sentence; every other row may run on either, and a row of any family that says ``backends = ["torch"]`` is pinned."""
    from mattekit.engines.plan import decide, pinned_backend
    from mattekit.errors import MattekitError

    cat = catalog.load()
    for entry in cat.models.values():
        pinned = entry.net.startswith(("sam2:", "depth_anything:"))
        assert entry.backends == (("torch",) if pinned else ("torch", "onnx")), entry.name
        assert pinned_backend(entry) == ("torch" if pinned else None), entry.name
    for name in ("sam2.1-hiera-tiny", "depth-anything-v2-small"):
        with pytest.raises(MattekitError, match="runs on torch only"):
            decide(cat.get(name), "cpu", "onnx")
    monkeypatch.setenv("MATTEKIT_BACKEND", "onnx")
    assert decide(cat.get("sam2.1-hiera-tiny"), "cpu").engine == "torch"
    assert decide(cat.get("depth-anything-v2-small"), "cpu").engine == "torch"
    text = catalog.CATALOG_PATH.read_text(encoding="utf-8").replace(
        "[models.u2netp]\n", '[models.u2netp]\nbackends = ["torch"]\n', 1
    )
    u2netp = catalog.parse(text).get("u2netp")
    assert pinned_backend(u2netp) == "torch" and decide(u2netp, "cpu").engine == "torch"
