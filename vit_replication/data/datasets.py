"""Datasets and transforms: CIFAR-10 (torchvision), any ImageFolder (e.g. pizza_steak_sushi), and the package's
own synthetic shapes, which need no download, so that notebooks never hang or fail obscurely offline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from ..distributed import epoch_seed, rank_seed
from ..download import DownloadError, fetch
from ..errors import UserError
from .synthetic import SyntheticShapes

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PIZZA_STEAK_SUSHI_URL = "https://github.com/mrdbourke/pytorch-deep-learning/raw/main/data/pizza_steak_sushi.zip"
DATASETS = ("cifar10", "imagefolder", "pizza_steak_sushi", "synthetic")


class DatasetUnavailable(DownloadError):
    """A real dataset is neither on disk nor downloadable; the message says how to get it."""


def build_transform(image_size: int, train: bool, mean: tuple[float, ...] = CIFAR10_MEAN,
                    std: tuple[float, ...] = CIFAR10_STD, resize: bool = False,
                    randaugment: bool = True) -> v2.Compose:
    """Train: RandAugment, then a random crop (padded, or random-resized when ``resize``) and a
    horizontal flip (the order ``augment.DeviceLoader`` uses too); test: resize + centre crop when
    ``resize``. Both end in float conversion and normalisation."""
    steps: list[Callable] = [v2.ToImage()]
    if train:
        if randaugment:
            steps.append(v2.RandAugment(num_ops=2, magnitude=9))
        if resize:
            steps.append(v2.RandomResizedCrop(image_size, scale=(0.35, 1.0), antialias=True))
        else:
            steps.append(v2.RandomCrop(image_size, padding=image_size // 8, padding_mode="reflect"))
        steps.append(v2.RandomHorizontalFlip())
    elif resize:
        steps += [v2.Resize(int(image_size * 256 / 224), antialias=True), v2.CenterCrop(image_size)]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    return v2.Compose(steps)


def cifar10(root: str | Path, train_transform=None, test_transform=None, download: bool = True):
    """CIFAR-10 train and test sets from ``root`` (torchvision's ``cifar-10-batches-py``), downloading if needed."""
    def load():
        return tuple(torchvision.datasets.CIFAR10(str(root), train=split, download=download, transform=transform)
                     for split, transform in ((True, train_transform), (False, test_transform)))

    return fetch(f"CIFAR-10 is not in {root} and", "run once with internet access, or copy cifar-10-batches-py into "
                 "that folder", load, DatasetUnavailable)


def read_image(path: str):
    """An RGB PIL image; an unreadable or truncated file is a ``UserError`` that names it."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except OSError as err:
        raise UserError(f"cannot read image {path} ({err}); replace or delete that file") from err


def image_folder(root: str | Path, train_transform=None, test_transform=None):
    """An ImageFolder dataset laid out as ``root/train/<class>/*.jpg`` and ``root/test/<class>/*.jpg``."""
    root = Path(root)
    missing = [split for split in ("train", "test") if not (root / split).is_dir()]
    if missing:
        raise UserError(
            f"no {' and '.join(missing)} folder in {root}: an ImageFolder dataset needs "
            f"{root}/train/<class>/*.jpg and {root}/test/<class>/*.jpg (check --data-dir)"
        )
    try:
        train = torchvision.datasets.ImageFolder(str(root / "train"), train_transform, loader=read_image)
        test = torchvision.datasets.ImageFolder(str(root / "test"), test_transform, loader=read_image)
    except FileNotFoundError as err:  # a split with no class folders or no images
        raise UserError(f"{root}: {err}") from err
    if train.classes != test.classes:
        raise UserError(f"{root}: train/ and test/ have different class folders ({train.classes} vs {test.classes})")
    return train, test


def pizza_steak_sushi(root: str | Path, train_transform=None, test_transform=None, download: bool = True):
    """The 3-class food subset of Food-101 used by popular ViT tutorials, downloaded into ``root`` if needed."""
    folder = Path(root) / "pizza_steak_sushi"
    if not (folder / "train").is_dir() and download:
        fetch(f"pizza_steak_sushi is not in {folder} and", f"run once with internet access, or unzip "
              f"{PIZZA_STEAK_SUSHI_URL} there", lambda: torchvision.datasets.utils.download_and_extract_archive(
                  PIZZA_STEAK_SUSHI_URL, download_root=str(root), extract_root=str(folder)), DatasetUnavailable)
    return image_folder(folder, train_transform, test_transform)


def load_datasets(name: str = "cifar10", root: str | Path = "data", image_size: int = 32,
                  train_transform: Callable | None = None, test_transform: Callable | None = None,
                  fallback: bool = True, synthetic_sizes: tuple[int, int] = (5000, 1000),
                  seed: int = 0) -> tuple[Dataset, Dataset, list[str]]:
    """(train set, test set, class names) for ``name`` in DATASETS. ``root`` is the download folder, or for
    "imagefolder" the dataset itself. With ``fallback``, a dataset that cannot be downloaded is replaced by
    ``synthetic_sizes`` synthetic images after one line that says why and how to get it."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    real = {"imagefolder": image_folder, "cifar10": cifar10, "pizza_steak_sushi": pizza_steak_sushi}
    try:  # a local imagefolder's errors are UserErrors, not DatasetUnavailable: it never falls back
        if name in real:
            train, test = real[name](root, train_transform, test_transform)
        else:
            train, test = synthetic_sets(image_size, train_transform, test_transform, synthetic_sizes, seed)
    except DatasetUnavailable as err:
        if not fallback:
            raise
        print(f"{err}. Using the package's synthetic shapes instead.")
        train, test = synthetic_sets(image_size, train_transform, test_transform, synthetic_sizes, seed)
    return train, test, list(train.classes)


def find_cifar10(root: str | Path = "data") -> tuple[str, Path]:
    """(dataset name, folder) for ``load_datasets``: the ImageFolder copy of CIFAR-10 in
    ``root/cifar10-jpg`` when it is there, else torchvision's CIFAR-10 in ``root``."""
    jpg = Path(root) / "cifar10-jpg"
    return ("imagefolder", jpg) if (jpg / "test").is_dir() else ("cifar10", Path(root))


def cifar10_check_subset(source: str | Path, every: int = 10) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Every ``every``-th test image (in sorted path order) of an ImageFolder copy of CIFAR-10, a
    folder or a .tar.gz of it, as (uint8 images [N, 3, 32, 32], labels [N], class names): the fixed
    subset on which the shipped model's accuracy is stored and checked."""
    import io
    import tarfile

    from PIL import Image

    def decode(raw: bytes) -> torch.Tensor:
        return v2.functional.pil_to_tensor(Image.open(io.BytesIO(raw)).convert("RGB"))

    source = Path(source)
    if source.is_dir():
        paths = sorted(source.glob("test/*/*.jpg"))
        items = [(path.parent.name, path.read_bytes()) for path in paths[::every]]
    else:
        with tarfile.open(source, "r|*") as archive:  # a stream: one pass, no seeking back
            raw = {m.name: archive.extractfile(m).read() for m in archive
                   if m.isfile() and m.name.lstrip("./").startswith("test/")}
        items = [(Path(name).parent.name, raw[name]) for name in sorted(raw)[::every]]
    if not items:
        raise UserError(f"no test/<class>/*.jpg images in {source}")
    classes = sorted({name for name, _ in items})
    images = torch.stack([decode(raw) for _, raw in items])
    return images, torch.tensor([classes.index(name) for name, _ in items]), classes


def describe_source(dataset: Dataset) -> str:
    """What a dataset really is, e.g. 'ImageFolder data/cifar10-jpg/train' or 'SyntheticShapes' (for metrics)."""
    inner = getattr(dataset, "dataset", dataset)
    root = getattr(inner, "root", None)
    return type(inner).__name__ + (f" {root}" if root and not isinstance(inner, SyntheticShapes) else "")


def _random_indices(dataset: Dataset, count: int, seed: int) -> list[int]:
    """``count`` distinct indices of ``dataset`` drawn at random, fixed by ``seed``."""
    return torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count].tolist()


