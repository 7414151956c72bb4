import copy

import pytest
import torch
from torch import nn

from vit_replication.analysis import transfer
from vit_replication.download import DownloadError
from vit_replication.model import ViT


def test_new_head_is_zero_initialised(tiny_config):
    model = ViT(tiny_config)
    head = transfer.new_head(model, 3)
    assert model.head is head and head.weight.abs().sum() == 0 and head.bias.abs().sum() == 0
    assert torch.equal(model(torch.randn(2, 3, 16, 16)), torch.zeros(2, 3))  # a zero head predicts uniformly


def test_features_plus_head_equal_the_full_model(tiny_config):
    model = ViT(tiny_config).eval()
    images = torch.randn(5, 3, 16, 16)
    features = transfer.extract_features(model, images, torch.device("cpu"), batch_size=2)
    assert features.shape == (5, 32)
    torch.testing.assert_close(model.head(features), model(images))


def test_offline_backbone_says_so_and_falls_back_to_random_weights(monkeypatch, capsys):
    def offline(name, weights):
        raise DownloadError(f"torchvision's pretrained {name} ({weights}) could not be downloaded (URLError: "
                            "offline); run once with internet access")

    monkeypatch.setattr(transfer, "load_torchvision_pretrained", offline)
    monkeypatch.setattr(transfer, "create_vit", lambda name: ("random", name))
    model, pretrained = transfer.pretrained_backbone("vit_b_16")
    assert model == ("random", "vit_b_16") and pretrained is False
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "random weights" in out
    assert "pretrained vit_b_16 (IMAGENET1K_V1) could not be downloaded" in out


@pytest.mark.parametrize("bad", [0, -1])
def test_extract_features_rejects_bad_batch_size(tiny_config, bad):
    with pytest.raises(ValueError, match=f"batch_size must be at least 1, got {bad}"):
        transfer.extract_features(ViT(tiny_config), torch.randn(2, 3, 16, 16), torch.device("cpu"), batch_size=bad)


def accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of ``inputs`` whose largest logit is their label, computed here (no loader, no ``evaluate``)."""
    with torch.no_grad():
        return (model.eval()(inputs).argmax(dim=-1) == labels).sum().item() / len(labels)


def test_transfer_runs_trains_three_classifiers_without_touching_the_backbone(tiny_config):
    from vit_replication.data.synthetic import SyntheticShapes

    backbone = ViT(tiny_config).eval()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    train, test = SyntheticShapes(40, 16, 4), SyntheticShapes(20, 16, 4, split="test")
    task = transfer.Task((train.images, torch.tensor(train.targets)), (test.images, torch.tensor(test.targets)), 4,
                         (0.5,) * 3, (0.25,) * 3)
    results = transfer.transfer_runs(backbone, task, {m: transfer.transfer_recipe(m, 6, 40, 16)
                                                      for m in transfer.METHODS}, torch.device("cpu"))
    assert list(results) == list(transfer.METHODS)
    for run in results.values():
        assert run["history"]["epoch"] == [1, 2, 3]  # 6 steps of 16 = 3 epochs of 2
        assert run["history"]["test_acc"][:-1] == [None, None]  # one evaluation, at the end
    # each reported accuracy is the trained model's on the 20 test images, normalised with (0.5, 0.25) per channel
    images, labels = (test.images.float() / 255 - 0.5) / 0.25, torch.tensor(test.targets)
    encoder = copy.deepcopy(backbone)
    encoder.head = nn.Identity()  # the backbone up to y = LN(z_L^0): the linear probe's input
    with torch.no_grad():
        features = encoder.eval()(images)
    assert results["linear probe"]["test_acc"] == accuracy(results["linear probe"]["model"], features, labels)
    for method in ("fine-tuning", "from scratch"):
        assert results[method]["test_acc"] == accuracy(results[method]["model"], images, labels), method
    assert results["linear probe"]["model"].weight.shape == (4, 32)
    tuned = results["fine-tuning"]["model"]
    assert tuned.head.out_features == 4 and all(p.requires_grad for p in tuned.parameters())
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())  # trained on a copy
    assert not torch.equal(tuned.embedding.patch_embedding.proj.weight.detach(),
                           backbone.embedding.patch_embedding.proj.weight)  # the encoder was fine-tuned too


def test_transfer_runs_picks_methods_and_refuses_unknown_ones(tiny_config):
    from vit_replication.data.synthetic import SyntheticShapes

    backbone = ViT(tiny_config).eval()
    data = SyntheticShapes(32, 16, 4)
    pair = (data.images, torch.tensor(data.targets))
    task = transfer.Task(pair, pair, 4, (0.5,) * 3, (0.25,) * 3)
    recipe = transfer.transfer_recipe("from scratch", 2, 32, 16)
    results = transfer.transfer_runs(backbone, task, {"from scratch": recipe}, torch.device("cpu"))
    assert list(results) == ["from scratch"] and results["from scratch"]["model"].head.out_features == 4
    with pytest.raises(ValueError, match="unknown methods \\['fine tuning'\\]"):
        transfer.transfer_runs(backbone, task, {"fine tuning": recipe}, torch.device("cpu"))


def test_transfer_recipe_counts_epochs_from_steps_and_keeps_each_method_s_settings():
    probe = transfer.transfer_recipe("linear probe", 200, 5000, 64, seed=2)
    assert (probe.epochs, probe.batch_size, probe.seed, probe.lr, probe.weight_decay) == (3, 64, 2, 1e-2, 0.0)
    assert probe.eval_every == 3 and probe.warmup_epochs == pytest.approx(0.3)  # 200 steps of 78 an epoch
    few = transfer.transfer_recipe("fine-tuning", 200, 50, 64)  # fewer images than a batch: whole-set batches
    assert (few.batch_size, few.epochs, few.lr) == (50, 200, 5e-4)
    scratch = transfer.transfer_recipe("from scratch", 1000, 5000, 250, eval_every=5)
    assert (scratch.epochs, scratch.eval_every, scratch.low_res_size, scratch.patch_dropout) == (50, 5, 16, 0.25)
    assert transfer.transfer_recipe("from scratch", 10, 100, 10, image_size=224).low_res_size == 112
    assert transfer.transfer_recipe("from scratch", 10, 100, 10, low_res_size=None).low_res_size is None
    kernels = {m: transfer.transfer_recipe(m, 10, 100, 10, attention="explicit").attention for m in transfer.METHODS}
    assert kernels == {"linear probe": "auto", "fine-tuning": "explicit", "from scratch": "explicit"}
    with pytest.raises(ValueError, match="unknown method 'probe'"):
        transfer.transfer_recipe("probe", 10, 100, 10)


def test_scratch_curves_evaluate_every_epoch_once_per_seed_and_ignore_the_backbone_weights(tiny_config):
    from vit_replication.data.synthetic import SyntheticShapes

    data = SyntheticShapes(32, 16, 4)
    pair = (data.images, torch.tensor(data.targets))
    task = transfer.Task(pair, pair, 4, (0.5,) * 3, (0.25,) * 3)
    lines = []

    def curves_of(backbone, seeds):
        recipes = [transfer.transfer_recipe("from scratch", 6, 32, 16, seed=s, eval_every=1) for s in seeds]
        return transfer.scratch_curves(backbone, task, recipes, torch.device("cpu"), log=lines.append)

    curves = curves_of(ViT(tiny_config), (0, 1))
    assert curves["steps"] == [2, 4, 6]  # 3 epochs of 2 steps, evaluated after each
    assert len(curves["test_acc"]) == 2 and all(len(accs) == 3 for accs in curves["test_acc"])
    assert all(0.0 <= a <= 1.0 for accs in curves["test_acc"] for a in accs) and len(curves["seconds"]) == 2
    assert [line.split(":")[0] for line in lines] == ["seed 0", "seed 1"]
    other = ViT(tiny_config)
    torch.nn.init.normal_(other.head.weight)  # another backbone of the same architecture: the same curve
    assert curves_of(other, (1,))["test_acc"] == curves["test_acc"][1:]
