"""A run's data, built in one place for every caller: the dataset (offline: the synthetic shapes),
the subsets asked for, the normalisation, and the loaders (``augment.DeviceLoader`` for
``loader="device"``, else a ``datasets.SeededLoader`` with per-image transforms).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from .augment import Augment, DeviceLoader, preload
from .datasets import build_transform, describe_source, load_datasets, make_loader, normalization, set_transforms, subset
from ..training.config import ConfigError, TrainConfig


@dataclass
class RunData:
    """The datasets, class names, normalisation and loaders of a run (this process's shard under torchrun)."""

    train_set: Dataset
    test_set: Dataset
    classes: list[str]
    mean: tuple
    std: tuple
    train_loader: object
    test_loader: object

    @property
    def stats(self) -> tuple[tuple, tuple]:
        return self.mean, self.std

    def describe(self) -> str:
        """What was really loaded: the named dataset, or the synthetic fallback."""
        return describe_source(self.train_set)


def build_data(config: TrainConfig, image_size: int) -> tuple[Dataset, Dataset, list[str], tuple[tuple, tuple]]:
    """(train set, test set, class names, (mean, std)) of the subsets asked for, with ``build_transform``'s
    transforms (none for ``loader="device"``, which augments on the device)."""
    sizes = (config.train_size or 5000, config.test_size or 1000)  # synthetic set (also the offline fallback)
    train, test, classes = load_datasets(config.dataset, config.data_dir, image_size, synthetic_sizes=sizes,
                                         seed=config.seed)
    train, test = subset(train, config.train_size, config.seed), subset(test, config.test_size, config.seed)
    mean, std = normalization(config.dataset, train)
    if config.loader != "device":
        resize = config.resize or config.dataset == "pizza_steak_sushi"
        set_transforms(train, test, build_transform(image_size, True, mean, std, resize, config.randaugment),
                       build_transform(image_size, False, mean, std, resize))
    return train, test, classes, (mean, std)


def build_loaders(config: TrainConfig, train_set: Dataset, test_set: Dataset, stats: tuple[tuple, tuple],
                  device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1):
    """(train loader, test loader); under torchrun each process gets batch_size / world_size images
    of every training step and every world_size-th test image."""
    if config.batch_size % world_size:
        raise ConfigError(f"batch_size {config.batch_size} is not divisible by the {world_size} processes",
                          "batch_size")
    if config.batch_size > len(train_set):
        raise ConfigError(f"batch_size {config.batch_size} is larger than the {len(train_set)} training images: "
                          "lower it, or use a larger train_size", "batch_size", "train_size")
    batch = config.batch_size // world_size
    if config.loader == "device":
        augment = Augment(randaugment_groups=config.randaugment_groups if config.randaugment else 0)
        shard = (rank, world_size)
        return (DeviceLoader(*preload(train_set, device, config.num_workers), batch, True, stats, augment,
                             config.seed, shard),
                DeviceLoader(*preload(test_set, device, config.num_workers), 2 * batch, False, stats, shard=shard))
    sampler = None
    if world_size > 1:
        sampler = DistributedSampler(train_set, world_size, rank, shuffle=True, seed=config.seed, drop_last=True)
    train_loader = make_loader(train_set, batch, True, config.num_workers, sampler, config.seed)
    test_shard = Subset(test_set, range(rank, len(test_set), world_size)) if world_size > 1 else test_set
    test_loader = make_loader(test_shard, 2 * batch, False, config.num_workers)
    return train_loader, test_loader


def run_data(config: TrainConfig, image_size: int, device: torch.device | str = "cpu", rank: int = 0,
             world_size: int = 1) -> RunData:
    """Datasets and loaders of ``config`` for images of ``image_size`` pixels: ``build_data`` + ``build_loaders``."""
    train_set, test_set, classes, stats = build_data(config, image_size)
    loaders = build_loaders(config, train_set, test_set, stats, device, rank, world_size)
    return RunData(train_set, test_set, classes, *stats, *loaders)


def whole_test_loader(config: TrainConfig, data: RunData):
    """A loader over the whole test set (for the figures); ``data.test_loader`` is one process's shard."""
    if isinstance(data.test_loader, DeviceLoader):
        return DeviceLoader(data.test_loader.images, data.test_loader.labels, 2 * config.batch_size, False,
                            data.stats)
    return make_loader(data.test_set, 2 * config.batch_size, False, config.num_workers)
