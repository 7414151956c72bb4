"""Google's official ViT checkpoints (``ViT-B_16.npz`` and friends from google-research/vision_transformer) in
our ViT, and back.

The ``.npz`` holds Flax parameters under slash-separated names; Flax keeps the per-head structure that PyTorch
flattens, and stores Dense kernels as [in, out] (PyTorch: [out, in]) and convolutions as [H, W, in, out]:

    embedding/kernel [P, P, C, D]                      -> embedding.patch_embedding.proj.weight [D, C, P, P]
    cls [1, 1, D]                                      -> embedding.class_token
    Transformer/posembed_input/pos_embedding [1, N+1, D] -> embedding.position_embedding
    Transformer/encoderblock_i/LayerNorm_0             -> encoder.i.norm1 (scale -> weight)
    .../MultiHeadDotProductAttention_1/{query,key,value}/kernel [D, heads, D_h] -> encoder.i.attention.qkv (stacked)
    .../MultiHeadDotProductAttention_1/out/kernel [heads, D_h, D]               -> encoder.i.attention.proj
    .../LayerNorm_2                                    -> encoder.i.norm2
    .../MlpBlock_3/Dense_0, Dense_1                    -> encoder.i.mlp.fc1, fc2
    Transformer/encoder_norm                           -> norm
    head                                               -> head

The ImageNet-21k pre-training checkpoints also carry ``pre_logits`` (the pre-training head's hidden layer, Sec. 3.1);
it is dropped together with the 21k-class head when a new ``num_classes`` is asked for.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from .download import fetch
from .errors import UserError
from .model import ViT, ViTConfig

NPZ_URL = "https://storage.googleapis.com/vit_models/{dataset}/{name}.npz"
_BLOCK = "Transformer/encoderblock_{}/"
_ATTENTION = "MultiHeadDotProductAttention_1/"
_MLP = "MlpBlock_3/"


def config_from_npz(arrays: dict[str, np.ndarray]) -> ViTConfig:
    """Read the architecture off the array shapes (patch size, width, depth, heads, MLP size, grid, classes)."""
    _require(arrays, ["embedding/kernel", "Transformer/posembed_input/pos_embedding", "head/kernel"])
    patch_size, _, in_channels, hidden_dim = arrays["embedding/kernel"].shape
    num_tokens = arrays["Transformer/posembed_input/pos_embedding"].shape[1]
    grid = round((num_tokens - 1) ** 0.5)
    if grid * grid != num_tokens - 1:
        raise ValueError(f"position embedding of {num_tokens} tokens is not a square grid plus a class token")
    layers = {int(m.group(1)) for key in arrays if (m := re.match(r"Transformer/encoderblock_(\d+)/", key))}
    if not layers:
        raise ValueError("no Transformer/encoderblock_* arrays: not a ViT checkpoint in the google-research layout")
    block = _BLOCK.format(0)
    return ViTConfig(
        image_size=grid * patch_size, patch_size=patch_size, in_channels=in_channels,
        num_classes=arrays["head/kernel"].shape[1], hidden_dim=hidden_dim, num_layers=len(layers),
        num_heads=arrays[block + _ATTENTION + "query/kernel"].shape[1],
        mlp_dim=arrays[block + _MLP + "Dense_0/kernel"].shape[1],
    )


def state_dict_from_npz(arrays: dict[str, np.ndarray], include_head: bool = True) -> dict[str, torch.Tensor]:
    """Our ViT's state dict from the ``.npz`` arrays (without ``head.*`` when ``include_head`` is False)."""
    config = config_from_npz(arrays)
    t = lambda key: torch.from_numpy(np.asarray(arrays[key], dtype=np.float32))  # noqa: E731
    d = config.hidden_dim
    state = {
        "embedding.patch_embedding.proj.weight": t("embedding/kernel").permute(3, 2, 0, 1),
        "embedding.patch_embedding.proj.bias": t("embedding/bias"),
        "embedding.class_token": t("cls"),
        "embedding.position_embedding": t("Transformer/posembed_input/pos_embedding"),
        "norm.weight": t("Transformer/encoder_norm/scale"),
        "norm.bias": t("Transformer/encoder_norm/bias"),
    }
    for i in range(config.num_layers):
        src, dst = _BLOCK.format(i), f"encoder.{i}."
        attention = src + _ATTENTION
        state |= {
            dst + "norm1.weight": t(src + "LayerNorm_0/scale"), dst + "norm1.bias": t(src + "LayerNorm_0/bias"),
            dst + "attention.qkv.weight": torch.cat(
                [t(attention + f"{p}/kernel").reshape(d, d).T for p in ("query", "key", "value")]),
            dst + "attention.qkv.bias": torch.cat(
                [t(attention + f"{p}/bias").reshape(d) for p in ("query", "key", "value")]),
            dst + "attention.proj.weight": t(attention + "out/kernel").reshape(d, d).T,
            dst + "attention.proj.bias": t(attention + "out/bias"),
            dst + "norm2.weight": t(src + "LayerNorm_2/scale"), dst + "norm2.bias": t(src + "LayerNorm_2/bias"),
            dst + "mlp.fc1.weight": t(src + _MLP + "Dense_0/kernel").T,
            dst + "mlp.fc1.bias": t(src + _MLP + "Dense_0/bias"),
            dst + "mlp.fc2.weight": t(src + _MLP + "Dense_1/kernel").T,
            dst + "mlp.fc2.bias": t(src + _MLP + "Dense_1/bias"),
        }
    if include_head:
        if "pre_logits/kernel" in arrays:
            raise ValueError("this checkpoint has a pre_logits layer (an ImageNet-21k pre-training head); load it "
                             "with a new num_classes to drop that head")
        state |= {"head.weight": t("head/kernel").T, "head.bias": t("head/bias")}
    return {key: value.contiguous() for key, value in state.items()}