def channel_statistics(dataset: Dataset, max_images: int = 2000, seed: int = 0) -> tuple[tuple, tuple]:
    """Per-channel mean and standard deviation of the pixels (scaled to [0, 1]) of up to
    ``max_images`` random items of a dataset without transforms (PIL images or uint8 tensors)."""
    indices = _random_indices(dataset, max_images, seed)
    to_image = v2.ToImage()
    pixels = torch.cat([to_image(dataset[i][0]).flatten(1).float() / 255 for i in indices], dim=1)
    return tuple(round(v, 4) for v in pixels.mean(1).tolist()), tuple(round(v, 4) for v in pixels.std(1).tolist())


def normalization(name: str, train_set: Dataset) -> tuple[tuple, tuple]:
    """(mean, std) to normalise ``name``'s images with: the published statistics for CIFAR-10 and for photos
    (ImageNet's, for pizza_steak_sushi), measured on the training set (no transforms) for the others."""
    if name == "cifar10" and describe_source(train_set).startswith("CIFAR10"):
        return CIFAR10_MEAN, CIFAR10_STD
    if name == "pizza_steak_sushi" and describe_source(train_set).startswith("ImageFolder"):
        return IMAGENET_MEAN, IMAGENET_STD
    return channel_statistics(train_set)


def set_transforms(train_set: Dataset, test_set: Dataset, train_transform, test_transform) -> None:
    """Attach transforms to datasets built without them (through a ``Subset`` too)."""
    for dataset, transform in ((train_set, train_transform), (test_set, test_transform)):
        getattr(dataset, "dataset", dataset).transform = transform


