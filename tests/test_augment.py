import pytest
import torch
import torch.nn.functional as F

from vit_replication.augment import DeviceLoader, normalize, preload, random_crop_flip
from vit_replication.synthetic import SyntheticShapes


def test_preload_stacks_uint8_images_and_labels():
    dataset = SyntheticShapes(6, 16, seed=1)
    images, labels = preload(dataset)
    assert images.shape == (6, 3, 16, 16) and images.dtype == torch.uint8
    assert labels.tolist() == [dataset[i][1] for i in range(6)]


def test_preload_rejects_transformed_datasets():
    dataset = SyntheticShapes(2, 16, transform=lambda image: torch.zeros(3, 16, 16))
    with pytest.raises(ValueError, match="expects uint8 images"):
        preload(dataset)


def test_crop_is_a_window_of_the_reflect_padded_image_and_flip_mirrors():
    images = torch.randn(8, 3, 8, 8)
    out = random_crop_flip(images, padding=2, flip=True, generator=torch.Generator().manual_seed(0))
    padded = F.pad(images, (2,) * 4, mode="reflect")
    for i in range(8):
        windows = [padded[i, :, t:t + 8, l:l + 8] for t in range(5) for l in range(5)]  # noqa: E741
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)


def test_no_padding_no_flip_is_identity_and_flips_are_half():
    images = torch.randn(4, 3, 8, 8)
    assert torch.equal(random_crop_flip(images, 0, False, torch.Generator()), images)
    many = torch.arange(8.0).expand(2000, 1, 1, 8)
    out = random_crop_flip(many, 0, True, torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 0] == 7).float().mean().item()
    assert 0.45 < flipped < 0.55


def test_eval_loader_covers_every_image_once_in_order_normalised():
    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    labels = torch.arange(10)
    loader = DeviceLoader(images, labels, 4, train=False, mean=(0.5,) * 3, std=(0.25,) * 3)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert torch.equal(torch.cat([b[1] for b in batches]), labels)
    torch.testing.assert_close(torch.cat([b[0] for b in batches]), (images.float() / 255 - 0.5) / 0.25)


def test_train_loader_shuffles_drops_last_and_is_reproducible():
    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    loader = DeviceLoader(images, torch.arange(10), 4, train=True, mean=(0,) * 3, std=(1,) * 3, padding=1, seed=5)
    first = list(loader)
    assert len(first) == len(loader) == 2 and first[0][0].shape == (4, 3, 4, 4)
    seen = torch.cat([b[1] for b in first])
    assert len(set(seen.tolist())) == 8
    loader.generator.manual_seed(5)
    again = list(loader)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))


def test_normalize_accepts_float_in_unit_range():
    x = torch.full((1, 3, 2, 2), 0.5)
    torch.testing.assert_close(normalize(x, (0.5,) * 3, (0.5,) * 3), torch.zeros(1, 3, 2, 2))


def test_loader_bad_inputs():
    with pytest.raises(ValueError, match="reflect padding 4 must be smaller than the image size"):
        DeviceLoader(torch.zeros(3, 3, 4, 4, dtype=torch.uint8), torch.zeros(3), 2, True, (0,) * 3, (1,) * 3)
    with pytest.raises(ValueError, match="does not fit"):
        DeviceLoader(torch.zeros(3, 3, 4, 4, dtype=torch.uint8), torch.zeros(3), 4, True, (0,) * 3, (1,) * 3)
    with pytest.raises(ValueError, match=r"need images \[N, C, H, W\]"):
        DeviceLoader(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(3), 2, True, (0,) * 3, (1,) * 3)


def test_training_shards_of_two_processes_are_disjoint_and_cover_the_epoch():
    images = torch.randint(0, 256, (12, 3, 4, 4), dtype=torch.uint8)
    shards = [DeviceLoader(images, torch.arange(12), 3, True, (0,) * 3, (1,) * 3, padding=1, seed=2, rank=r,
                           world_size=2)
              for r in range(2)]
    seen = [torch.cat([labels for _, labels in loader]).tolist() for loader in shards]
    assert len(shards[0]) == 2 and len(seen[0]) == len(seen[1]) == 6
    assert sorted(seen[0] + seen[1]) == list(range(12))
