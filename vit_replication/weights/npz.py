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

from ..download import fetch
from ..errors import UserError
from ..model.vit import ViT, ViTConfig

NPZ_URL = "https://storage.googleapis.com/vit_models/{dataset}/{name}.npz"
_BLOCK = "Transformer/encoderblock_{}/"
_ATTENTION = "MultiHeadDotProductAttention_1/"
_MLP = "MlpBlock_3/"
_QKV = ("query", "key", "value")


def config_from_npz(arrays: dict[str, np.ndarray]) -> ViTConfig:
    """Read the architecture off the array shapes (patch size, width, depth, heads, MLP size, grid, classes)."""
    missing = [key for key in ("embedding/kernel", "Transformer/posembed_input/pos_embedding", "head/kernel")
               if key not in arrays]
    if missing:
        raise ValueError(f"not a ViT checkpoint in the google-research layout: missing {', '.join(missing)}")
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


def _renamed(num_layers: int) -> dict[str, str]:
    """Our name -> the google-research name of every tensor that only needs renaming (and transposing, for
    a Dense "kernel": [in, out] in Flax); the patch projection and attention kernels are reshaped apart."""
    names = {"embedding.patch_embedding.proj.bias": "embedding/bias", "embedding.class_token": "cls",
             "embedding.position_embedding": "Transformer/posembed_input/pos_embedding",
             "norm.weight": "Transformer/encoder_norm/scale", "norm.bias": "Transformer/encoder_norm/bias",
             "head.weight": "head/kernel", "head.bias": "head/bias"}
    for i in range(num_layers):
        ours, theirs = f"encoder.{i}.", _BLOCK.format(i)
        names[ours + "attention.proj.bias"] = theirs + _ATTENTION + "out/bias"
        for norm, layer_norm in (("norm1", "LayerNorm_0"), ("norm2", "LayerNorm_2")):
            names[f"{ours}{norm}.weight"] = f"{theirs}{layer_norm}/scale"
            names[f"{ours}{norm}.bias"] = f"{theirs}{layer_norm}/bias"
        for fc, dense in (("fc1", "Dense_0"), ("fc2", "Dense_1")):
            names[f"{ours}mlp.{fc}.weight"] = f"{theirs}{_MLP}{dense}/kernel"
            names[f"{ours}mlp.{fc}.bias"] = f"{theirs}{_MLP}{dense}/bias"
    return names


def state_dict_from_npz(arrays: dict[str, np.ndarray], include_head: bool = True) -> dict[str, torch.Tensor]:
    """Our ViT's state dict from the ``.npz`` arrays (without ``head.*`` when ``include_head`` is False)."""
    config = config_from_npz(arrays)
    t = lambda key: torch.from_numpy(np.asarray(arrays[key], dtype=np.float32))  # noqa: E731
    d = config.hidden_dim
    renamed = [(ours, theirs) for ours, theirs in _renamed(config.num_layers).items()
               if include_head or not ours.startswith("head.")]
    state = {ours: t(theirs).T if theirs.endswith("kernel") else t(theirs) for ours, theirs in renamed}
    state["embedding.patch_embedding.proj.weight"] = t("embedding/kernel").permute(3, 2, 0, 1)
    for i in range(config.num_layers):
        ours, attention = f"encoder.{i}.attention.", _BLOCK.format(i) + _ATTENTION
        state[ours + "qkv.weight"] = torch.cat([t(f"{attention}{p}/kernel").reshape(d, d).T for p in _QKV])
        state[ours + "qkv.bias"] = torch.cat([t(f"{attention}{p}/bias").reshape(d) for p in _QKV])
        state[ours + "proj.weight"] = t(attention + "out/kernel").reshape(d, d).T
    if include_head and "pre_logits/kernel" in arrays:
        raise ValueError("this checkpoint has a pre_logits layer (an ImageNet-21k pre-training head); load it "
                         "with a new num_classes to drop that head")
    return {key: value.contiguous() for key, value in state.items()}


def load_npz(path: str | Path, num_classes: int | None = None) -> ViT:
    """Our ViT with the weights of a google-research ``.npz`` checkpoint. With ``num_classes`` other
    than the checkpoint's, the head (and any pre_logits layer) is replaced by a freshly initialised
    one: the usual start of fine-tuning."""
    if not Path(path).is_file():
        raise UserError(f"no .npz checkpoint at {path}")
    try:
        # numbers only: an object array is a pickle, and unpickling it could run code from the file
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: _numeric(archive, key, path) for key in archive.files}
    except UserError:
        raise
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


def _numeric(archive, key: str, path: str | Path) -> np.ndarray:
    """``archive[key]``, refused with a one-line ``UserError`` naming the file when it is an object array."""
    try:
        return archive[key]
    except ValueError as err:
        if "allow_pickle" not in str(err):
            raise
        raise UserError(f"{path} holds an object array ({key!r}; refused: loading it could run code); use an .npz of "
                        "numeric arrays, such as the google-research checkpoints") from err


def npz_arrays_from_vit(model: ViT) -> dict[str, np.ndarray]:
    """The inverse of ``state_dict_from_npz``: our ViT's weights under google-research names and shapes."""
    config, state = model.config, {k: v.detach().cpu().float() for k, v in model.state_dict().items()}
    d, heads, head_dim = config.hidden_dim, config.num_heads, config.hidden_dim // config.num_heads
    arrays = {theirs: state[ours].T if theirs.endswith("kernel") else state[ours]
              for ours, theirs in _renamed(config.num_layers).items()}
    arrays["embedding/kernel"] = state["embedding.patch_embedding.proj.weight"].permute(2, 3, 1, 0)
    for i in range(config.num_layers):
        ours, attention = f"encoder.{i}.attention.", _BLOCK.format(i) + _ATTENTION
        weights, biases = state[ours + "qkv.weight"].chunk(3), state[ours + "qkv.bias"].chunk(3)
        for name, weight, bias in zip(_QKV, weights, biases):
            arrays[f"{attention}{name}/kernel"] = weight.T.reshape(d, heads, head_dim)
            arrays[f"{attention}{name}/bias"] = bias.reshape(heads, head_dim)
        arrays[attention + "out/kernel"] = state[ours + "proj.weight"].T.reshape(heads, head_dim, d)
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
