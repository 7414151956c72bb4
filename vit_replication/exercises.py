"""The exercises of notebooks 01-06 and their checks: ``check("01.2", patchify)`` prints one line, right or not
yet (with a hint), and returns True or False. Each check compares the reader's answer with an independent
reference (PyTorch's own functions, or the package's tested modules) on random inputs. The reference solutions are
in ``solutions.py``; CI runs every check against them (tests/test_exercises.py).

An answer that still raises ``NotImplementedError`` (the notebooks' starting point) is "not answered yet"; the hint
is shown only once an answer has been tried and is not right.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Exercise:
    task: str  # what to write, one line
    hint: str  # shown when the answer is not right yet
    check: Callable[[Callable], None]  # raises AssertionError with the reason when the answer is wrong


def _close(got: torch.Tensor, expected: torch.Tensor, what: str, atol: float = 1e-5) -> None:
    assert isinstance(got, torch.Tensor), f"{what}: expected a tensor, got {type(got).__name__}"
    assert got.shape == expected.shape, f"{what}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    assert torch.allclose(got.float(), expected.float(), atol=atol, rtol=1e-4), \
        f"{what}: values differ by up to {(got.float() - expected.float()).abs().max():.3g}"


def _equal(got, expected, what: str) -> None:
    assert got == expected, f"{what}: got {got!r}, expected {expected!r}"


# 01 · Eq. 1
def _sequence_length(answer: Callable) -> None:
    for image_size, patch_size in [(224, 16), (224, 32), (384, 16), (32, 4), (64, 8)]:
        _equal(answer(image_size, patch_size), (image_size // patch_size) ** 2 + 1,
               f"sequence_length({image_size}, {patch_size})")


def _patchify(answer: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    for shape, patch_size in [((2, 3, 8, 8), 4), ((1, 3, 32, 32), 16), ((2, 1, 6, 6), 2)]:
        x = torch.randn(*shape, generator=g)
        # an independent reference: F.unfold cuts the same non-overlapping patches, channel-major within a patch
        expected = F.unfold(x, kernel_size=patch_size, stride=patch_size).transpose(1, 2)
        _close(answer(x, patch_size), expected, f"patchify(x of shape {shape}, {patch_size})")


def _embedding_parameters(answer: Callable) -> None:
    from .embedding import ViTEmbedding

    for args in [(224, 16, 3, 768), (32, 4, 3, 128), (384, 32, 1, 64)]:
        expected = sum(p.numel() for p in ViTEmbedding(*args).parameters())
        _equal(answer(*args), expected, f"embedding_parameters{args}")


# 02 · Eq. 2
def _attention(answer: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    for shape in [(2, 5, 8), (1, 3, 7, 16)]:
        q, k, v = (torch.randn(*shape, generator=g) for _ in range(3))
        _close(answer(q, k, v), F.scaled_dot_product_attention(q, k, v), f"attention on {shape}")


def _msa_parameters(answer: Callable) -> None:
    from .attention import MultiHeadSelfAttention

    for hidden_dim, heads in [(768, 12), (128, 4), (1024, 16)]:
        expected = sum(p.numel() for p in MultiHeadSelfAttention(hidden_dim, heads).parameters())
        _equal(answer(hidden_dim), expected, f"msa_parameters({hidden_dim})")


# 03 · Eq. 3 and the encoder layer
def _gelu(answer: Callable) -> None:
    x = torch.linspace(-5, 5, 101)
    _close(answer(x), nn.GELU()(x), "gelu(x)", atol=1e-6)


def _layer_norm(answer: Callable) -> None:
    x = torch.randn(2, 7, 16, generator=torch.Generator().manual_seed(0)) * 3 + 1
    _close(answer(x, 1e-6), F.layer_norm(x, (16,), eps=1e-6), "layer_norm(x, 1e-6)")


def _post_ln_layer(answer: Callable) -> None:
    """The answer's post-LN layer with the package's modules against PyTorch's nn.TransformerEncoderLayer with
    norm_first=False (the original Transformer's order), given the same weights."""
    from .attention import MultiHeadSelfAttention
    from .mlp import MLPBlock

    torch.manual_seed(0)
    d, heads, d_mlp = 32, 4, 64
    reference = nn.TransformerEncoderLayer(d, heads, d_mlp, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=False, layer_norm_eps=1e-6).eval()
    attention, mlp = MultiHeadSelfAttention(d, heads).eval(), MLPBlock(d, d_mlp).eval()
    norm1, norm2 = nn.LayerNorm(d, eps=1e-6), nn.LayerNorm(d, eps=1e-6)
    with torch.no_grad():
        attention.qkv.weight.copy_(reference.self_attn.in_proj_weight)
        attention.qkv.bias.copy_(reference.self_attn.in_proj_bias)
        attention.proj.load_state_dict(reference.self_attn.out_proj.state_dict())
        mlp.fc1.load_state_dict(reference.linear1.state_dict())
        mlp.fc2.load_state_dict(reference.linear2.state_dict())
        for ours, theirs in ((norm1, reference.norm1), (norm2, reference.norm2)):
            nn.init.normal_(theirs.weight, 1.0, 0.2)
            nn.init.normal_(theirs.bias, 0.0, 0.2)
            ours.load_state_dict(theirs.state_dict())
        z = torch.randn(2, 9, d)
        _close(answer(z, attention, mlp, norm1, norm2), reference(z), "post_ln_layer(z, ...)")


# 04 · Eq. 4 and the whole model
def _vit_parameters(answer: Callable) -> None:
    from .model import CONFIGS, ViT

    for name in ("vit_ti_16", "vit_b_16", "vit_l_32", "vit_cifar"):
        config = CONFIGS[name]
        with torch.device("meta"):
            expected = sum(p.numel() for p in ViT(config).parameters())
        _equal(answer(config), expected, f"vit_parameters(CONFIGS[{name!r}])")


def _gap_pool(answer: Callable) -> None:
    from .model import ViT

    model = ViT(image_size=16, patch_size=4, hidden_dim=8, num_layers=1, num_heads=2, mlp_dim=16, pool="gap")
    z = torch.randn(3, 17, 8, generator=torch.Generator().manual_seed(0))
    _close(answer(z), model.pool(z), "gap_pool(z)")


# 05 · training
def _lr_at(answer: Callable) -> None:
    from .optim import warmup_cosine

    peak, warmup, total = 2e-3, 10, 100
    scheduler = warmup_cosine(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=peak), warmup, total)
    for step in range(total):
        expected = scheduler.get_last_lr()[0]
        got = answer(step, peak, warmup, total)
        assert math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-12), \
            f"lr_at({step}, {peak}, {warmup}, {total}): got {got:.6g}, expected {expected:.6g}"
        scheduler.optimizer.step()
        scheduler.step()


