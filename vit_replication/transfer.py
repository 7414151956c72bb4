"""Transfer learning with a pre-trained ViT: a new zero-initialised head on a frozen encoder (notebook 10).

"For fine-tuning, we remove the pre-trained prediction head and attach a zero-initialized D x K feedforward layer,
where K is the number of downstream classes" (Sec. 3.2). With the encoder frozen, the features y = LN(z_L^0) of
Eq. 4 never change, so they are computed once and only the head is trained on them: a linear probe, as fast as
training a logistic regression.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.transforms import v2

from .convert import load_torchvision_pretrained
from .data import IMAGENET_MEAN, IMAGENET_STD
from .download import DownloadError
from .model import ViT, create_vit


def transfer_transform(image_size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    """Resize the short side to ``image_size``, centre-crop a square, normalise with the pre-training statistics
    (torchvision's ImageNet weights: ImageNet mean and std)."""
    return v2.Compose([v2.ToImage(), v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def pretrained_backbone(name: str = "vit_b_16", weights: str = "IMAGENET1K_V1") -> tuple[ViT, bool]:
    """torchvision's pre-trained ViT converted to ours, and True; offline, one line saying so and a randomly
    initialised ViT of the same architecture, and False."""
    try:
        return load_torchvision_pretrained(name, weights), True
    except DownloadError as err:
        print(f"{err}. Using random weights instead: the code runs the same, the accuracy is not a transfer result.")
        return create_vit(name), False


def zero_head(hidden_dim: int, num_classes: int) -> nn.Linear:
    """The "zero-initialized D x K feedforward layer" of Sec. 3.2."""
    head = nn.Linear(hidden_dim, num_classes)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


def new_head(model: ViT, num_classes: int) -> nn.Linear:
    """Replace ``model.head`` with ``zero_head(D, num_classes)`` and return it."""
    model.head = zero_head(model.config.hidden_dim, num_classes)
    return model.head


def freeze_encoder(model: ViT) -> int:
    """Freeze everything but the head; returns the number of trainable parameters left."""
    for name, param in model.named_parameters():
        param.requires_grad = name.startswith("head.")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def extract_features(model: ViT, images: torch.Tensor, device: torch.device, batch_size: int = 32) -> torch.Tensor:
    """y = LN(z_L^0) (Eq. 4, before the head) for every image of ``images`` [N, C, H, W]; returns [N, D] on the CPU."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    model.eval().to(device)
    features = [model.forward_features(images[i:i + batch_size].to(device))[0].float().cpu()
                for i in range(0, images.shape[0], batch_size)]
    return torch.cat(features)
