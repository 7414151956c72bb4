"""The exercises of notebooks 01-10 and their checks: ``check("01.2", patchify)`` prints one line,
right or not yet (with a hint), and returns whether it is right. Each check compares the answer
with an independent reference (PyTorch, a closed form, or the package's tested modules) on random
inputs, never with a stored number. Reference solutions and the answers to the open questions are
in ``solutions.py``.

An answer that raises ``NotImplementedError`` (the notebooks' stubs) is "not answered yet". The
checks call the answer before building their references, so that an unanswered one costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vit_replication.model.attention import MultiHeadSelfAttention
from vit_replication.model.embedding import ViTEmbedding, resample_position_embedding
from vit_replication.model.mlp import MLPBlock
from vit_replication.model.vit import CONFIGS, ViT, ViTConfig, count_parameters
from vit_replication.variants.realformer import RealFormerViT
from vit_replication.variants.tome import ToMeViT, bipartite_soft_matching
from vit_replication.variants.width_varying import WidthVaryingConfig, WidthVaryingViT


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


@contextmanager
def _seeded(seed: int = 0):
    """Seeded random numbers for a reference, leaving the reader's random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# 01 · Eq. 1
def _sequence_length(answer: Callable) -> None:
    for h, w, p, s in [(224, 224, 16, 16), (224, 224, 16, 8), (32, 32, 4, 2), (384, 224, 16, 16),
                       (30, 20, 7, 3), (32, 48, 8, 4)]:
        got = answer(h, w, p, s)
        windows = F.unfold(torch.zeros(1, 1, h, w), kernel_size=p, stride=s).shape[-1]  # where F.unfold slides
        _equal(got, windows + 1, f"sequence_length({h}, {w}, {p}, {s})")


