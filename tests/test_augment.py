import pytest
import torch
import torch.nn.functional as F

from vit_replication.data.augment import (
    Augment,
    DeviceLoader,
    batch_mixing,
    grouped_randaugment,
    normalize,
    preload,
    random_crop_flip,
)
from vit_replication.data.synthetic import SyntheticShapes


def test_preload_stacks_uint8_images_and_labels():
    dataset = SyntheticShapes(6, 16, seed=1)
    images, labels = preload(dataset)
    assert images.shape == (6, 3, 16, 16) and images.dtype == torch.uint8
    assert labels.tolist() == [dataset[i][1] for i in range(6)]


def test_preload_in_worker_processes_gives_the_same_tensors():
    dataset = SyntheticShapes(300, 16, seed=3)  # more than one collated batch of 256
    images, labels = preload(dataset)
    parallel_images, parallel_labels = preload(dataset, num_workers=2)
    assert torch.equal(images, parallel_images) and torch.equal(labels, parallel_labels)
    assert images.shape == (300, 3, 16, 16)


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
    loader = DeviceLoader(images, labels, 4, train=False, stats=((0.5,) * 3, (0.25,) * 3))
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert torch.equal(torch.cat([b[1] for b in batches]), labels)
    torch.testing.assert_close(torch.cat([b[0] for b in batches]), (images.float() / 255 - 0.5) / 0.25)


def test_train_loader_shuffles_drops_last_and_is_reproducible():
    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    loader = DeviceLoader(images, torch.arange(10), 4, True, ((0,) * 3, (1,) * 3), Augment(padding=1), seed=5)
    first = list(loader)
    assert len(first) == len(loader) == 2 and first[0][0].shape == (4, 3, 4, 4)
    seen = torch.cat([b[1] for b in first])
    assert len(set(seen.tolist())) == 8
    loader.set_epoch(0, 5)  # the generators of seed 5 again: epoch_seed(0, 5) == 5
    again = list(loader)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))


def test_normalize_accepts_float_in_unit_range():
    x = torch.full((1, 3, 2, 2), 0.5)
    torch.testing.assert_close(normalize(x, (0.5,) * 3, (0.5,) * 3), torch.zeros(1, 3, 2, 2))


def test_loader_bad_inputs():
    with pytest.raises(ValueError, match="reflect padding 4 must be smaller than the image size"):
        DeviceLoader(torch.zeros(3, 3, 4, 4, dtype=torch.uint8), torch.zeros(3), 2, True, ((0,) * 3, (1,) * 3))
    with pytest.raises(ValueError, match="does not fit"):
        DeviceLoader(torch.zeros(3, 3, 4, 4, dtype=torch.uint8), torch.zeros(3), 4, True, ((0,) * 3, (1,) * 3))
    with pytest.raises(ValueError, match=r"need images \[N, C, H, W\]"):
        DeviceLoader(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(3), 2, True, ((0,) * 3, (1,) * 3))


def test_training_shards_of_two_processes_are_disjoint_and_cover_the_epoch():
    images = torch.randint(0, 256, (12, 3, 4, 4), dtype=torch.uint8)
    shards = [DeviceLoader(images, torch.arange(12), 3, True, ((0,) * 3, (1,) * 3), Augment(padding=1), seed=2,
                           shard=(r, 2))
              for r in range(2)]
    seen = [torch.cat([labels for _, labels in loader]).tolist() for loader in shards]
    assert len(shards[0]) == 2 and len(seen[0]) == len(seen[1]) == 6
    assert sorted(seen[0] + seen[1]) == list(range(12))


def test_test_shards_of_three_processes_cover_the_set_once_in_order():
    images = torch.randint(0, 256, (11, 3, 4, 4), dtype=torch.uint8)
    shards = [DeviceLoader(images, torch.arange(11), 2, False, ((0,) * 3, (1,) * 3), shard=(r, 3))
              for r in range(3)]
    seen = [torch.cat([labels for _, labels in loader]).tolist() for loader in shards]
    assert seen == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]  # no padding: 11 images are seen once
    assert [len(loader) for loader in shards] == [2, 2, 2]


