"""The notebooks' exercises: every reference solution passes its check, typical mistakes do not, an unanswered
exercise says so, and every exercise has its check cell in a notebook."""

import json
import math
from pathlib import Path

import pytest
import torch

from vit_replication import solutions
from vit_replication.exercises import EXERCISES, check
from vit_replication.solutions import SOLUTIONS

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_every_exercise_has_a_solution():
    assert set(SOLUTIONS) == set(EXERCISES) and len(EXERCISES) >= 12


@pytest.mark.parametrize("exercise", sorted(EXERCISES))
def test_solution_is_right(exercise, capsys):
    assert check(exercise, SOLUTIONS[exercise])
    assert capsys.readouterr().out == f"Exercise {exercise}: right.\n"


def _unanswered(*args):
    raise NotImplementedError


@pytest.mark.parametrize("exercise", sorted(EXERCISES))
def test_unanswered_says_what_to_write(exercise, capsys):
    assert not check(exercise, _unanswered)
    out = capsys.readouterr().out
    assert out == f"Exercise {exercise}: not answered yet. Write {EXERCISES[exercise].task}.\n"  # no hint yet


MISTAKES = {
    "01.1": lambda image_size, patch_size: (image_size // patch_size) ** 2,  # forgot the class token
    "01.2": lambda x, p: x.reshape(x.shape[0], x.shape[1], -1, p * p).transpose(1, 2).flatten(2),  # rows of pixels
    "01.3": lambda s, p, c, d: p * p * c * d + d + (s // p) ** 2 * d,  # no class token, E_pos one short
    "02.1": lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v,  # no 1/sqrt(D_h)
    "02.2": lambda d: 4 * d * d,  # no biases
    "03.1": torch.relu,
    "03.2": lambda x, eps: (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + eps),  # unbiased
    "03.3": lambda z, attention, mlp, norm1, norm2: (lambda y: y + mlp(norm2(y)))(z + attention(norm1(z))),  # pre-LN
    "04.1": lambda config: solutions.vit_parameters(config) - config.num_classes,  # head without bias
    "04.2": lambda z: z.mean(dim=1),  # the class token averaged in
    "05.1": lambda step, peak, warmup, total: peak * 0.5 * (1 + math.cos(math.pi * step / total)),  # no warm-up
    "05.2": lambda labels, k, eps: (1 - eps) * torch.nn.functional.one_hot(labels, k).float() + eps / (k - 1),
    "06.1": lambda grid, p: grid * p / 2,
    "06.2": lambda attentions: solutions.rollout(attentions[::-1]),  # multiplied in the wrong order
}


@pytest.mark.parametrize("exercise", sorted(MISTAKES))
def test_mistake_is_not_right(exercise, capsys):
    assert not check(exercise, MISTAKES[exercise])
    out = capsys.readouterr().out
    assert out.startswith(f"Exercise {exercise}: not yet. ") and f"Hint: {EXERCISES[exercise].hint}." in out


def test_unknown_exercise_names_the_ones_there_are():
    with pytest.raises(KeyError, match="01.1, 01.2"):
        check("99.9", solutions.gelu)


def test_each_exercise_is_checked_in_its_notebook():
    """Notebook NN holds a cell calling check("NN.k", ...) for each of its exercises, at least two per notebook."""
    for number in ("01", "02", "03", "04", "05", "06"):
        path = next(NOTEBOOKS.glob(f"{number}_*.ipynb"))
        text = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        mine = [e for e in EXERCISES if e.startswith(number + ".")]
        assert len(mine) >= 2, number
        for exercise in mine:
            assert f'check("{exercise}", ' in text, f"{path.name} has no check cell for exercise {exercise}"
