"""The notebooks' exercises: every reference solution passes its check, typical mistakes do not, an unanswered
exercise says so, every exercise has its check cell in a notebook (whose stored output is the "not answered yet"
line), and every open question has its expected answer in ``solutions.OPEN_ANSWERS``."""

import functools
import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from exercises import EXERCISES, check, solutions
from exercises.solutions import OPEN_ANSWERS, SOLUTIONS

from vit_replication.analysis.flops import forward_macs

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NUMBERS = [f"{n:02d}" for n in range(1, 12) if n != 6]  # the notebooks that end with exercises


def test_every_exercise_has_a_solution():
    assert set(SOLUTIONS) == set(EXERCISES) and len(EXERCISES) >= 2 * len(NUMBERS)


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


def _reshape_patchify(x, p, stride):  # notebook 01's reshape: whole tiles only, the stride ignored
    B, C, H, W = x.shape
    return x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, -1, C * p * p)


def _weights_masked_after_softmax(q, k, v, padding):  # zeroed, but the rows no longer sum to 1
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return weights.masked_fill(padding[:, None, None, :], 0.0) @ v


def _rms_norm_centred(x, weight, eps):  # LayerNorm's centring kept
    return F.layer_norm(x, x.shape[-1:], eps=eps) * weight


def _realformer_passing_weights(blocks, z):  # the previous softmax weights passed on instead of the scores
    weights = None
    for block in blocks:
        q, k, v = block.attention.split_heads(block.norm1(z))
        scores = block.attention.scores(q, k) + (0 if weights is None else weights)
        weights = scores.softmax(dim=-1)
        z = z + block.attention.merge_heads(weights @ v)
        z = z + block.mlp(block.norm2(z))
    return z


def _merge_pairs_with(keys, r, cosine=True, protect=True, positions=True):
    metric = keys / keys.norm(dim=-1, keepdim=True) if cosine else keys
    similarity = metric[::2] @ metric[1::2].T
    if protect:
        similarity[0] = -float("inf")
    best, partner = similarity.max(dim=-1)
    chosen = best.argsort(descending=True)[:r].tolist()
    return {(2 * a, 2 * partner[a].item() + 1) if positions else (a, partner[a].item()) for a in chosen}


def _ridge_probe_with(train_x, train_y, test_x, k, lam, targets="pm1", bias="free"):
    x = torch.cat([train_x, torch.ones(len(train_x), 1)], dim=1) if bias != "none" else train_x
    t = F.one_hot(train_y, k).float()
    t = 2 * t - 1 if targets == "pm1" else t
    penalty = lam * torch.eye(x.shape[1])
    if bias == "free":
        penalty[-1, -1] = 0
    w = torch.linalg.solve(x.T @ x + penalty, x.T @ t)
    test = torch.cat([test_x, torch.ones(len(test_x), 1)], dim=1) if bias != "none" else test_x
    return test @ w


def _projections(c):
    return sum(a * b + b for a, b in zip(c.stage_dims[:-1], c.stage_dims[1:]))