def _patchify(answer: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    for shape, p, s in [((2, 3, 8, 8), 4, 4), ((2, 3, 8, 8), 4, 2), ((1, 2, 9, 7), 3, 2), ((2, 1, 6, 6), 2, 1)]:
        x = torch.randn(*shape, generator=g)
        got = answer(x, p, s)
        expected = F.unfold(x, kernel_size=p, stride=s).transpose(1, 2)  # channel-major within a patch
        _close(got, expected, f"patchify(x of shape {shape}, {p}, {s})")


def _embedding_parameters(answer: Callable) -> None:
    for args in [(224, 16, 3, 768), (32, 4, 3, 128), (384, 32, 1, 64)]:
        _equal(answer(*args), count_parameters(ViTEmbedding(*args)), f"embedding_parameters{args}")


# 02 · Eq. 2
def _masked_attention(answer: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    for shape in [(2, 3, 5, 8), (3, 2, 7, 16)]:
        b, _, n, _ = shape
        q, k, v = (torch.randn(*shape, generator=g) for _ in range(3))
        lengths = torch.randint(1, n, (b,), generator=g)  # every sequence keeps a real token
        padding = torch.arange(n) >= lengths[:, None]  # [B, N], True at the padded keys
        got = answer(q, k, v, padding)
        # SDPA's boolean mask is the other way round: True where a key takes part
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=~padding[:, None, None, :])
        _close(got, expected, f"masked_attention on {shape}, keys padded after {lengths.tolist()}")


def _msa_parameters(answer: Callable) -> None:
    for d, heads in [(768, 12), (128, 4), (1024, 16)]:
        _equal(answer(d), count_parameters(MultiHeadSelfAttention(d, heads)), f"msa_parameters({d})")


# 03 · Eq. 3 and the encoder layer
def _gelu_grad(answer: Callable) -> None:
    x = torch.linspace(-5, 5, 101)
    got = answer(x.clone())
    x.requires_grad_(True)
    nn.GELU()(x).sum().backward()  # d GELU(x_i) / d x_i for every element, by autograd
    _close(got, x.grad, "gelu_grad(x)", atol=1e-5)


def _rms_norm(answer: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(16, generator=g)
    for scale, eps in [(3.0, 1e-6), (0.05, 1e-2)]:  # small tokens: where eps goes matters
        x = torch.randn(2, 7, 16, generator=g) * scale + scale / 3
        got = answer(x, weight, eps)
        _close(got, F.rms_norm(x, (16,), weight, eps=eps), f"rms_norm(x of scale {scale}, weight, {eps})")


def _post_ln_layer(answer: Callable) -> None:
    """Against PyTorch's post-LN ``nn.TransformerEncoderLayer``, whose weights the modules share."""
    with _seeded(0):
        reference = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation="gelu", batch_first=True,
                                               norm_first=False, layer_norm_eps=1e-6).eval()
        attention, mlp = MultiHeadSelfAttention(32, 4).eval(), MLPBlock(32, 64).eval()
        for norm in (reference.norm1, reference.norm2):  # not the identity, so that a misplaced LN shows
            nn.init.normal_(norm.weight, 1.0, 0.2)
            nn.init.normal_(norm.bias, 0.0, 0.2)
        z = torch.randn(2, 9, 32)
    attention.qkv.weight, attention.qkv.bias = reference.self_attn.in_proj_weight, reference.self_attn.in_proj_bias
    attention.proj, mlp.fc1, mlp.fc2 = reference.self_attn.out_proj, reference.linear1, reference.linear2
    with torch.no_grad():
        _close(answer(z, attention, mlp, reference.norm1, reference.norm2), reference(z), "post_ln_layer(z, ...)")


# 04 · Eq. 4 and the whole model
def _vit_parameters(answer: Callable) -> None:
    for name in ("vit_ti_16", "vit_b_16", "vit_l_32", "vit_cifar"):
        got = answer(CONFIGS[name])
        with torch.device("meta"):
            _equal(got, count_parameters(ViT(CONFIGS[name])), f"vit_parameters(CONFIGS[{name!r}])")


def _vit_macs(answer: Callable) -> None:
    from vit_replication.analysis.flops import forward_macs

    small = ViTConfig(image_size=64, patch_size=8, num_classes=7, hidden_dim=96, num_layers=3, num_heads=3,
                      mlp_dim=200)
    cases = [(f"CONFIGS[{name!r}]", CONFIGS[name], size)
             for name, size in [("vit_b_16", 384), ("vit_l_16", 512), ("vit_cifar", 48), ("vit_ti_16", 224)]]
    for name, config, size in cases + [("a 3-layer ViT with D = 96 on 8x8 patches", small, 96)]:
        _equal(answer(config, size), forward_macs(config, size)["total"], f"vit_macs({name}, {size})")


def _resample_pos(answer: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    for old, new, d in [(4, 6, 8), (7, 14, 16), (8, 12, 4), (5, 5, 8)]:
        position_embedding = torch.randn(1, 1 + old * old, d, generator=g)
        got = answer(position_embedding.clone(), new)
        _close(got, resample_position_embedding(position_embedding, new),
               f"resample_pos(E_pos of a {old}x{old} grid, {new})", atol=1e-4)


# 05 · training
def _lr_at(answer: Callable) -> None:
    from vit_replication.training.schedule import lr_factor

    peak, warmup, total = 2e-3, 10, 100
    for step in range(total):
        got = answer(step, peak, warmup, total)
        expected = peak * lr_factor(step / total, step, warmup, warmup / total, "cosine")
        assert math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-12), \
            f"lr_at({step}, {peak}, {warmup}, {total}): got {got:.6g}, expected {expected:.6g}"


def _smoothed_targets(answer: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(6, 10, generator=g), torch.randint(0, 10, (6,), generator=g)
    targets = answer(labels, 10, 0.1)
    _close(targets.sum(-1), torch.ones(6), "each row of smoothed_targets sums to 1")
    _close(F.cross_entropy(logits, targets), nn.CrossEntropyLoss(label_smoothing=0.1)(logits, labels),
           "cross-entropy with smoothed_targets(labels, 10, 0.1)")


# 06 · what the model learned
def _uniform_distance(answer: Callable) -> None:
    from vit_replication.analysis.attention_maps import uniform_attention_distance

    for grid, patch_size in [(8, 4), (14, 16), (2, 1)]:
        got, expected = answer(grid, patch_size), uniform_attention_distance(grid, patch_size)
        assert math.isclose(got, expected, rel_tol=1e-5), \
            f"uniform_distance({grid}, {patch_size}): got {got}, expected {expected:.4f}"


def _rollout(answer: Callable) -> None:
    from vit_replication.analysis.attention_maps import attention_rollout

    g = torch.Generator().manual_seed(0)
    attentions = [torch.rand(2, 3, 5, 5, generator=g).softmax(-1) for _ in range(4)]
    _close(answer(attentions), attention_rollout(attentions), "rollout(attentions)")


# 07 · RealFormer
def _score_stream(answer: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    raw = [torch.randn(2, 3, 5, 5, generator=g) for _ in range(4)]
    for decay in (1.0, 0.5, 0.0):
        got = answer([r.clone() for r in raw], decay)
        assert isinstance(got, (list, tuple)) and len(got) == len(raw), \
            f"score_stream(4 layers' scores, {decay}): expected a list of 4 tensors, got {got!r:.60}"
        for layer in range(len(raw)):  # the closed form: S_l = sum over j <= l of decay^(l - j) R_j
            weights = torch.tensor([decay ** (layer - j) for j in range(layer + 1)])
            expected = torch.einsum("j,j...->...", weights, torch.stack(raw[:layer + 1]))
            _close(got[layer], expected,
                   f"score_stream(4 layers' scores, {decay})[{layer}], the scores of layer {layer + 1}")


def _realformer_tokens(answer: Callable) -> None:
    config = ViTConfig(image_size=16, patch_size=4, num_classes=5, hidden_dim=32, num_layers=3, num_heads=4,
                       mlp_dim=64)
    with _seeded(0), torch.no_grad():
        plain = ViT(config).eval()
        for block in plain.encoder:  # scores of order 1, so that passing them on changes the output
            nn.init.normal_(block.attention.qkv.weight, std=0.4)
        z = plain.embedding(torch.randn(2, 3, 16, 16))
    with torch.no_grad():
        got = answer(list(plain.encoder), z.clone())
        real = RealFormerViT(config).eval()
        real.load_state_dict(plain.state_dict())  # the same names: the same weights in a RealFormer
        expected, _ = real.forward_tokens(z)
    _close(got, expected, "realformer_tokens(3 plain blocks, z_0)", atol=1e-4)


# 08 · the width-varying ViT
_WIDTH_VARYING = [dict(), dict(stage_dims=(64, 128, 192)), dict(stage_dims=(64,), stage_depths=(3,)),
                  dict(image_size=48, patch_size=8, num_classes=7, stage_dims=(32, 96), stage_depths=(1, 3),
                       head_dim=16, mlp_ratio=3.0),
                  dict(image_size=16, patch_size=2, stage_dims=(32, 48, 64, 80), stage_depths=(1, 1, 2, 1),
                       head_dim=16, mlp_ratio=2.5)]


def _described(fields: dict) -> str:
    return f"WidthVaryingConfig({', '.join(f'{k}={v}' for k, v in fields.items())})"


def _width_varying_parameters(answer: Callable) -> None:
    for fields in _WIDTH_VARYING:
        config = WidthVaryingConfig(**fields)
        got = answer(config)
        with torch.device("meta"):
            _equal(got, count_parameters(WidthVaryingViT(config)), f"width_varying_parameters({_described(fields)})")


def _width_varying_macs(answer: Callable) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    for fields in _WIDTH_VARYING[1:]:
        config = WidthVaryingConfig(**fields)
        got = answer(config)
        with _seeded(0):  # the written-out attention: its q k^T and A v are products the counter sees
            model = WidthVaryingViT(config, attention="explicit").eval()
            image = torch.randn(1, config.in_channels, config.image_size, config.image_size)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(image)
        _equal(got, counter.get_total_flops() // 2, f"width_varying_macs({_described(fields)})")


# 09 · token merging
def _tokens_left(answer: Callable) -> None:
    for image_size, patch_size, layers, r in [(32, 4, 6, 10), (32, 4, 6, 4), (16, 4, 4, 5), (28, 4, 5, 12),
                                              (16, 4, 3, 0), (8, 2, 2, 9)]:
        tokens = (image_size // patch_size) ** 2 + 1
        got = answer(tokens, layers, r)
        config = ViTConfig(image_size=image_size, patch_size=patch_size, num_classes=3, hidden_dim=16,
                           num_layers=layers, num_heads=2, mlp_dim=32)
        with _seeded(0):
            model = ToMeViT(ViT(config).eval(), r=r)
            _, source = model(torch.randn(1, 3, image_size, image_size), return_source=True)
        _equal(got, source.shape[1], f"tokens_left({tokens}, {layers}, {r})")


def _merge_pairs(answer: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    for n, c, r, case in [(9, 4, 3, "random keys"), (10, 8, 4, "random keys of very different lengths"),
                          (65, 16, 10, "random keys of very different lengths"),
                          (12, 8, 3, "a class token whose twin is token 1")]:
        keys = torch.randn(n, c, generator=g)
        if "lengths" in case:  # cosine similarity ignores a key's length, a dot product does not
            keys = keys * torch.empty(n, 1).uniform_(0.1, 10.0, generator=g)
        if "twin" in case:
            keys[1] = 3 * keys[0] + 0.01 * torch.randn(c, generator=g)
        got = answer(keys.clone(), r)
        plan = bipartite_soft_matching(keys[None], r)  # positions within A (even) and B (odd tokens)
        expected = {(2 * a, 2 * b + 1) for a, b in zip(plan.source[0, :, 0].tolist(),
                                                       plan.destination[0, :, 0].tolist())}
        try:
            got = {(int(i), int(j)) for i, j in got}
        except (TypeError, ValueError):
            raise AssertionError(f"merge_pairs({n} keys, {r}): expected pairs (i, j), got {got!r}") from None
        _equal(got, expected, f"merge_pairs({n} keys, {r}), {case}")


# 10 · transfer learning
def _ridge_probe(answer: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    for n, d, k, lam in [(200, 16, 5, 0.1), (25, 32, 5, 1.0), (120, 8, 3, 10.0)]:  # 25 < 32: few-shot
        train_x, test_x = torch.randn(n, d, generator=g), torch.randn(40, d, generator=g)
        train_y = torch.arange(n) % k
        got = answer(train_x.clone(), train_y.clone(), test_x.clone(), k, lam)
        # an independent solution: least squares on the stacked system [X 1; sqrt(lam) I 0] [W; b] = [T; 0]
        a = torch.cat([torch.cat([train_x, torch.ones(n, 1)], 1).double(),
                       math.sqrt(lam) * torch.eye(d, d + 1, dtype=torch.float64)])
        t = torch.cat([2 * F.one_hot(train_y, k).double() - 1, torch.zeros(d, k, dtype=torch.float64)])
        expected = torch.cat([test_x, torch.ones(40, 1)], 1).double() @ torch.linalg.lstsq(a, t).solution
        _close(got, expected.float(), f"ridge_probe({n} features of size {d}, {k} classes, lam={lam}): "
                                      "test logits", atol=1e-3)


def _zero_head_gradient(answer: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    for n, d, k in [(12, 8, 3), (50, 16, 10)]:
        features, labels = torch.randn(n, d, generator=g) + 1, torch.randint(0, k, (n,), generator=g)
        got = answer(features.clone(), labels.clone(), k)
        weight, bias = torch.zeros(k, d, requires_grad=True), torch.zeros(k, requires_grad=True)
        F.cross_entropy(F.linear(features, weight, bias), labels).backward()  # Sec. 3.2's zero head
        assert isinstance(got, (tuple, list)) and len(got) == 2, \
            f"zero_head_gradient: expected a pair (weight gradient, bias gradient), got {type(got).__name__}"
        _close(got[0], weight.grad, f"zero_head_gradient({n} features, {k} classes): weight gradient")
        _close(got[1], bias.grad, f"zero_head_gradient({n} features, {k} classes): bias gradient")


EXERCISES: dict[str, Exercise] = {
    "01.1": Exercise("sequence_length(height, width, patch_size, stride): tokens the encoder sees when P x P patches "
                     "are cut every stride pixels (overlapping when stride < P), class token included",
                     "along one side, count the positions where a patch can start, stepping by stride, without "
                     "running off the image", _sequence_length),
    "01.2": Exercise("patchify(x, patch_size, stride): [B, C, H, W] -> [B, N, C*P*P] with Tensor.unfold, a patch "
                     "every stride pixels, in row-major order, each flattened channel by channel (as Conv2d's "
                     "kernels are)",
                     "Tensor.unfold(dimension, size, step) slides a window along one dimension and appends it as a "
                     "new last dimension; after H and W, which dimensions must stand next to each other before "
                     "flattening?", _patchify),
    "01.3": Exercise("embedding_parameters(image_size, patch_size, channels, hidden_dim): parameters of Eq. 1",
                     "three learned pieces: E (a bias too), the class token and E_pos; how many rows has E_pos?",
                     _embedding_parameters),
    "02.1": Exercise("masked_attention(q, k, v, padding): Eqs. 6-7 for q, k, v [B, heads, N, D_h], the keys where "
                     "padding [B, N] is True ignored",
                     "the weights of the keys that are left must still sum to 1: change the scores before the "
                     "softmax, not the weights after it; padding has neither a heads nor a queries dimension",
                     _masked_attention),
    "02.2": Exercise("msa_parameters(hidden_dim): parameters of one MSA (U_qkv and U_msa, with biases)",
                     "an MSA is two Linear layers, U_qkv for all heads at once and U_msa: what are their input and "
                     "output sizes?", _msa_parameters),
    "03.1": Exercise("gelu_grad(x): the derivative of GELU(x) = x Phi(x) at every element of x",
                     "GELU is a product of two functions of x; and the derivative of a CDF is its density",
                     _gelu_grad),
    "03.2": Exercise("rms_norm(x, weight, eps): RMSNorm over the last dimension, with the learned scale weight",
                     "LayerNorm without subtracting the mean and without a shift; on small tokens eps matters: it "
                     "belongs where LayerNorm puts it", _rms_norm),
    "03.3": Exercise("post_ln_layer(z, attention, mlp, norm1, norm2): the original Transformer's order, "
                     "LN after each residual addition",
                     "in post-LN, attention and MLP read the residual stream as it is, and the LayerNorm comes after "
                     "the addition", _post_ln_layer),
    "04.1": Exercise("vit_parameters(config): the parameters of a ViTConfig, by formula",
                     "go module by module: the embedding (exercise 01.3), in each layer two LayerNorms, U_qkv, U_msa "
                     "and the two MLP layers, then the final LayerNorm and the head; every Linear and LayerNorm "
                     "holds two parameter tensors", _vit_parameters),
    "04.2": Exercise("vit_macs(config, image_size): multiply-accumulates of one image's forward pass at image_size "
                     "pixels (the matrix products of Eqs. 1-4)",
                     "recount the patches and the tokens at this size: which products grow with the number of tokens, "
                     "which with its square, and which not at all?", _vit_macs),
    "04.3": Exercise("resample_pos(position_embedding, grid_size): E_pos [1, 1 + g*g, D] -> [1, 1 + grid_size^2, D], "
                     "the patch rows resized in 2D (bicubic, align_corners=False), the class token's row kept",
                     "the class token has no place on the grid; the patch rows are an image with D channels, which "
                     "F.interpolate wants as [1, D, g, g], and which must become rows again in row-major order",
                     _resample_pos),
    "05.1": Exercise("lr_at(step, peak, warmup_steps, total_steps): linear warm-up, then cosine to zero",
                     "mind the ends: the first step already has a learning rate above zero and the last warm-up "
                     "step reaches the peak; the cosine counts its progress from the end of the warm-up", _lr_at),
    "05.2": Exercise("smoothed_targets(labels, num_classes, eps): (1 - eps) one-hot + eps / num_classes",
                     "F.one_hot(labels, num_classes).float() gives the one-hot rows", _smoothed_targets),
    "07.1": Exercise("uniform_distance(grid, patch_size): mean distance in pixels between the centres of two "
                     "patches drawn at random from a grid x grid image (a patch may draw itself)",
                     "neighbouring centres are patch_size pixels apart; a patch drawn with itself counts, at "
                     "distance 0", _uniform_distance),
    "07.2": Exercise("rollout(attentions): heads averaged, 0.5 A + 0.5 I, rows renormalised, multiplied from the "
                     "first layer up: R = A~_L ... A~_1",
                     "the first layer's matrix acts first: on which side of the running product does each new "
                     "layer's matrix go?", _rollout),
    "08.1": Exercise("score_stream(raw_scores, decay): the list of S_l = R_l + decay S_{l-1} (S_0 = 0), R_l = "
                     "raw_scores[l - 1], layer l's own q k^T / sqrt(D_h)",
                     "S_0 = 0: the first layer has nothing to add; every later one adds the stream as it left the "
                     "layer before", _score_stream),
    "08.2": Exercise("realformer_tokens(blocks, z): z_L of a RealFormer whose layers are the plain EncoderBlocks "
                     "blocks, each layer's pre-softmax scores added to the next layer's",
                     "split_heads, scores and merge_heads give Eqs. 5, 6 and 8; only what goes into the softmax "
                     "changes, and both pre-LN residual additions stay", _realformer_tokens),
    "09.1": Exercise("width_varying_parameters(config): the parameters of a WidthVaryingConfig, by formula",
                     "each stage is a tower of its own width and MLP width; what sits between two stages, and at "
                     "which widths are the embedding and the head?", _width_varying_parameters),
    "09.2": Exercise("width_varying_macs(config): multiply-accumulates of one image's forward pass through a "
                     "WidthVaryingViT (matrix products only, as flops.forward_macs counts them)",
                     "notebook 04's rules hold inside each stage, at its own width; the projections between stages "
                     "are matrix products too, on every token", _width_varying_macs),
    "10.1": Exercise("tokens_left(num_tokens, num_layers, r): tokens after num_layers layers of ToMe with r merges "
                     "per layer, capped as tome.ToMeViT caps them",
                     "a layer merges tokens of set A (every second token) only, and never the class token: how many "
                     "can that be once few tokens are left?", _tokens_left),
    "10.2": Exercise("merge_pairs(keys, r): ToMe's bipartite soft matching of one image's keys [N, C], the set of the "
                     "r pairs (i, j) of token positions, token i merging into token j",
                     "every token of A (even positions) has one best partner in B (odd positions) by cosine "
                     "similarity; the r best of those A tokens merge, and the class token must never be one",
                     _merge_pairs),
    "11.1": Exercise("ridge_probe(train_features, train_labels, test_features, num_classes, lam): test logits of "
                     "the least-squares classifier to +-1 targets, ridge penalty lam on the weights, not the bias",
                     "one linear system gives the weights and the bias together: append a column of ones to the "
                     "features, and keep its row out of the penalty", _ridge_probe),
    "11.2": Exercise("zero_head_gradient(features, labels, num_classes): the gradient of the mean cross-entropy "
                     "with respect to a zero-initialised head's weight [K, D] and bias [K], as a pair",
                     "with every weight zero, which probability does the softmax give each class? From there, the "
                     "chain rule through the logits; the loss is a mean over the images",
                     _zero_head_gradient),
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
