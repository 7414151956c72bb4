"""Reference solutions to the exercises of notebooks 01-10 (try first, then read), and
``OPEN_ANSWERS``, what a good answer to the notebooks' unchecked questions says.

    from exercises.solutions import patchify
    check("01.2", patchify)   # Exercise 01.2: right.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vit_replication.model.vit import ViTConfig


def sequence_length(height: int, width: int, patch_size: int, stride: int) -> int:  # 01.1
    rows = (height - patch_size) // stride + 1  # where a patch can start, top to bottom
    columns = (width - patch_size) // stride + 1
    return rows * columns + 1


def patchify(x: torch.Tensor, patch_size: int, stride: int) -> torch.Tensor:  # 01.2
    B, C = x.shape[:2]
    P = patch_size
    patches = x.unfold(2, P, stride).unfold(3, P, stride)  # [B, C, rows, columns, P, P]
    return patches.permute(0, 2, 3, 1, 4, 5).reshape(B, -1, C * P * P)


def embedding_parameters(image_size: int, patch_size: int, channels: int, hidden_dim: int) -> int:  # 01.3
    n = (image_size // patch_size) ** 2
    return patch_size**2 * channels * hidden_dim + hidden_dim + hidden_dim + (n + 1) * hidden_dim


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:  # 02.1
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # [B, heads, N, N]
    scores = scores.masked_fill(padding[:, None, None, :], float("-inf"))  # every query, every head
    return scores.softmax(dim=-1) @ v


def msa_parameters(hidden_dim: int) -> int:  # 02.2
    return 4 * hidden_dim**2 + 4 * hidden_dim


def gelu_grad(x: torch.Tensor) -> torch.Tensor:  # 03.1
    cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))  # Phi(x)
    density = torch.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)  # Phi'(x)
    return cdf + x * density  # the product rule


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:  # 03.2
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def post_ln_layer(z, attention, mlp, norm1, norm2):  # 03.3
    z = norm1(z + attention(z))
    return norm2(z + mlp(z))


def vit_parameters(config: ViTConfig) -> int:  # 04.1
    d, d_mlp, k = config.hidden_dim, config.mlp_dim, config.num_classes
    embedding = embedding_parameters(config.image_size, config.patch_size, config.in_channels, d)
    layer = 4 * d + msa_parameters(d) + 2 * d * d_mlp + d_mlp + d
    return embedding + config.num_layers * layer + 2 * d + d * k + k


def vit_macs(config: ViTConfig, image_size: int) -> int:  # 04.2
    n = (image_size // config.patch_size) ** 2
    t, d = n + 1, config.hidden_dim  # tokens and width in the encoder
    layer = 4 * t * d * d + 2 * t * t * d + 2 * t * d * config.mlp_dim  # U_qkv and U_msa, q k^T and A v, the MLP
    return n * config.in_channels * config.patch_size**2 * d + config.num_layers * layer + d * config.num_classes


def resample_pos(position_embedding: torch.Tensor, grid_size: int) -> torch.Tensor:  # 04.3
    cls, patches = position_embedding[:, :1], position_embedding[:, 1:]
    g, d = math.isqrt(patches.shape[1]), patches.shape[-1]
    grid = patches.reshape(1, g, g, d).permute(0, 3, 1, 2)  # an image of D channels
    grid = F.interpolate(grid, size=(grid_size, grid_size), mode="bicubic", align_corners=False)
    return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(1, grid_size * grid_size, d)], dim=1)


def lr_at(step: int, peak: float, warmup_steps: int, total_steps: int) -> float:  # 05.1
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    done = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    return peak * 0.5 * (1 + math.cos(math.pi * done))


def smoothed_targets(labels: torch.Tensor, num_classes: int, eps: float) -> torch.Tensor:  # 05.2
    return (1 - eps) * F.one_hot(labels, num_classes).float() + eps / num_classes


def uniform_distance(grid: int, patch_size: int) -> float:  # 07.1
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    centres = torch.stack([rows.flatten(), cols.flatten()], dim=1).float() * patch_size
    return torch.cdist(centres, centres).mean().item()


def rollout(attentions: list[torch.Tensor]) -> torch.Tensor:  # 07.2
    tokens = attentions[0].shape[-1]
    eye = torch.eye(tokens)
    result = eye.expand(attentions[0].shape[0], -1, -1)
    for a in attentions:
        mixed = 0.5 * a.mean(dim=1) + 0.5 * eye
        mixed = mixed / mixed.sum(-1, keepdim=True)
        result = mixed @ result
    return result


def score_stream(raw_scores: list[torch.Tensor], decay: float) -> list[torch.Tensor]:  # 08.1
    stream, scores = [], 0.0  # S_0 = 0
    for raw in raw_scores:
        scores = raw + decay * scores
        stream.append(scores)
    return stream


def realformer_tokens(blocks, z: torch.Tensor) -> torch.Tensor:  # 08.2
    scores = None
    for block in blocks:
        q, k, v = block.attention.split_heads(block.norm1(z))
        scores = block.attention.scores(q, k) + (0 if scores is None else scores)
        z = z + block.attention.merge_heads(scores.softmax(dim=-1) @ v)  # Eq. 2
        z = z + block.mlp(block.norm2(z))  # Eq. 3
    return z


def width_varying_parameters(config) -> int:  # 09.1
    dims, depths = config.stage_dims, config.stage_depths
    total = embedding_parameters(config.image_size, config.patch_size, config.in_channels, dims[0])
    for d, depth in zip(dims, depths):
        d_mlp = int(d * config.mlp_ratio)
        total += depth * (4 * d + msa_parameters(d) + 2 * d * d_mlp + d_mlp + d)
    total += sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))  # the projections between stages
    return total + 2 * dims[-1] + dims[-1] * config.num_classes + config.num_classes


def width_varying_macs(config) -> int:  # 09.2
    dims, depths = config.stage_dims, config.stage_depths
    n = (config.image_size // config.patch_size) ** 2
    t = n + 1
    macs = n * config.in_channels * config.patch_size**2 * dims[0]
    for d, depth in zip(dims, depths):
        macs += depth * (4 * t * d * d + 2 * t * t * d + 2 * t * d * int(d * config.mlp_ratio))
    macs += sum(t * a * b for a, b in zip(dims[:-1], dims[1:]))  # every token projected between stages
    return macs + dims[-1] * config.num_classes


def tokens_left(num_tokens: int, num_layers: int, r: int) -> int:  # 10.1
    for _ in range(num_layers):
        num_tokens -= min(r, (num_tokens - 1) // 2)  # set A without the class token holds (n - 1) // 2 tokens
    return num_tokens


def merge_pairs(keys: torch.Tensor, r: int) -> set[tuple[int, int]]:  # 10.2
    keys = keys / keys.norm(dim=-1, keepdim=True)  # cosine similarity: lengths do not count
    similarity = keys[::2] @ keys[1::2].T  # A (even positions) against B (odd positions)
    similarity[0] = -float("inf")  # the class token never merges
    best, partner = similarity.max(dim=-1)
    return {(2 * a, 2 * partner[a].item() + 1) for a in best.argsort(descending=True)[:r].tolist()}


def ridge_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                num_classes: int, lam: float) -> torch.Tensor:  # 11.1
    x = torch.cat([train_features, torch.ones(len(train_features), 1)], dim=1)  # a column of ones: the bias
    targets = 2 * F.one_hot(train_labels, num_classes).float() - 1  # +1 for the true class, -1 for the others
    penalty = lam * torch.eye(x.shape[1])
    penalty[-1, -1] = 0  # the bias is not penalised
    weights = torch.linalg.solve(x.T @ x + penalty, x.T @ targets)  # the normal equations
    return torch.cat([test_features, torch.ones(len(test_features), 1)], dim=1) @ weights


def zero_head_gradient(features: torch.Tensor, labels: torch.Tensor,
                       num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:  # 11.2
    uniform = torch.full((len(labels), num_classes), 1 / num_classes)  # softmax of all-zero logits
    delta = (uniform - F.one_hot(labels, num_classes).float()) / len(labels)  # d loss / d logits
    return delta.T @ features, delta.sum(dim=0)


SOLUTIONS = {"01.1": sequence_length, "01.2": patchify, "01.3": embedding_parameters, "02.1": masked_attention,
             "02.2": msa_parameters, "03.1": gelu_grad, "03.2": rms_norm, "03.3": post_ln_layer,
             "04.1": vit_parameters, "04.2": vit_macs, "04.3": resample_pos, "05.1": lr_at, "05.2": smoothed_targets,
             "07.1": uniform_distance, "07.2": rollout, "08.1": score_stream, "08.2": realformer_tokens,
             "09.1": width_varying_parameters, "09.2": width_varying_macs, "10.1": tokens_left, "10.2": merge_pairs,
             "11.1": ridge_probe, "11.2": zero_head_gradient}

OPEN_ANSWERS = {
    "02.2": (
        "U_qkv maps D to 3 k D_h and U_msa maps k D_h back to D. With D_h = D / k they are D x 3D and "
        "D x D (plus biases) for any k that divides D: more heads are narrower heads, not more weights. "
        "The heads change how the D dimensions are grouped for attention (k maps A of N x N instead of "
        "one), not the parameters, nor the multiply-accumulates of q k^T and A v (k N^2 D_h = N^2 D)."
    ),
    "02.3": (
        "Both timings fall, by a factor of about 4 or more. The block's cost is mostly its projections, "
        "4 N D^2 multiply-accumulates for U_qkv and U_msa, linear in the number of tokens N; q k^T and "
        "A v cost 2 N^2 D, quadratic in N. With a quarter of the tokens the linear part falls 4-fold, "
        "the quadratic part 16-fold. The explicit path gains more than SDPA, since what it adds, "
        "writing and reading the N x N matrices A, shrinks with N^2. The MLP's 2 N D D_mlp is linear "
        "in N. So attention dominates only for long sequences (N comparable to D or longer), and there "
        "shorter sequences (larger patches, token merging in notebook 10) pay off most."
    ),
    "05.3": (
        "Doubling MINUTES about doubles the epochs of each model (an epoch takes as long as before), and "
        "each gains some points, fewer with every further doubling. The schedule follows the share of the "
        "time spent, so the longer run is not the short one continued: its warm-up is one epoch as before, "
        "and its cosine stretches over twice the time. Expect the CNN to stay ahead: its built-in locality "
        "makes each image it sees worth more, and more minutes give both models more images. Closing the "
        "gap takes a recipe that makes the ViT's steps cheaper and better (notebook 06), or far more data "
        "(the paper's pre-training)."
    ),
    "07.3": (
        "The confusions follow what the classes look like: cat and dog most of all, then automobile and "
        "truck, airplane and ship (sky or water: a blue background), and bird, deer and horse (poses "
        "and natural backgrounds); many confident mistakes are ambiguous to a person too, or "
        "mislabelled. ToMe and rollout mostly agree: the tokens that merge first lie in uniform regions "
        "(sky, water, road), mostly where rollout is dark. They do not coincide: ToMe merges by "
        "similarity of the keys (redundancy), rollout measures how much a patch flows into the class "
        "token (relevance), so a uniform region the class token does read, such as the sky around an "
        "airplane, merges early and still shows in rollout."
    ),
    "08.1": (
        "With decay = 1 the stream never forgets: S_L is the plain sum of every layer's own scores "
        "q_l k_l^T / sqrt(D_h), so the first layer's scores enter the last softmax with the same weight "
        "as the last layer's own: each layer starts from what all the layers below attended to. With "
        "decay < 1, layer j counts decay^(L - j) in S_L, so early layers fade geometrically; decay = 0 "
        "is the plain ViT. As the sum grows with depth, deep layers' softmaxes get sharper unless "
        "layers learn to add scores of opposite sign; RealFormer's paper reports sparser attention."
    ),
    "11.2": (
        "With every weight zero all logits are zero and the softmax gives every class 1/K, whatever the "
        "image. The gradient of the mean cross-entropy for class k's weight row is then "
        "(1/K) m - (N_k / N) m_k, with m the mean feature of all N images and m_k that of the N_k "
        "images of class k; for its bias 1/K - N_k / N. Gradient descent moves against it: with "
        "balanced classes row k moves by lr / K times (m_k - m), towards its class mean less the mean "
        "of all, and the biases stay. After one step the head scores an image by its dot product with "
        "the centred class means, a sensible first classifier that a random head would not give."
    ),
}
