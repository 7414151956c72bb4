"""The committed notebooks as a Colab reader meets them: every badge and every setup cell names the one repository
of ``vit_replication.REPOSITORY``, and the setup cell says what to do when the clone fails."""

import json
import re
from pathlib import Path

import pytest

from vit_replication import REPOSITORY

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) == 12 and NOTEBOOKS[0].name.startswith("00_")


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


# Hygiene: what a reader sees in a static view (GitHub, nbconvert HTML) of the committed notebooks.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}  # JupyterLab's own
MAX_OUTPUTS = 15  # more is a progress-bar wall in a static view


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_outputs_are_clean(path):
    notebook = json.loads(path.read_text())
    assert notebook["metadata"]["kernelspec"] == KERNELSPEC, "a kernelspec JupyterLab would rewrite on opening"
    counts = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        outputs = cell.get("outputs", [])
        where = f"{path.name} cell {index}"
        assert not [o for o in outputs if o["output_type"] == "error"], f"{where} stores an error"
        assert len(outputs) <= MAX_OUTPUTS, f"{where} stores {len(outputs)} outputs"
        for output in outputs:
            if output["output_type"] == "execute_result":  # a stray value such as the byte count of write_text
                assert "image/png" in output["data"] or not str(output["data"].get("text/plain", "")).isdigit(), \
                    f"{where} shows a stray number"
        if outputs:
            assert cell["execution_count"] is not None, f"{where} has outputs but no execution count"
        if cell["execution_count"] is not None:
            counts.append(cell["execution_count"])
    assert counts == sorted(counts) and len(set(counts)) == len(counts), f"{path.name} was not run top to bottom"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_is_a_few_plain_lines(path):
    """One cell tagged "parameters", of plain assignments (settings.setting reads the environment overrides)."""
    tagged = [c for c in cells(path) if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
    lines = [line for line in "".join(tagged[0]["source"]).splitlines() if line.strip()]
    assert len(lines) <= 14, f"{path.name}: parameters cell of {len(lines)} lines"
    text = "".join("".join(c["source"]) for c in cells(path))
    assert "os.environ" not in text, f"{path.name} reads the environment itself instead of settings.setting"


def test_every_notebook_is_listed_in_the_overview_and_the_readme():
    overview = "".join("".join(c["source"]) for c in cells(NOTEBOOKS[0]) if c["cell_type"] == "markdown")
    readme = (NOTEBOOKS[0].parents[1] / "README.md").read_text()
    for path in NOTEBOOKS:
        stem = path.stem
        assert f"| {stem[:2]} " in overview, f"00's table does not list {stem}"
        assert stem in readme, f"the README does not list {stem}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_speaks_about_the_project_only(path):
    import re

    text = " ".join("".join(c["source"]) for c in cells(path))
    assert not re.search(r"\bsessions?\b|was lent|were lent|no GPU was available", text, re.I)


# What the prose says, the outputs show: a result figure in a notebook's markdown (a percentage or a speed-up with
# decimals, like "83.84 %" or "1.55x") must appear in that notebook's stored outputs, or be a quoted figure listed
# here with its source. Integers ("25 % of the tokens") are settings, not results, and are not checked.
RESULT_FIGURE = re.compile(r"(?<![\w.])(\d+\.\d+)\s?(%|x\b|×)")
QUOTED: dict[str, set[str]] = {}  # notebook name -> figures quoted from papers or other runs, each with its source


def result_figures(text: str) -> set[str]:
    return {f"{number}{'%' if unit == '%' else 'x'}" for number, unit in RESULT_FIGURE.findall(text)}


def output_text(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append("".join(output.get("text", "")))
        parts += ["".join(output.get("data", {}).get(kind, "")) for kind in ("text/plain", "text/markdown")]
    return "\n".join(parts)


def test_result_figures_are_found_in_a_text_and_in_outputs():
    assert result_figures("reaches 83.84 % (1.55x faster, 2.20× at r=10), 25 % of tokens, v1.5") == {
        "83.84%", "1.55x", "2.20x"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_result_figure_in_the_prose_is_in_the_outputs(path):
    prose = "\n".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == "markdown")
    shown = result_figures("\n".join(output_text(c) for c in cells(path)))
    missing = result_figures(prose) - shown - QUOTED.get(path.name, set())
    assert not missing, f"{path.name}: the prose quotes {sorted(missing)}, which no output shows"


def test_ci_runs_the_readme_s_test_command_with_strict_nbval():
    """Every cell's output is compared (strict nbval), except cells tagged as depending on the run; the README's
    test command is what .ci/run runs."""
    root = NOTEBOOKS[0].parents[1]
    readme = (root / "README.md").read_text()
    command = re.search(r"Run the tests.*?```bash\n(.+?)\n```", readme, re.S).group(1)
    assert command.replace(".venv/bin/python", "python") in (root / ".ci" / "run").read_text()
    assert " --nbval " in command + " " and "--nbval-lax" not in command
    for path in NOTEBOOKS:
        tags = {tag for cell in cells(path) for tag in cell["metadata"].get("tags", [])}
        assert "nbval-check-output" not in tags, f"{path.name}: a lax-mode tag (strict nbval compares every cell)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cells_that_print_the_machines_precision_choice_are_tagged_as_run_dependent(path):
    """``choose_precision`` times this CPU: bf16 where it has native bf16, fp32 on most readers' CPUs (and on a CI
    machine without it), so a cell that prints its choice cannot be compared with the stored output."""
    for index, cell in enumerate(cells(path)):
        if cell["cell_type"] == "code" and "choose_precision(" in "".join(cell["source"]) and cell.get("outputs"):
            tags = cell["metadata"].get("tags", [])
            assert "nbval-ignore-output" in tags, f"{path.name}, cell {index}: prints the machine's precision choice"
