import pytest
import torch
import torchvision
from PIL import Image

from vit_replication import data
from vit_replication.data.synthetic import SHAPES, SyntheticShapes, shape_mask
from vit_replication.errors import UserError


def test_synthetic_is_deterministic_and_splits_differ():
    a = SyntheticShapes(20, seed=3)
    b = SyntheticShapes(20, seed=3)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, SyntheticShapes(20, seed=4).images)
    assert not torch.equal(a.images, SyntheticShapes(20, seed=3, split="test").images)
    # image i does not depend on how many images are drawn
    assert torch.equal(SyntheticShapes(5, seed=3).images, a.images[:5])


def test_synthetic_items_and_balance():
    ds = SyntheticShapes(50, image_size=32)
    image, label = ds[7]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    assert label == 7 and ds.classes == list(SHAPES)
    assert torch.bincount(torch.tensor(ds.targets)).tolist() == [5] * 10


def test_shape_masks_differ_from_each_other():
    coords = torch.linspace(-1.2, 1.2, 64)
    v, u = torch.meshgrid(coords, coords, indexing="ij")
    masks = [shape_mask(s, u, v) for s in SHAPES]
    for i in range(len(masks)):
        assert masks[i].any()
        for j in range(i + 1, len(masks)):
            assert (masks[i] != masks[j]).float().mean() > 0.03, (SHAPES[i], SHAPES[j])
    with pytest.raises(ValueError, match="unknown shape 'hexagon'"):
        shape_mask("hexagon", u, v)


def test_synthetic_bad_arguments():
    with pytest.raises(ValueError, match="num_classes must be between 2 and 10, got 11"):
        SyntheticShapes(10, num_classes=11)
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        SyntheticShapes(10, split="val")


def test_transforms_give_normalised_float_images():
    ds = SyntheticShapes(4, transform=data.build_transform(32, train=True))
    image, _ = ds[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    test_tf = data.build_transform(32, train=False)
    raw = SyntheticShapes(4).images[0]
    expected = (raw.float() / 255 - torch.tensor(data.CIFAR10_MEAN)[:, None, None]) / torch.tensor(
        data.CIFAR10_STD)[:, None, None]
    torch.testing.assert_close(test_tf(raw), expected)


def test_cifar10_unavailable_falls_back_with_one_clear_line(monkeypatch, capsys, tmp_path):
    def offline(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    train, test, classes = data.load_datasets("cifar10", tmp_path, synthetic_sizes=(30, 10))
    line = capsys.readouterr().out.strip()
    assert "\n" not in line
    assert line.startswith(f"CIFAR-10 is not in {tmp_path} and could not be downloaded")
    assert "run once with internet access" in line and "synthetic shapes instead" in line
    assert (len(train), len(test), len(classes)) == (30, 10, 10)


def test_cifar10_unavailable_without_fallback_raises(monkeypatch, tmp_path):
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(data.DatasetUnavailable, match="copy cifar-10-batches-py into that folder"):
        data.load_datasets("cifar10", tmp_path, fallback=False)


def test_image_folder_loads_train_and_test(tmp_path):
    shapes = SyntheticShapes(6, num_classes=3)
    for split in ("train", "test"):
        for i, (image, label) in enumerate(shapes):
            folder = tmp_path / split / shapes.classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    tf = data.build_transform(32, train=False)
    train, test, classes = data.load_datasets("imagefolder", tmp_path, train_transform=tf, test_transform=tf)
    assert classes == sorted(shapes.classes)
    assert len(train) == len(test) == 6
    assert train[0][0].shape == (3, 32, 32)


def test_image_folder_missing_split_never_falls_back(tmp_path, capsys):
    (tmp_path / "train").mkdir()
    with pytest.raises(UserError, match=r"no test folder in .*needs .*/test/<class>/\*\.jpg \(check --data-dir\)"):
        data.load_datasets("imagefolder", tmp_path)  # fallback=True: a local folder the user named never falls back
    assert capsys.readouterr().out == ""


def test_normalization_is_per_dataset():
    shapes = SyntheticShapes(50)
    mean, std = data.normalization("synthetic", shapes)
    pixels = torch.stack([image for image, _ in shapes]).float() / 255  # all 50 images, computed independently
    torch.testing.assert_close(torch.tensor(mean), pixels.mean(dim=(0, 2, 3)), atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.tensor(std), pixels.permute(1, 0, 2, 3).flatten(1).std(1), atol=1e-4, rtol=0)
    assert data.describe_source(data.subset(shapes, 10)) == "SyntheticShapes"


def test_train_transform_augments_before_cropping():
    names = [type(step).__name__ for step in data.build_transform(32, train=True).transforms]
    assert names[:4] == ["ToImage", "RandAugment", "RandomCrop", "RandomHorizontalFlip"]  # as DeviceLoader does


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        data.load_datasets("mnist")


def test_subset_and_sample_batch():
    ds = SyntheticShapes(40)
    sub = data.subset(ds, 10, seed=1)
    assert len(sub) == 10 and sub.classes == ds.classes
    assert data.subset(ds, None) is ds
    images, labels = data.sample_batch(ds, 4)
    assert images.shape == (4, 3, 32, 32) and labels.shape == (4,)


def test_what_a_download_prints_names_no_home_folder(capsys):
    """torch.hub prints 'Downloading: URL to <home>/.cache/...' to stdout, tqdm its bar to stderr: through fetch the
    home folder reads ~ in both, so stored notebook outputs show no machine's paths."""
    import sys
    from pathlib import Path

    from vit_replication.download import fetch

    def download():
        print(f"Downloading: to {Path.home() / '.cache' / 'w.pth'}")
        sys.stderr.write(f"bar {Path.home()}\n")
        return 7

    assert fetch("w", "get it by hand", download) == 7
    out, err = capsys.readouterr()
    assert out == "Downloading: to ~/.cache/w.pth\n" and err == "bar ~\n"
