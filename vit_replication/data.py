"""Datasets and transforms: CIFAR-10 (torchvision), any ImageFolder (e.g. pizza_steak_sushi), and the package's
own synthetic shapes, which need no download.

When a real dataset cannot be had, ``load_datasets`` says so in one line, tells how to get it, and (unless told
not to) falls back to the synthetic set, so notebooks never hang or fail obscurely offline.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import torch
import torchvision
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .synthetic import SyntheticShapes

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PIZZA_STEAK_SUSHI_URL = "https://github.com/mrdbourke/pytorch-deep-learning/raw/main/data/pizza_steak_sushi.zip"
DATASETS = ("cifar10", "imagefolder", "pizza_steak_sushi", "synthetic")


class DatasetUnavailable(RuntimeError):
    """A real dataset is neither on disk nor downloadable; the message says how to get it."""


def build_transform(
    image_size: int,
    train: bool,
    mean: tuple[float, ...] = CIFAR10_MEAN,
    std: tuple[float, ...] = CIFAR10_STD,
    resize: bool = False,
    randaugment: bool = True,
) -> v2.Compose:
    """Train: random crop (padded, or random-resized when ``resize``), horizontal flip, RandAugment;
    test: resize + centre crop when ``resize``. Both end in float conversion and normalisation."""
    steps: list[Callable] = [v2.ToImage()]
    if train:
        if resize:
            steps.append(v2.RandomResizedCrop(image_size, scale=(0.35, 1.0), antialias=True))
        else:
            steps.append(v2.RandomCrop(image_size, padding=image_size // 8, padding_mode="reflect"))
        steps.append(v2.RandomHorizontalFlip())
        if randaugment:
            steps.append(v2.RandAugment(num_ops=2, magnitude=9))
    elif resize:
        steps += [v2.Resize(int(image_size * 256 / 224), antialias=True), v2.CenterCrop(image_size)]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    return v2.Compose(steps)


@contextmanager
def network_timeout(seconds: float):
    """Bound every socket operation, so a download on a closed network fails instead of hanging."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def cifar10(root: str | Path, train_transform=None, test_transform=None, download: bool = True):
    """CIFAR-10 train and test sets from ``root`` (torchvision's ``cifar-10-batches-py``), downloading if needed."""
    try:
        with network_timeout(30):
            train = torchvision.datasets.CIFAR10(str(root), train=True, transform=train_transform, download=download)
            test = torchvision.datasets.CIFAR10(str(root), train=False, transform=test_transform, download=download)
    except Exception as err:  # URLError, socket timeouts, checksum or missing-file errors
        raise DatasetUnavailable(
            f"CIFAR-10 is not in {root} and could not be downloaded ({type(err).__name__}: {err}); "
            "run once with internet access, or copy cifar-10-batches-py into that folder"
        ) from err
    return train, test


def image_folder(root: str | Path, train_transform=None, test_transform=None):
    """An ImageFolder dataset laid out as ``root/train/<class>/*.jpg`` and ``root/test/<class>/*.jpg``."""
    root = Path(root)
    missing = [split for split in ("train", "test") if not (root / split).is_dir()]
    if missing:
        raise DatasetUnavailable(
            f"no {' and '.join(missing)} folder in {root}: an ImageFolder dataset needs "
            f"{root}/train/<class>/*.jpg and {root}/test/<class>/*.jpg"
        )
    train = torchvision.datasets.ImageFolder(str(root / "train"), transform=train_transform)
    test = torchvision.datasets.ImageFolder(str(root / "test"), transform=test_transform)
    return train, test


def pizza_steak_sushi(root: str | Path, train_transform=None, test_transform=None, download: bool = True):
    """The 3-class food subset of Food-101 used by popular ViT tutorials, downloaded into ``root`` if needed."""
    folder = Path(root) / "pizza_steak_sushi"
    if not (folder / "train").is_dir() and download:
        try:
            with network_timeout(30):
                torchvision.datasets.utils.download_and_extract_archive(
                    PIZZA_STEAK_SUSHI_URL, download_root=str(root), extract_root=str(folder)
                )
        except Exception as err:
            raise DatasetUnavailable(
                f"pizza_steak_sushi is not in {folder} and could not be downloaded ({type(err).__name__}: {err}); "
                f"run once with internet access, or unzip {PIZZA_STEAK_SUSHI_URL} there"
            ) from err
    return image_folder(folder, train_transform, test_transform)


def load_datasets(
    name: str = "cifar10",
    root: str | Path = "data",
    image_size: int = 32,
    train_transform: Callable | None = None,
    test_transform: Callable | None = None,
    fallback: bool = True,
    synthetic_sizes: tuple[int, int] = (5000, 1000),
    seed: int = 0,
) -> tuple[Dataset, Dataset, list[str]]:
    """(train set, test set, class names) for ``name`` in DATASETS.

    ``root`` is the download folder (cifar10, pizza_steak_sushi) or the dataset folder itself (imagefolder).
    With ``fallback``, an unavailable real dataset is replaced by ``synthetic_sizes`` synthetic images (10 classes,
    like CIFAR-10) after one printed line that says why and how to get the real data.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    try:
        if name == "cifar10":
            train, test = cifar10(root, train_transform, test_transform)
        elif name == "imagefolder":
            train, test = image_folder(root, train_transform, test_transform)
        elif name == "pizza_steak_sushi":
            train, test = pizza_steak_sushi(root, train_transform, test_transform)
        else:
            train, test = synthetic(image_size, train_transform, test_transform, synthetic_sizes, seed)
    except DatasetUnavailable as err:
        if not fallback:
            raise
        print(f"{err}. Using the package's synthetic shapes instead.")
        train, test = synthetic(image_size, train_transform, test_transform, synthetic_sizes, seed)
    return train, test, list(train.classes)


def synthetic(image_size: int, train_transform, test_transform, sizes: tuple[int, int] = (5000, 1000), seed: int = 0):
    """Train and test splits of SyntheticShapes (disjoint: each split draws from its own seeds)."""
    train = SyntheticShapes(sizes[0], image_size, split="train", seed=seed, transform=train_transform)
    test = SyntheticShapes(sizes[1], image_size, split="test", seed=seed, transform=test_transform)
    return train, test


def subset(dataset: Dataset, size: int | None, seed: int = 0) -> Dataset:
    """A fixed random subset of ``size`` items (the whole set when ``size`` is None or too big); keeps ``classes``."""
    if size is None or size >= len(dataset):
        return dataset
    indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:size].tolist()
    sub = torch.utils.data.Subset(dataset, indices)
    sub.classes = dataset.classes
    return sub


def make_loader(
    dataset: Dataset, batch_size: int, train: bool, num_workers: int = 0, sampler=None, seed: int = 0
) -> DataLoader:
    """A DataLoader; training loaders shuffle with their own generator (``engine.fit`` reseeds it each epoch)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        drop_last=train,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        generator=generator,
    )


def sample_batch(dataset: Dataset, count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` items of ``dataset`` chosen at random (fixed by ``seed``), stacked into (images, labels)."""
    indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    images, labels = zip(*(dataset[i] for i in indices))
    return torch.stack(images), torch.tensor(labels)


def sample_photo(size: int = 224) -> torch.Tensor:
    """Matplotlib's sample portrait of Grace Hopper, centre-cropped and resized to a uint8 tensor [3, size, size]
    (a real photo that ships with an installed package, so the notebooks need no download)."""
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        image = v2.functional.pil_to_tensor(Image.open(f).convert("RGB"))
    image = v2.functional.center_crop(image, min(image.shape[-2:]))
    return v2.functional.resize(image, [size, size], antialias=True)