def load_npz(path: str | Path, num_classes: int | None = None) -> ViT:
    """Our ViT with the weights of a google-research ``.npz`` checkpoint.

    With ``num_classes`` different from the checkpoint's, the head (and any pre_logits layer) is left out and a new,
    freshly initialised head of that size is built: the usual start of fine-tuning.
    """
    if not Path(path).is_file():
        raise UserError(f"no .npz checkpoint at {path}")
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as err:  # truncated zip, not an .npz at all
        raise UserError(f"{path} is not a readable .npz checkpoint ({type(err).__name__}: {err}); it may be "
                        "truncated: download it again") from err
    config = config_from_npz(arrays)
    new_head = num_classes is not None and num_classes != config.num_classes
    model = ViT(config, num_classes=num_classes) if new_head else ViT(config)
    missing, unexpected = model.load_state_dict(state_dict_from_npz(arrays, include_head=not new_head), strict=False)
    expected_missing = {"head.weight", "head.bias"} if new_head else set()
    if set(missing) != expected_missing or unexpected:
        raise ValueError(f"checkpoint does not fit: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
    return model


def npz_arrays_from_vit(model: ViT) -> dict[str, np.ndarray]:
    """The inverse of ``state_dict_from_npz``: our ViT's weights under google-research names and shapes."""
    config, state = model.config, {k: v.detach().cpu().float() for k, v in model.state_dict().items()}
    d, heads, head_dim = config.hidden_dim, config.num_heads, config.hidden_dim // config.num_heads
    arrays = {
        "embedding/kernel": state["embedding.patch_embedding.proj.weight"].permute(2, 3, 1, 0),
        "embedding/bias": state["embedding.patch_embedding.proj.bias"],
        "cls": state["embedding.class_token"],
        "Transformer/posembed_input/pos_embedding": state["embedding.position_embedding"],
        "Transformer/encoder_norm/scale": state["norm.weight"], "Transformer/encoder_norm/bias": state["norm.bias"],
        "head/kernel": state["head.weight"].T, "head/bias": state["head.bias"],
    }
    for i in range(config.num_layers):
        src, dst = f"encoder.{i}.", _BLOCK.format(i)
        q, k, v = state[src + "attention.qkv.weight"].chunk(3)
        qb, kb, vb = state[src + "attention.qkv.bias"].chunk(3)
        for name, weight, bias in (("query", q, qb), ("key", k, kb), ("value", v, vb)):
            arrays[dst + _ATTENTION + f"{name}/kernel"] = weight.T.reshape(d, heads, head_dim)
            arrays[dst + _ATTENTION + f"{name}/bias"] = bias.reshape(heads, head_dim)
        arrays[dst + _ATTENTION + "out/kernel"] = state[src + "attention.proj.weight"].T.reshape(heads, head_dim, d)
        arrays[dst + _ATTENTION + "out/bias"] = state[src + "attention.proj.bias"]
        for ours, theirs in (("norm1", "LayerNorm_0"), ("norm2", "LayerNorm_2")):
            arrays[dst + theirs + "/scale"] = state[src + ours + ".weight"]
            arrays[dst + theirs + "/bias"] = state[src + ours + ".bias"]
        for ours, theirs in (("fc1", "Dense_0"), ("fc2", "Dense_1")):
            arrays[dst + _MLP + theirs + "/kernel"] = state[src + f"mlp.{ours}.weight"].T
            arrays[dst + _MLP + theirs + "/bias"] = state[src + f"mlp.{ours}.bias"]
    return {key: value.contiguous().numpy() for key, value in arrays.items()}


def save_npz(model: ViT, path: str | Path) -> None:
    """Write ``model`` as a google-research ``.npz`` checkpoint (readable by ``load_npz``, timm and the JAX code)."""
    np.savez(path, **npz_arrays_from_vit(model))


def download_npz(name: str = "ViT-B_16", dataset: str = "imagenet21k", folder: str | Path = "data/vit_models") -> Path:
    """Fetch an official checkpoint, e.g. ``ViT-B_16`` pre-trained on ``imagenet21k`` or fine-tuned on
    ``imagenet21k+imagenet2012``; raises ``DownloadError`` in one clear line when it cannot be had."""
    import torchvision

    path = Path(folder) / dataset / f"{name}.npz"
    if not path.is_file():
        url = NPZ_URL.format(dataset=dataset, name=name)
        fetch(url, f"run once with internet access or put the file at {path}",
              lambda: torchvision.datasets.utils.download_url(url, str(path.parent), path.name))
    return path


def _require(arrays: dict[str, np.ndarray], keys: list[str]) -> None:
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise ValueError(f"not a ViT checkpoint in the google-research layout: missing {', '.join(missing)}")
