from functools import partial
from types import SimpleNamespace

import pytest
import torch

from vit_replication.analysis import compare
from vit_replication.analysis.compare import inference_throughput, train_variant
from vit_replication.data.augment import DeviceLoader, preload
from vit_replication.data.synthetic import SyntheticShapes
from vit_replication.model import ViT
from vit_replication.training import loop as engine
from vit_replication.training import timing
from vit_replication.training.config import TrainConfig


def recipe(**changes) -> TrainConfig:
    """The comparisons' recipe on the synthetic data: fp32-sized defaults with ``changes``."""
    return TrainConfig(**dict(loader="device", randaugment=False) | changes)


def loaders(tiny_config) -> tuple[DeviceLoader, DeviceLoader]:
    """(train, test): 64 synthetic images in 4 batches of 16, and 32 in 2."""
    train = preload(SyntheticShapes(64, tiny_config.image_size, split="train"))
    test = preload(SyntheticShapes(32, tiny_config.image_size, split="test"))
    stats = (0.5,) * 3, (0.25,) * 3
    return DeviceLoader(*train, 16, True, stats), DeviceLoader(*test, 16, False, stats)


def test_same_seed_same_variant_trains_identically_and_reports(tiny_config, step_clock, monkeypatch):
    # the epochs are timed on an injected clock: 4 training steps of 0.5 s and 2 test batches of 0.125 s an epoch
    monkeypatch.setattr(engine, "time", SimpleNamespace(perf_counter=step_clock))
    runs = [train_variant("plain", lambda: step_clock.hook(ViT(tiny_config)), loaders(tiny_config),
                          recipe(epochs=2, lr=1e-3), torch.device("cpu")) for _ in range(2)]
    assert runs[0]["history"]["train_loss"] == runs[1]["history"]["train_loss"]
    assert runs[0]["history"]["test_acc"] == runs[1]["history"]["test_acc"]
    assert runs[0]["parameters"] == sum(p.numel() for p in runs[0]["model"].parameters())
    assert runs[0]["history"]["epoch"] == [1, 2] and runs[0]["history"]["epoch_time"] == [2.25, 2.25]
    assert runs[0]["train_images_per_s"] == 2 * 64 / 4.5  # training images over the epochs' seconds


def test_different_seed_changes_the_run(tiny_config):
    a, b = (train_variant("v", lambda: ViT(tiny_config), loaders(tiny_config),
                          recipe(epochs=1, seed=s), torch.device("cpu"), log=False) for s in (0, 1))
    assert a["history"]["train_loss"] != b["history"]["train_loss"]


def test_inference_throughput_is_images_per_timed_second(tiny_config, step_clock, monkeypatch):
    monkeypatch.setattr(compare, "seconds_per_step", partial(timing.seconds_per_step, clock=step_clock))
    model = step_clock.hook(ViT(tiny_config).train())  # inference_throughput puts it in eval mode: 0.125 s a pass
    grad_enabled = []
    model.register_forward_hook(lambda *_: grad_enabled.append(torch.is_grad_enabled()))
    assert inference_throughput(model, torch.randn(4, 3, 16, 16), repeats=2) == 4 / 0.125  # warm-up not timed
    assert not model.training and grad_enabled == [False] * 3  # inference: no autograd graph is built


def test_train_seeds_runs_each_seed_once_with_one_line_each(tiny_config, capsys):
    from vit_replication.analysis.compare import train_seeds

    runs = train_seeds("plain", lambda: ViT(tiny_config), loaders(tiny_config),
                       recipe(epochs=2, eval_every=2), torch.device("cpu"), seeds=(0, 1))
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [r["seed"] for r in runs] == [0, 1] and len(lines) == 2 and lines[1].startswith("plain")
    assert "epoch" not in captured.err  # nor a progress bar (the recipe asks for bars: progress=True)
    assert f"seed 1: {runs[1]['test_acc']:.2%}" in lines[1]
    assert runs[0]["history"]["test_acc"][0] is None  # evaluated only at the end
    single = train_variant("plain", lambda: ViT(tiny_config), loaders(tiny_config),
                           recipe(epochs=2, eval_every=2, seed=1), torch.device("cpu"), log=False)
    assert single["history"]["train_loss"] == runs[1]["history"]["train_loss"]  # the same as a single run


def test_train_variant_follows_the_recipe_s_phases(tiny_config):
    # 4 epochs of 4 steps, the first 40 % of the steps at 8x8 pixels: steps 0-6 (p = step / 16 < 0.4), into the
    # second epoch; patch dropout 0.5 throughout
    seen = []

    def build():
        model = ViT(tiny_config)
        model.register_forward_pre_hook(lambda m, args: seen.append(
            (args[0].shape[-1], m.embedding.patch_dropout.p)) if m.training else None)
        return model

    run = train_variant("phases", build, loaders(tiny_config),
                        recipe(epochs=4, low_res_size=8, low_res_fraction=0.4, patch_dropout=0.5, drop_path=0.2,
                               attention="explicit"), torch.device("cpu"), log=False)
    assert [size for size, _ in seen] == [8] * 7 + [16] * 9 and {p for _, p in seen} == {0.5}
    assert run["history"]["low_res_steps"] == [4, 3, 0, 0] and run["history"]["steps"] == [4] * 4
    assert run["model"].runtime.drop_path == 0.2 and run["model"].runtime.dynamic_image_size
    assert run["model"].runtime.attention == "explicit"  # the model's own is "sdpa"
    assert not any(block.attention.use_sdpa for block in run["model"].blocks())


