from functools import partial
from types import SimpleNamespace

import torch

from vit_replication import compare, engine, timing
from vit_replication.augment import DeviceLoader, preload
from vit_replication.compare import inference_throughput, summary_table, train_variant
from vit_replication.model import ViT
from vit_replication.synthetic import SyntheticShapes


def loaders(tiny_config):
    train = preload(SyntheticShapes(64, tiny_config.image_size, split="train"))
    test = preload(SyntheticShapes(32, tiny_config.image_size, split="test"))
    stats = {"mean": (0.5,) * 3, "std": (0.25,) * 3}
    return DeviceLoader(*train, 16, True, **stats), DeviceLoader(*test, 16, False, **stats)


def test_same_seed_same_variant_trains_identically_and_reports(tiny_config, step_clock, monkeypatch):
    # the epochs are timed on an injected clock: 4 training steps of 0.5 s and 2 test batches of 0.125 s an epoch
    monkeypatch.setattr(engine, "time", SimpleNamespace(perf_counter=step_clock))
    runs = [train_variant("plain", lambda: step_clock.hook(ViT(tiny_config)), *loaders(tiny_config), epochs=2,
                          lr=1e-3, device=torch.device("cpu"), progress=False) for _ in range(2)]
    assert runs[0]["history"]["train_loss"] == runs[1]["history"]["train_loss"]
    assert runs[0]["history"]["test_acc"] == runs[1]["history"]["test_acc"]
    assert runs[0]["parameters"] == sum(p.numel() for p in runs[0]["model"].parameters())
    assert runs[0]["history"]["epoch"] == [1, 2] and runs[0]["history"]["epoch_time"] == [2.25, 2.25]
    assert runs[0]["train_images_per_s"] == 2 * 64 / 4.5  # training images over the epochs' seconds
    table = summary_table(runs)
    assert table.count("plain") == 2 and f"{runs[0]['parameters']:,}" in table


def test_different_seed_changes_the_run(tiny_config):
    a, b = (train_variant("v", lambda: ViT(tiny_config), *loaders(tiny_config), epochs=1, lr=1e-3,
                          device=torch.device("cpu"), seed=s, progress=False) for s in (0, 1))
    assert a["history"]["train_loss"] != b["history"]["train_loss"]


def test_inference_throughput_is_images_per_timed_second(tiny_config, step_clock, monkeypatch):
    monkeypatch.setattr(compare, "seconds_per_step", partial(timing.seconds_per_step, clock=step_clock))
    model = step_clock.hook(ViT(tiny_config).train())  # inference_throughput puts it in eval mode: 0.125 s a pass
    assert inference_throughput(model, torch.randn(4, 3, 16, 16), repeats=2) == 4 / 0.125  # warm-up not timed


def test_train_seeds_runs_each_seed_once_with_one_line_each(tiny_config, capsys):
    from vit_replication.compare import train_seeds

    runs = train_seeds("plain", lambda: ViT(tiny_config), *loaders(tiny_config), epochs=2, lr=1e-3,
                       device=torch.device("cpu"), seeds=(0, 1), eval_every=2)
    lines = capsys.readouterr().out.splitlines()
    assert [r["seed"] for r in runs] == [0, 1] and len(lines) == 2 and lines[1].startswith("plain")
    assert f"seed 1: {runs[1]['test_acc']:.2%}" in lines[1]
    assert runs[0]["history"]["test_acc"][0] is None  # evaluated only at the end
    single = train_variant("plain", lambda: ViT(tiny_config), *loaders(tiny_config), epochs=2, lr=1e-3,
                           device=torch.device("cpu"), seed=1, progress=False, log=False, eval_every=2)
    assert single["history"]["train_loss"] == runs[1]["history"]["train_loss"]  # the same as a single run


def test_mean_std_and_difference_against_statistics():
    import statistics

    from vit_replication.compare import describe_difference, difference, mean_std, seeds_table

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
    from vit_replication.visualize import plot_seeds

    runs = {"a": [{"test_acc": v} for v in (0.5, 0.6, 0.7)], "b": [{"test_acc": 0.4}]}
    fig = plot_seeds(runs)
    from matplotlib.collections import PathCollection

    dots = [c.get_offsets().shape[0] for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    assert dots == [3, 1]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b"]
