"""The committed notebooks as a Colab reader meets them: every badge and every setup cell names the one repository
of ``vit_replication.REPOSITORY``, and the setup cell says what to do when the clone fails."""

import json
from pathlib import Path

import pytest

from vit_replication import REPOSITORY

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) == 11 and NOTEBOOKS[0].name.startswith("00_")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_badge_and_setup_cell_name_the_repository(path):
    text = ["".join(cell["source"]) for cell in cells(path)]
    badge = f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/{path.name}"
    assert badge in text[0], "the first cell opens with the Colab badge of this notebook"
    setup = [t for t in text if "google.colab" in t]
    assert len(setup) == 1
    assert f'REPO = "https://github.com/{REPOSITORY}.git"' in setup[0] and "git clone -q --depth 1 {REPO}" in setup[0]
    assert "Could not clone {REPO}" in setup[0]
    others = [t for t in text if "github.com/" in t and t not in (text[0], setup[0])]
    assert all(REPOSITORY in t for t in others if "colab.research.google.com" in t)


def test_every_relative_link_resolves():
    """Links between notebooks, and from the README, point at files that exist."""
    import re

    root = NOTEBOOKS[0].parents[1]
    documents = [(path, "".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == "markdown"))
                 for path in NOTEBOOKS] + [(root / "README.md", (root / "README.md").read_text())]
    checked = 0
    for path, text in documents:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            assert (path.parent / target).exists(), f"{path.name} links to {target}, which does not exist"
            checked += 1
    assert checked >= 10  # the notebooks' "Next" links at least


def test_every_notebook_links_to_the_next():
    for path, following in zip(NOTEBOOKS, NOTEBOOKS[1:]):
        text = "".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == "markdown")
        assert f"]({following.name})" in text, f"{path.name} has no link to {following.name}"