@pytest.mark.parametrize("variant", ["plain", "realformer", "width_varying"])
def test_build_for_starts_every_variant_from_the_recipe_s_initial_weights(tiny_config, variant):
    from vit_replication.training.mimetic import sincos_position_embedding
    from vit_replication.training.variant import build_for
    from vit_replication.variants.realformer import RealFormerViT
    from vit_replication.variants.width_varying import WidthVaryingConfig, WidthVaryingViT

    build = {"plain": lambda: ViT(tiny_config), "realformer": lambda: RealFormerViT(tiny_config),
             "width_varying": lambda: WidthVaryingViT(WidthVaryingConfig(
                 image_size=tiny_config.image_size, patch_size=tiny_config.patch_size, num_classes=10,
                 stage_dims=(16, 32), stage_depths=(1, 1), head_dim=8))}[variant]
    timm, mimetic = (build_for(build, recipe(init=init), torch.device("cpu")) for init in ("timm", "mimetic"))
    grid = tiny_config.image_size // tiny_config.patch_size
    position = mimetic.embedding.position_embedding[0, 1:]
    torch.testing.assert_close(position, sincos_position_embedding(grid, position.shape[-1]))
    assert not torch.equal(timm.embedding.position_embedding[0, 1:], position)
    for block in mimetic.blocks():  # W_v^T U_msa^T is -0.4 I plus noise: its diagonal is negative
        value_out = block.attention.qkv.weight[2 * block.attention.hidden_dim:].T @ block.attention.proj.weight.T
        assert (value_out.diagonal() < 0).all()


def test_train_variant_refuses_what_it_would_not_apply(tiny_config):
    with pytest.raises(ValueError, match="does not apply mixup, cutmix"):
        train_variant("v", lambda: ViT(tiny_config), loaders(tiny_config), recipe(mixup=0.8, cutmix=1.0),
                      torch.device("cpu"))


def test_mean_std_and_difference_against_statistics():
    import statistics

    from vit_replication.analysis.compare import describe_difference, difference, mean_std, seeds_table

    values = [0.61, 0.64, 0.58]
    assert mean_std(values) == (statistics.mean(values), statistics.stdev(values))
    assert mean_std([0.5]) == (0.5, 0.0)
    a = [{"test_acc": v, "parameters": 10, "history": {"epoch_time": [1.0]}} for v in values]
    b = [dict(r, test_acc=r["test_acc"] + 0.05) for r in a]
    delta, error = difference(a, b)
    assert abs(delta - 0.05) < 1e-12
    assert abs(error - (2 * statistics.stdev(values) ** 2 / 3) ** 0.5) < 1e-12
    # +5 points with 3 points of spread on 3 seeds a side: t = 2.04 on 4 degrees of freedom, p = 0.111
    line = describe_difference("a", a, "b", b)
    assert "+5.00 ± 2.45 points (mean ± standard error) over 3 and 3 seeds; Welch's t-test p = 0.111" in line
    assert "no difference detectable" in line
    far = [dict(r, test_acc=r["test_acc"] + 0.10) for r in a]  # t = 4.08: p = 0.015
    assert "p = 0.015" in describe_difference("a", a, "c", far) and "unlikely to be seed noise (p < 0.05)" in \
        describe_difference("a", a, "c", far)
    table = seeds_table({"a": a, "b": b})
    assert "61.00 ± 3.00" in table and "66.00 ± 3.00" in table and "61.00 64.00 58.00" in table


def test_plot_seeds_draws_a_point_per_seed():
    import matplotlib

    matplotlib.use("Agg")
    from vit_replication.analysis.visualize import plot_seeds

    runs = {"a": [{"test_acc": v} for v in (0.5, 0.6, 0.7)], "b": [{"test_acc": 0.4}]}
    fig = plot_seeds(runs)
    from matplotlib.collections import PathCollection

    dots = [c.get_offsets().shape[0] for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    assert dots == [3, 1]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b"]


def test_expected_seconds_times_each_resolution_and_counts_the_recipe_s_epochs(tiny_config, step_clock, monkeypatch):
    # on the injected clock a training step takes 0.5 s and a test batch 0.125 s, at any image size
    monkeypatch.setattr(compare, "seconds_per_step", partial(timing.seconds_per_step, clock=step_clock))
    train_loader, test_loader = loaders(tiny_config)  # 4 training steps and 2 test batches an epoch
    config = recipe(epochs=5, low_res_size=8, low_res_fraction=0.6, eval_every=2)  # 12 steps at 8x8, then 8
    sizes = []

    def build():
        model = step_clock.hook(ViT(tiny_config))
        model.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[-1]) if m.training else None)
        return model

    seconds = compare.expected_seconds(build, (train_loader, test_loader), config, torch.device("cpu"))
    # 20 steps of 0.5 s, and evaluations of the 2 test batches after epochs 2, 4 and the last
    assert seconds == 0.5 * 4 * 5 + 3 * 0.125 * 2
    assert sizes == [8] * 4 + [16] * 4  # each size timed: a warm-up step and 3 timed steps
    assert train_loader.image_size is None  # the training loader is left at the model's size
    line = compare.describe_plan({"plain": 120.0, "other": 180.0}, (0, 1, 2), 5)
    assert line == ("6 runs (2 variants x 3 seeds) of 5 epochs; expected minutes a run: plain 2.0, other 3.0; "
                    "about 15 minutes in all on this machine")