def synthetic_sets(image_size: int, train_transform, test_transform, sizes: tuple[int, int] = (5000, 1000),
                   seed: int = 0):
    """Train and test splits of SyntheticShapes (disjoint: each split draws from its own seeds)."""
    train = SyntheticShapes(sizes[0], image_size, split="train", seed=seed, transform=train_transform)
    test = SyntheticShapes(sizes[1], image_size, split="test", seed=seed, transform=test_transform)
    return train, test


def subset(dataset: Dataset, size: int | None, seed: int = 0) -> Dataset:
    """A fixed random subset of ``size`` items (the whole set when ``size`` is None or too big); keeps ``classes``."""
    if size is None or size >= len(dataset):
        return dataset
    sub = torch.utils.data.Subset(dataset, _random_indices(dataset, size, seed))
    sub.classes = dataset.classes
    return sub


class SeededLoader(DataLoader):
    """A DataLoader whose shuffle follows (seed, epoch), so a resumed run draws what the uninterrupted one would."""

    def set_epoch(self, seed: int, epoch: int, rank: int = 0) -> None:
        """Seed the shuffle (in one process) or the workers' seeds (under torchrun, where the DistributedSampler
        shuffles from (its seed, epoch) for all processes alike); ``training.loop.reseed`` calls it."""
        self.generator.manual_seed(rank_seed(epoch_seed(seed, epoch), rank))
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


def make_loader(dataset: Dataset, batch_size: int, train: bool, num_workers: int = 0, sampler=None,
                seed: int = 0) -> SeededLoader:
    """A loader; a training one shuffles (with its own generator) and drops the last partial batch."""
    return SeededLoader(dataset, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
                        drop_last=train, num_workers=num_workers, pin_memory=torch.cuda.is_available(),
                        generator=torch.Generator().manual_seed(seed))


def sample_batch(dataset: Dataset, count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` items of ``dataset`` chosen at random (fixed by ``seed``), stacked into (images, labels)."""
    images, labels = zip(*(dataset[i] for i in _random_indices(dataset, count, seed)))
    return torch.stack(images), torch.tensor(labels)


def sample_photo(size: int = 224) -> torch.Tensor:
    """Matplotlib's sample portrait of Grace Hopper as a uint8 tensor [3, size, size]: a real photo
    that ships with an installed package, so the notebooks need no download."""
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        image = v2.functional.pil_to_tensor(Image.open(f).convert("RGB"))
    image = v2.functional.center_crop(image, min(image.shape[-2:]))
    return v2.functional.resize(image, [size, size], antialias=True)
