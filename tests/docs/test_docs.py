"""The README and docs/: the front page stays short, .ci/run runs the README's test command, links resolve."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_front_page_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) < 150


def test_ci_runs_the_readmes_test_command_verbatim():
    lines = (ROOT / ".ci/run").read_text().splitlines()
    command = lines[lines.index("# The README's test command, verbatim:") + 1]
    assert "pytest --full" in command
    readme = (ROOT / "README.md").read_text()
    tests = readme[readme.index("\n## Tests\n"):]
    block = re.findall(r"```bash\n(.*?)```", tests, re.S)[0]
    assert command in block.splitlines()  # the Tests section's block, which a set-up line never is
    first_screen = re.findall(r"```bash\n(.*?)```", readme, re.S)[0]
    assert "pytest" not in first_screen, "the first screen's commands set up and cut out; the tests have their section"


def test_the_first_screen_says_what_is_here_and_what_downloads():
    """Issue 70: the first screen's command cut out a photo.jpg the clone does not have, its offline line assumed
    ../shared beside the clone, and it said the set-up downloads the default model (the first cut-out does: the
    set-up installs torch and the project, no weights)."""
    from mattekit import catalog

    readme = (ROOT / "README.md").read_text()
    first = readme[:readme.index("\n## Quick start: GIMP")]
    command = re.findall(r"```bash\n(.*?)```", first, re.S)[0].split("#")[0]
    for name in re.findall(r"[\w./-]+\.(?:jpe?g|png|tiff?|exr)\b", command):
        assert (ROOT / name).is_file() or name.startswith("YOUR_"), f"{name}: no such file in the clone, nor a placeholder"
    assert "../shared" not in first and "the folder `MATTEKIT_MIRROR` names" in first
    default = catalog.load().default("segment")
    assert f"The first cut-out downloads the default model (IS-Net general use, {default.weights.size // 1_000_000} MB" \
           in first.replace("\n", " ") and default.name == "isnet-general-use"
    setup = (ROOT / "install" / "setup.py").read_text()
    assert "catalog" not in setup and "weights" not in setup.lower()  # the set-up fetches no model


def test_local_links_lead_to_files_and_headings():
    for page in PAGES:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            assert file.is_file(), f"{page.name}: {target}"
            if anchor:
                slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                         for h in re.findall(r"^#+ (.*)$", file.read_text(), re.M)}
                assert anchor in slugs, f"{page.name}: {target}"


def test_the_output_name_table_is_the_registrys():
    """docs/usage.md's table of output names gives, per task, the suffix the CLI writes for each result."""
    from mattekit.tasks import registry

    rows = {line.split("|")[1].strip(): line for line in (ROOT / "docs" / "usage.md").read_text().splitlines()
            if line.startswith("| ") and "NAME_" in line}
    for task in registry.tasks().values():
        results = task.option_table().get("result")
        for result in (None, *(results.choices if results else ())):
            given = ({"result": result} if result else {}) | ({"scale": 4} if task.name == "upscale" else {})
            options = task.make_options(given)
            assert f"`NAME{task.suffix_for(options)}.png`" in rows[task.name], (task.name, result)
    assert "remove" in rows and "matte" in rows