def _distinct_labels_batch(b: int = 6, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(b, 3, size, size), torch.arange(b)  # every image's neighbour has another class


def test_mixup_blends_each_image_with_its_neighbour_in_the_targets_proportion():
    images, labels = _distinct_labels_batch()
    mixed, targets = batch_mixing(10, mixup_alpha=0.8)(images, labels)
    lam = targets[0, labels[0]]  # the image's own share; the rest goes to the neighbour's label
    assert 0 < lam < 1 and torch.allclose(targets.sum(-1), torch.ones(6))
    assert torch.allclose(targets, lam * F.one_hot(labels, 10) + (1 - lam) * F.one_hot(labels.roll(1), 10))
    assert torch.allclose(mixed, lam * images + (1 - lam) * images.roll(1, 0), atol=1e-6)


def test_cutmix_pastes_a_box_of_the_neighbour_whose_area_is_its_target_share():
    torch.manual_seed(3)
    images, labels = _distinct_labels_batch(size=16)
    mixed, targets = batch_mixing(10, cutmix_alpha=1.0)(images, labels)
    from_neighbour = (mixed == images.roll(1, 0)).all(dim=1)  # [B, H, W]: pixels taken from the neighbour
    assert torch.equal(from_neighbour | (mixed == images).all(dim=1), torch.ones_like(from_neighbour))
    rows, cols = from_neighbour[0].nonzero().unbind(-1)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert box == rows.numel() > 0  # one rectangle, the same for the whole batch
    assert torch.allclose(targets[:, labels.roll(1)].diagonal(), torch.full((6,), rows.numel() / 256))


def test_both_mixes_alternate_reproducibly_and_off_means_none():
    images, labels = _distinct_labels_batch()
    mix = batch_mixing(10, mixup_alpha=0.8, cutmix_alpha=1.0)
    kinds = set()
    for seed in range(12):
        torch.manual_seed(seed)
        first = mix(images, labels)
        torch.manual_seed(seed)
        second = mix(images, labels)
        assert all(torch.equal(a, b) for a, b in zip(first, second))
        kinds.add("cutmix" if (first[0] == images).any() else "mixup")
    assert kinds == {"cutmix", "mixup"}
    assert batch_mixing(10) is None
    with pytest.raises(ValueError, match="alphas must be >= 0"):
        batch_mixing(10, mixup_alpha=-1.0)


def test_grouped_randaugment_draws_ops_per_group_reproducibly():
    image = preload(SyntheticShapes(1, 32, seed=2))[0]
    copies = image.expand(8, -1, -1, -1).contiguous()
    torch.manual_seed(0)
    one_group = grouped_randaugment(copies, groups=1)
    assert one_group.dtype == torch.uint8 and one_group.shape == copies.shape
    assert all(torch.equal(one_group[0], x) for x in one_group)  # one set of ops for the whole batch
    changed = 0
    for seed in range(5):
        torch.manual_seed(seed)
        per_image = grouped_randaugment(copies, groups=8)
        torch.manual_seed(seed)
        assert torch.equal(per_image, grouped_randaugment(copies, groups=8))
        changed += sum(not torch.equal(per_image[0], x) for x in per_image[1:])
    assert changed > 0  # eight groups draw their own ops: identical inputs come out different


def test_device_loader_randaugments_training_batches_only():
    images, labels = preload(SyntheticShapes(16, 16, seed=4))
    stats = (0.5,) * 3, (0.25,) * 3
    plain = DeviceLoader(images, labels, 16, True, stats, Augment(padding=0, flip=False))
    augmented = DeviceLoader(images, labels, 16, True, stats, Augment(0, False, randaugment_groups=4))
    (x_plain, y_plain), (x_aug, y_aug) = next(iter(plain)), next(iter(augmented))  # same seed: same order
    assert torch.equal(y_plain, y_aug) and not torch.equal(x_plain, x_aug)
    test = DeviceLoader(images, labels, 16, False, stats, Augment(randaugment_groups=4))
    assert torch.equal(next(iter(test))[0], normalize(images, *stats))
    with pytest.raises(ValueError, match="randaugment_groups must be >= 0"):
        DeviceLoader(images, labels, 16, True, stats, Augment(randaugment_groups=-1))