def _smoothed_targets(answer: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(6, 10, generator=g), torch.randint(0, 10, (6,), generator=g)
    targets = answer(labels, 10, 0.1)
    _close(targets.sum(-1), torch.ones(6), "each row of smoothed_targets sums to 1")
    _close(F.cross_entropy(logits, targets), nn.CrossEntropyLoss(label_smoothing=0.1)(logits, labels),
           "cross-entropy with smoothed_targets(labels, 10, 0.1)")


# 06 · what the model learned
def _uniform_distance(answer: Callable) -> None:
    from .attention_maps import uniform_attention_distance

    for grid, patch_size in [(8, 4), (14, 16), (2, 1)]:
        got, expected = answer(grid, patch_size), uniform_attention_distance(grid, patch_size)
        assert math.isclose(got, expected, rel_tol=1e-5), f"uniform_distance({grid}, {patch_size}): got {got}, " \
                                                          f"expected {expected:.4f}"


def _rollout(answer: Callable) -> None:
    from .attention_maps import attention_rollout

    g = torch.Generator().manual_seed(0)
    attentions = [torch.rand(2, 3, 5, 5, generator=g).softmax(-1) for _ in range(4)]
    _close(answer(attentions), attention_rollout(attentions), "rollout(attentions)")


EXERCISES: dict[str, Exercise] = {
    "01.1": Exercise("sequence_length(image_size, patch_size): tokens the encoder sees, class token included",
                     "N = HW / P^2 patches, plus one class token", _sequence_length),
    "01.2": Exercise("patchify(x, patch_size): [B, C, H, W] -> [B, N, P*P*C], patches in row-major order, each "
                     "flattened channel by channel (as Conv2d's kernels are)",
                     "reshape to [B, C, H/P, P, W/P, P], permute to [B, H/P, W/P, C, P, P], then flatten", _patchify),
    "01.3": Exercise("embedding_parameters(image_size, patch_size, channels, hidden_dim): parameters of Eq. 1",
                     "E and its bias (P^2 C D + D), the class token (D), E_pos ((N + 1) D)", _embedding_parameters),
    "02.1": Exercise("attention(q, k, v): softmax(q k^T / sqrt(D_h)) v over the last two dimensions (Eqs. 6-7)",
                     "D_h is q.shape[-1]; the softmax runs over the keys, the last dimension of q k^T", _attention),
    "02.2": Exercise("msa_parameters(hidden_dim): parameters of one MSA (U_qkv and U_msa, with biases)",
                     "U_qkv is D x 3D plus 3D biases, U_msa D x D plus D; the number of heads does not matter",
                     _msa_parameters),
    "03.1": Exercise("gelu(x): x * Phi(x), Phi the standard normal CDF", "Phi(x) = (1 + erf(x / sqrt 2)) / 2",
                     _gelu),
    "03.2": Exercise("layer_norm(x, eps): each token normalised over its D features (no learned scale/shift)",
                     "mean and biased variance over the last dimension: (x - mean) / sqrt(var + eps)", _layer_norm),
    "03.3": Exercise("post_ln_layer(z, attention, mlp, norm1, norm2): the original Transformer's order, "
                     "LN after each residual addition",
                     "z = norm1(z + attention(z)), then norm2(z + mlp(z))", _post_ln_layer),
    "04.1": Exercise("vit_parameters(config): the parameters of a ViTConfig, by formula",
                     "Eq. 1 (notebook 01), 12 D^2 + 13 D per layer with D_mlp = 4D (use config.mlp_dim: 4 LN "
                     "vectors, U_qkv, U_msa, the MLP), the final LN (2D) and the head (D K + K)", _vit_parameters),
    "04.2": Exercise("gap_pool(z): global average pooling, the mean of the patch tokens of z [B, N+1, D] (App. D.3)",
                     "leave out token 0, the class token, then average over the token dimension", _gap_pool),
    "05.1": Exercise("lr_at(step, peak, warmup_steps, total_steps): linear warm-up, then cosine to zero",
                     "step < warmup: peak (step + 1) / warmup; after: peak (1 + cos(pi t)) / 2 with t the share "
                     "of the steps after the warm-up that are done", _lr_at),
    "05.2": Exercise("smoothed_targets(labels, num_classes, eps): (1 - eps) one-hot + eps / num_classes",
                     "F.one_hot(labels, num_classes).float() gives the one-hot rows", _smoothed_targets),
    "06.1": Exercise("uniform_distance(grid, patch_size): mean distance in pixels between the centres of two "
                     "patches drawn at random from a grid x grid image (a patch may draw itself)",
                     "all pairs of (row, column) centres, times patch_size, torch.cdist, then the mean",
                     _uniform_distance),
    "06.2": Exercise("rollout(attentions): heads averaged, 0.5 A + 0.5 I, rows renormalised, multiplied from the "
                     "first layer up: R = A~_L ... A~_1",
                     "start from the identity and left-multiply each layer's A~ in turn", _rollout),
}


def check(exercise: str, answer: Callable) -> bool:
    """Check ``answer`` to ``exercise`` ("01.2"), print one line that says right or what is wrong, and return
    whether it is right."""
    if exercise not in EXERCISES:
        raise KeyError(f"no exercise {exercise!r}; there are {', '.join(EXERCISES)}")
    entry = EXERCISES[exercise]
    try:
        entry.check(answer)
    except NotImplementedError:
        print(f"Exercise {exercise}: not answered yet. Write {entry.task}.")
        return False
    except Exception as err:  # the reader's code may fail in any way; say how, with the hint
        reason = str(err) if isinstance(err, AssertionError) else f"{type(err).__name__}: {err}"
        print(f"Exercise {exercise}: not yet. {reason}. Hint: {entry.hint}.")
        return False
    print(f"Exercise {exercise}: right.")
    return True
