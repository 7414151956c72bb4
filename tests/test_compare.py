import torch

from vit_replication.augment import DeviceLoader, preload
from vit_replication.compare import inference_throughput, summary_table, train_variant
from vit_replication.model import ViT
from vit_replication.synthetic import SyntheticShapes


def loaders(tiny_config):
    train = preload(SyntheticShapes(64, tiny_config.image_size, split="train"))
    test = preload(SyntheticShapes(32, tiny_config.image_size, split="test"))
    stats = {"mean": (0.5,) * 3, "std": (0.25,) * 3}
    return DeviceLoader(*train, 16, True, **stats), DeviceLoader(*test, 16, False, **stats)


def test_same_seed_same_variant_trains_identically_and_reports(tiny_config):
    runs = [train_variant("plain", lambda: ViT(tiny_config), *loaders(tiny_config), epochs=2, lr=1e-3,
                          device=torch.device("cpu"), progress=False) for _ in range(2)]
    assert runs[0]["history"]["train_loss"] == runs[1]["history"]["train_loss"]
    assert runs[0]["history"]["test_acc"] == runs[1]["history"]["test_acc"]
    assert runs[0]["parameters"] == sum(p.numel() for p in runs[0]["model"].parameters())
    assert len(runs[0]["history"]["epoch"]) == 2 and runs[0]["train_images_per_s"] > 0
    table = summary_table(runs)
    assert table.count("plain") == 2 and f"{runs[0]['parameters']:,}" in table


def test_different_seed_changes_the_run(tiny_config):
    a, b = (train_variant("v", lambda: ViT(tiny_config), *loaders(tiny_config), epochs=1, lr=1e-3,
                          device=torch.device("cpu"), seed=s, progress=False) for s in (0, 1))
    assert a["history"]["train_loss"] != b["history"]["train_loss"]


def test_inference_throughput_is_positive(tiny_config):
    assert inference_throughput(ViT(tiny_config), torch.randn(4, 3, 16, 16), repeats=2) > 0
