"""A small image-classification dataset the package draws itself, so every notebook and test runs offline.

Each image is one coloured shape (the class) at a random position, size and colour on a textured background
(stripes at a random angle blended with smooth noise). Image ``i`` of a split depends only on (seed, split, i),
so the set is identical on every machine and any subset can be drawn without drawing the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

SHAPES = ("circle", "square", "triangle", "diamond", "plus", "cross", "ring", "frame", "ellipse", "half-disk")
_SPLITS = ("train", "test")


def shape_mask(shape: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Boolean mask of ``shape`` on coordinates (u, v) scaled so the shape spans about [-1, 1]^2 (v points down)."""
    au, av = u.abs(), v.abs()
    masks = {
        "circle": lambda: u**2 + v**2 <= 1.0,
        "square": lambda: torch.maximum(au, av) <= 0.8,
        "triangle": lambda: (v <= 0.8) & (au <= (v + 0.95) * 0.55),
        "diamond": lambda: au + av <= 1.0,
        "plus": lambda: ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95)),
        "cross": lambda: (((u - v).abs() <= 0.4) & ((u + v).abs() <= 1.35))
        | (((u + v).abs() <= 0.4) & ((u - v).abs() <= 1.35)),
        "ring": lambda: (u**2 + v**2 <= 1.0) & (u**2 + v**2 >= 0.36),
        "frame": lambda: (torch.maximum(au, av) <= 0.85) & (torch.maximum(au, av) >= 0.5),
        "ellipse": lambda: u**2 + (v / 0.45) ** 2 <= 1.0,
        "half-disk": lambda: (u**2 + v**2 <= 1.0) & (v >= 0.0),
    }
    if shape not in masks:
        raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")
    return masks[shape]()


def _contrasting_colours(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A shape colour and two background colours that each differ from it by a visible margin."""
    shape_colour = torch.rand(3, generator=g)
    backgrounds = []
    while len(backgrounds) < 2:
        colour = torch.rand(3, generator=g)
        if (colour - shape_colour).abs().sum() > 0.9:
            backgrounds.append(colour)
    return shape_colour, backgrounds[0], backgrounds[1]


def draw_image(shape: str, g: torch.Generator, image_size: int = 32) -> torch.Tensor:
    """Draw one image as a uint8 tensor [3, image_size, image_size], anti-aliased by rendering at 2x."""
    size = 2 * image_size
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size  # pixel centres in (0, 1)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    shape_colour, bg_a, bg_b = _contrasting_colours(g)
    # Background: stripes at a random angle and frequency, blended with smooth noise.
    angle, freq = torch.rand(2, generator=g) * torch.tensor([math.pi, 6.0]) + torch.tensor([0.0, 2.0])
    stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * freq * (x * torch.cos(angle) + y * torch.sin(angle)))
    noise = F.interpolate(torch.rand(1, 1, 4, 4, generator=g), size=(size, size), mode="bicubic", align_corners=False)
    blend = (0.6 * stripes + 0.4 * noise[0, 0]).clamp(0, 1)
    image = bg_a[:, None, None] * blend + bg_b[:, None, None] * (1 - blend)
    # Shape: radius 20-40% of the image, centre kept inside the frame.
    radius = 0.2 + 0.2 * torch.rand(1, generator=g).item()
    cx, cy = (radius + (1 - 2 * radius) * torch.rand(2, generator=g)).tolist()
    mask = shape_mask(shape, (x - cx) / radius, (y - cy) / radius)
    image = torch.where(mask, shape_colour[:, None, None], image)
    image = F.avg_pool2d(image[None], 2)[0]
    return (image * 255).round().to(torch.uint8)


def image_seed(seed: int, split: str, index: int) -> int:
    """The generator seed of one image: distinct for every (split, index) of a seed, and within 32
    bits, since PyTorch's CPU generator keeps only the low 32 bits of a seed."""
    return (seed * 2_654_435_761 + 2 * index + _SPLITS.index(split)) % 2**32


class SyntheticShapes(Dataset):
    """Coloured shapes on textured backgrounds; ``classes`` are the shape names (10 by default, like
    CIFAR-10). Items are (uint8 image [3, H, W] through ``transform`` if given, label)."""

    def __init__(self, num_samples: int = 1000, image_size: int = 32, num_classes: int = 10, split: str = "train",
                 seed: int = 0, transform: Callable | None = None):
        if not 2 <= num_classes <= len(SHAPES):
            raise ValueError(f"num_classes must be between 2 and {len(SHAPES)}, got {num_classes}")
        if split not in _SPLITS:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.classes = list(SHAPES[:num_classes])
        self.transform = transform
        self.targets = [i % num_classes for i in range(num_samples)]
        images = [draw_image(self.classes[label], torch.Generator().manual_seed(image_seed(seed, split, i)),
                             image_size) for i, label in enumerate(self.targets)]
        self.images = torch.stack(images) if images else torch.empty(0, 3, image_size, image_size, dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        return (image if self.transform is None else self.transform(image)), self.targets[index]
