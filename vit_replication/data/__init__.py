"""Images in: datasets (``datasets``: CIFAR-10, ImageFolder, the offline ``synthetic`` shapes), data held and
augmented on the device (``augment``), and a run's data built from its config (``pipeline``)."""

from .datasets import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DATASETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    DatasetUnavailable,
    build_transform,
    cifar10_check_subset,
    describe_source,
    find_cifar10,
    load_datasets,
    make_loader,
    normalization,
    sample_batch,
    sample_photo,
    subset,
    synthetic_sets,
)

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "DATASETS", "IMAGENET_MEAN", "IMAGENET_STD", "DatasetUnavailable",
           "build_transform", "cifar10_check_subset", "describe_source", "find_cifar10", "load_datasets",
           "make_loader", "normalization", "sample_batch", "sample_photo", "subset", "synthetic_sets"]
