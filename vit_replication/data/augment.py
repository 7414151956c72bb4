"""Data kept on the device, augmented there: the whole (small) dataset as one uint8 tensor, and
batches that are shuffled, randomly cropped (reflect padding), flipped and normalised with tensor
ops on the GPU (or CPU); and batch-level MixUp / CutMix.

For 32x32 images the per-image CPU pipeline (decode, PIL crop, ToTensor) is slower than the model on
a GPU; with the images preloaded once, a ``DeviceLoader`` feeds the model without worker processes,
and it drops in for a ``datasets.SeededLoader`` (``len``, ``set_epoch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from ..distributed import epoch_seed, rank_seed


def _uint8_batch(items: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate (PIL image or uint8 tensor, label) pairs into uint8 images [B, C, H, W] and labels [B]."""
    to_image = v2.ToImage()
    images = [to_image(image).as_subclass(torch.Tensor) for image, _ in items]
    if any(image.dtype != torch.uint8 for image in images):
        raise ValueError(f"preload expects uint8 images (no transform on the dataset), got {images[0].dtype}")
    return torch.stack(images), torch.tensor([label for _, label in items])


def preload(dataset: Dataset, device: torch.device | str = "cpu",
            num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Every item of ``dataset`` (PIL images or uint8 tensors, no transform) as uint8 images [N, C, H, W] and
    labels [N] on ``device``, decoded in ``num_workers`` worker processes (0: in this one)."""
    if len(dataset) == 0:
        raise ValueError("preload got an empty dataset")
    loader = DataLoader(dataset, batch_size=256, num_workers=num_workers, collate_fn=_uint8_batch)
    images, labels = zip(*loader)
    return torch.cat(images).to(device), torch.cat(labels).to(device)


def random_crop_flip(images: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Per image of a float batch [B, C, H, W]: a random H x W window of the reflect-padded image,
    mirrored left-right with probability 1/2. The draws come from ``generator`` on the CPU, so they
    do not depend on the device."""
    b, _, h, w = images.shape
    if padding > 0:
        images = F.pad(images, (padding,) * 4, mode="reflect")
        top = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(images.device)
        left = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(images.device)
        rows = (top[:, None] + torch.arange(h, device=images.device))[:, None, :, None]  # [B, 1, H, 1]
        cols = (left[:, None] + torch.arange(w, device=images.device))[:, None, None, :]  # [B, 1, 1, W]
        batch = torch.arange(b, device=images.device)[:, None, None, None]
        channel = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
        images = images[batch, channel, rows, cols]
    if flip:
        mirror = (torch.rand(b, generator=generator) < 0.5).to(images.device)[:, None, None, None]
        images = torch.where(mirror, images.flip(-1), images)
    return images


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 or [0, 1] float images -> (x - mean) / std per channel, as float32."""
    if images.dtype == torch.uint8:
        images = images.float() / 255
    mean_t = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images - mean_t) / std_t


def grouped_randaugment(images: torch.Tensor, groups: int, num_ops: int = 2, magnitude: int = 9) -> torch.Tensor:
    """RandAugment (Cubuk et al. 2020; torchvision's ``v2.RandAugment`` at ``datasets.build_transform``'s settings)
    on a uint8 batch [B, C, H, W]. One call draws one set of ops for a whole tensor, so the batch is split into
    ``groups`` chunks that each draw their own ops (from the global RNG)."""
    augment = v2.RandAugment(num_ops=num_ops, magnitude=magnitude)
    return torch.cat([augment(chunk) for chunk in images.chunk(groups)])


@dataclass(frozen=True)
class Augment:
    """What a training batch gets: a random crop of the reflect-padded images, a left-right flip, and RandAugment
    drawn in ``randaugment_groups`` chunks of the batch (0: none)."""

    padding: int = 4
    flip: bool = True
    randaugment_groups: int = 0


class DeviceLoader:
    """Batches of preloaded images: shuffled, cropped and flipped on the device when ``train``, in order otherwise.

    Yields (normalised float images [B, C, H, W], labels [B]); a training epoch drops the last partial batch, as
    ``datasets.make_loader`` does; ``stats`` is the normalisation (mean, std), ``augment`` what training batches get
    (RandAugment before the crop: ``grouped_randaugment``). With ``shard`` = (rank, world_size) under torchrun,
    process ``rank`` takes every ``world_size``-th image of the order, like a DistributedSampler. The shuffle (``generator``) is shared by all processes; the crops and flips
    (``augment_generator``) and RandAugment (the global RNG) are each process's own. Setting ``image_size``
    resizes training batches after the crop (a low-resolution phase, Sec. 3.2); None keeps them as stored.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, train: bool,
                 stats: tuple[Sequence[float], Sequence[float]], augment: Augment = Augment(), seed: int = 0,
                 shard: tuple[int, int] = (0, 1)):
        (mean, std), (rank, world_size) = stats, shard
        padding, flip, randaugment_groups = augment.padding, augment.flip, augment.randaugment_groups
        if images.ndim != 4 or images.shape[0] != labels.shape[0]:
            raise ValueError(f"need images [N, C, H, W] and labels [N], got {tuple(images.shape)}, "
                             f"{tuple(labels.shape)}")
        if batch_size < 1 or (train and batch_size > images.shape[0]):
            raise ValueError(f"batch_size {batch_size} does not fit {images.shape[0]} images")
        if randaugment_groups < 0:
            raise ValueError(f"randaugment_groups must be >= 0 (0: no RandAugment), got {randaugment_groups}")
        if train and padding >= min(images.shape[-2:]):
            raise ValueError(f"reflect padding {padding} must be smaller than the image size "
                             f"{tuple(images.shape[-2:])}")
        self.images, self.labels = images, labels
        self.batch_size, self.train = batch_size, train
        self.mean, self.std, self.padding, self.flip = mean, std, padding, flip
        self.randaugment_groups = randaugment_groups
        self.rank, self.world_size = rank, world_size
        self.image_size: int | None = None
        self.generator = torch.Generator().manual_seed(seed)
        self.augment_generator = torch.Generator().manual_seed(rank_seed(seed, rank))

    def set_epoch(self, seed: int, epoch: int, rank: int = 0) -> None:
        """Seed the shuffle that all processes share from (seed, epoch), and this process's crops
        and flips from (seed, epoch, rank); ``training.loop.reseed`` calls it before every epoch."""
        self.generator.manual_seed(epoch_seed(seed, epoch))
        self.augment_generator.manual_seed(rank_seed(epoch_seed(seed, epoch), rank))

    def epoch_order(self) -> torch.Tensor:
        """The indices of the images this process takes this epoch, in order (draws from ``generator``)."""
        n = self.images.shape[0]
        if self.train:  # every process draws the same permutation and takes its own equal-sized shard of it
            return torch.randperm(n, generator=self.generator)[self.rank::self.world_size][:n // self.world_size]
        return torch.arange(self.rank, n, self.world_size)  # every world_size-th image, in order

    def __len__(self) -> int:
        n = self.images.shape[0]
        if self.train:
            return n // self.world_size // self.batch_size
        return -(-len(range(self.rank, n, self.world_size)) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.epoch_order().to(self.images.device)
        for i in range(len(self)):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            images = self.images[index]
            if self.train and self.randaugment_groups:
                images = grouped_randaugment(images, self.randaugment_groups)
            images = normalize(images, self.mean, self.std)
            if self.train:
                images = random_crop_flip(images, self.padding, self.flip, self.augment_generator)
                if self.image_size is not None and self.image_size != images.shape[-1]:
                    images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                           antialias=True, align_corners=False)
            yield images, self.labels[index]


def batch_mixing(num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0):
    """MixUp (Zhang et al. 2018) and/or CutMix (Yun et al. 2019), torchvision's:
    (images [B, C, H, W], labels [B]) -> (mixed images, soft targets [B, num_classes]). Each image is
    mixed with its neighbour in the batch by a ratio drawn from Beta(alpha, alpha): MixUp blends whole
    images, CutMix pastes a box of that area share, and the targets mix in the same proportion. With
    both alphas > 0 each batch picks one at random (as timm does). None when both alphas are 0."""
    if mixup_alpha < 0 or cutmix_alpha < 0:
        raise ValueError(f"mixup and cutmix alphas must be >= 0 (0 turns one off), got {mixup_alpha}, {cutmix_alpha}")
    mixes = [mix(alpha=alpha, num_classes=num_classes)
             for mix, alpha in ((v2.MixUp, mixup_alpha), (v2.CutMix, cutmix_alpha)) if alpha > 0]
    if not mixes:
        return None
    return BatchMixing(mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes))


class BatchMixing:
    """A batch transform that can be switched off (``active = False``: batches and hard labels pass
    unchanged), as ``training.loop.set_phase`` does after a run's ``mixing_fraction``."""

    def __init__(self, transform):
        self.transform, self.active = transform, True

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(images, labels) if self.active else (images, labels)