def _projection_macs(c):
    return ((c.image_size // c.patch_size) ** 2 + 1) * sum(a * b for a, b in zip(c.stage_dims[:-1], c.stage_dims[1:]))


MISTAKES = {  # typical wrong answers, each of which its check must catch
    "01.1": [lambda h, w, p, s: (h // p) * (w // p) + 1,  # the stride ignored
             lambda h, w, p, s: (h // s) * (w // s) + 1],  # as if a patch could start anywhere, even off the edge
    "01.2": [_reshape_patchify,
             lambda x, p, s: x.unfold(2, p, s).unfold(3, p, s).reshape(x.shape[0], -1, x.shape[1] * p * p)],  # C first
    "01.3": [lambda s, p, c, d: p * p * c * d + d + (s // p) ** 2 * d],  # no class token, E_pos one short
    "02.1": [lambda q, k, v, padding: F.scaled_dot_product_attention(q, k, v),  # padding ignored
             _weights_masked_after_softmax,
             lambda q, k, v, padding: solutions.masked_attention(q, k, v, ~padding)],  # the mask the other way round
    "02.2": [lambda d: 4 * d * d],  # no biases
    "03.1": [lambda x: 0.5 * (1 + torch.erf(x / math.sqrt(2))),  # Phi alone: the product rule forgotten
             lambda x: (x > 0).float()],  # ReLU's derivative
    "03.2": [_rms_norm_centred,
             lambda x, weight, eps: x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * weight],  # eps outside
    "03.3": [lambda z, attention, mlp, norm1, norm2: (lambda y: y + mlp(norm2(y)))(z + attention(norm1(z)))],  # pre-LN
    "04.1": [lambda config: solutions.vit_parameters(config) - config.num_classes],  # head without bias
    "04.2": [lambda config, size: forward_macs(config)["total"],  # at the config's own size
             lambda config, size: solutions.vit_macs(config, size) - forward_macs(config, size)["attention_scores"]],
    "04.3": [lambda pe, g: torch.cat([pe[:, :1], F.interpolate(pe[:, 1:].transpose(1, 2), size=g * g, mode="linear",
                                                               align_corners=False).transpose(1, 2)], dim=1),  # 1D
             lambda pe, g: torch.cat([pe[:, :1], F.interpolate(  # the rows reshaped without moving D to the front
                 pe[:, 1:].reshape(1, pe.shape[-1], math.isqrt(pe.shape[1] - 1), -1), size=(g, g), mode="bicubic",
                 align_corners=False).reshape(1, g * g, -1)], dim=1)],
    "05.1": [lambda step, peak, warmup, total: peak * 0.5 * (1 + math.cos(math.pi * step / total))],  # no warm-up
    "05.2": [lambda labels, k, eps: (1 - eps) * F.one_hot(labels, k).float() + eps / (k - 1)],
    "07.1": [lambda grid, p: grid * p / 2],
    "07.2": [lambda attentions: solutions.rollout(attentions[::-1])],  # multiplied in the wrong order
    "08.1": [lambda raw, decay: list(raw),  # no stream: the plain ViT
             lambda raw, decay: list(torch.stack(raw).cumsum(0))],  # the decay ignored
    "08.2": [lambda blocks, z: functools.reduce(lambda y, block: block(y), blocks, z),  # the plain ViT
             _realformer_passing_weights],
    "09.1": [lambda c: solutions.width_varying_parameters(c) - _projections(c)],  # no projections
    "09.2": [lambda c: solutions.width_varying_macs(c) - _projection_macs(c)],  # projections not counted
    "10.1": [lambda n, layers, r: n - layers * r,  # the introduction's N + 1 - L r, without the cap
             lambda n, layers, r: max(1, n - layers * r)],
    "10.2": [functools.partial(_merge_pairs_with, cosine=False),  # dot products: long keys win
             functools.partial(_merge_pairs_with, protect=False),  # the class token merges
             functools.partial(_merge_pairs_with, positions=False)],  # positions within A and B
    "11.1": [functools.partial(_ridge_probe_with, targets="one-hot"),  # 0/1 targets, not the paper's +-1
             functools.partial(_ridge_probe_with, bias="penalised"),
             functools.partial(_ridge_probe_with, bias="none")],
    "11.2": [lambda x, y, k: tuple(len(y) * g for g in solutions.zero_head_gradient(x, y, k)),  # summed, not mean
             lambda x, y, k: tuple(-g for g in solutions.zero_head_gradient(x, y, k))],  # the step, not the gradient
}


@pytest.mark.parametrize(("exercise", "index"), [(e, i) for e in sorted(MISTAKES) for i in range(len(MISTAKES[e]))])
def test_mistake_is_not_right(exercise, index, capsys):
    assert not check(exercise, MISTAKES[exercise][index])
    out = capsys.readouterr().out
    assert out.startswith(f"Exercise {exercise}: not yet. ") and f"Hint: {EXERCISES[exercise].hint}." in out


def test_every_exercise_has_a_mistake_that_is_caught():
    assert set(MISTAKES) == set(EXERCISES)


def test_unknown_exercise_names_the_ones_there_are():
    with pytest.raises(KeyError, match="01.1, 01.2"):
        check("99.9", solutions.gelu_grad)


def _cells(number: str) -> tuple[Path, list[dict]]:
    path = next(NOTEBOOKS.glob(f"{number}_*.ipynb"))
    return path, json.loads(path.read_text())["cells"]


@pytest.mark.parametrize("number", NUMBERS)
def test_each_exercise_is_checked_in_its_notebook(number):
    """Notebook NN holds a cell calling check("NN.k", ...) for each of its exercises, at least two per notebook, and
    the stored output of that cell is the line an unanswered exercise prints (the committed notebooks hold stubs)."""
    path, cells = _cells(number)
    mine = [e for e in EXERCISES if e.startswith(number + ".")]
    assert len(mine) >= 2, number
    for exercise in mine:
        found = [c for c in cells if c["cell_type"] == "code" and f'check("{exercise}", ' in "".join(c["source"])]
        assert len(found) == 1, f"{path.name} has {len(found)} check cells for exercise {exercise}"
        assert "raise NotImplementedError  # your code here" in "".join(found[0]["source"])
        shown = "".join("".join(o.get("text", "")) for o in found[0]["outputs"])
        assert shown == f"Exercise {exercise}: not answered yet. Write {EXERCISES[exercise].task}.\n", \
            f"{path.name}: the stored output of exercise {exercise}'s check cell is not its unanswered line"


@pytest.mark.parametrize("number", NUMBERS)
def test_open_questions_have_expected_answers(number):
    """Every exercise a notebook asks ("**NN.k · title.**") without a check is an open question: its expected
    answer is in OPEN_ANSWERS, and the question says so; so does every checked exercise that asks a question
    answered there."""
    path, cells = _cells(number)
    for cell in cells:
        text = "".join(cell["source"])
        if cell["cell_type"] != "markdown":
            continue
        for exercise in re.findall(r"\*\*(\d\d\.\d+) ·", text):
            if exercise not in EXERCISES or exercise in OPEN_ANSWERS:
                assert exercise in OPEN_ANSWERS, f"{path.name}: open question {exercise} has no expected answer"
                assert f'OPEN_ANSWERS["{exercise}"]' in text and "solutions.py" in text, \
                    f"{path.name}: question {exercise} does not say where its expected answer is"
    asked = {e for e in OPEN_ANSWERS if e.startswith(number + ".")}
    text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert all(f"**{e} ·" in text for e in asked), f"{path.name} does not ask {sorted(asked)}"
