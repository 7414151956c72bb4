import importlib.util
import json
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vit_replication.analysis.flops import forward_flops, training_flops
from vit_replication.model import ViT, get_config
from vit_replication.training import timing
from vit_replication.training.config import model_config, preset


def load(name: str):
    """The module benchmarks/<name>.py (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


throughput = load("throughput")


def test_benchmark_models_compute_the_same_function():
    """The models timed are the same architecture: same parameter count; ours == naive == channels-last."""
    import torch

    config = throughput.get_config("vit_cifar")
    models = throughput.build_models(config)
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    assert len(set(counts.values())) == 1, counts
    x = torch.randn(2, 3, 32, 32)
    for other in ("naive", "channels_last"):
        torch.testing.assert_close(models["ours"].eval()(x), models[other].eval()(x), atol=1e-5, rtol=1e-5)
    assert models["channels_last"].embedding.patch_embedding.proj.weight.is_contiguous(
        memory_format=torch.channels_last)


# seconds a (training, inference) forward pass of each benchmarked model takes on the injected clock
STEP_SECONDS = {"ours": (1.0, 0.5), "naive": (2.0, 1.0), "channels_last": (1.0, 0.25), "torchvision": (4.0, 0.5)}


def test_benchmark_reports_rates_ratios_and_tflops_of_the_timed_steps(tmp_path, step_clock, monkeypatch):
    build_models = throughput.build_models
    monkeypatch.setattr(throughput, "build_models", lambda config: {
        name: step_clock.hook(model, *STEP_SECONDS[name]) for name, model in build_models(config).items()})
    monkeypatch.setattr(throughput, "seconds_per_step", partial(timing.seconds_per_step, clock=step_clock))
    results = throughput.main(["--device", "cpu", "--configs", "vit_cifar", "--batch-size", "4", "--steps", "2",
                               "--warmup", "1", "--precision", "fp32", "--out", str(tmp_path / "b.json")])
    speeds = results[0]["images_per_s"]  # batch of 4 / seconds a step
    assert speeds == {name: {"train": 4 / train, "infer": 4 / infer} for name, (train, infer) in STEP_SECONDS.items()}
    assert results[0]["ratios"] == {"train_vs_torchvision": 4.0, "train_vs_naive": 2.0, "infer_vs_torchvision": 1.0,
                                    "infer_vs_naive": 2.0, "channels_last_train": 1.0, "channels_last_infer": 2.0}
    config = throughput.get_config("vit_cifar")
    assert forward_flops(config) == 2 * 218_240_512
    assert results[0]["ours_tflops_per_s"] == {"train": 4.0 * training_flops(config, 1) / 1e12,
                                               "infer": 8.0 * forward_flops(config) / 1e12}
    assert json.loads((tmp_path / "b.json").read_text())["results"] == results


data_pipeline = load("data_pipeline")


def test_data_pipeline_benchmark_times_every_pipeline(tmp_path, monkeypatch):
    # an injected clock on which every timed stretch (2 batches of 16 after a warm-up batch; a preload) takes 0.5 s
    reads = iter(0.5 * i for i in range(100))
    monkeypatch.setattr(data_pipeline, "time", SimpleNamespace(perf_counter=lambda: next(reads)))
    results = data_pipeline.main(["--train-size", "96", "--batch-size", "16", "--batches", "2", "--workers", "0",
                                  "--device", "cpu", "--out", str(tmp_path / "p.json")])
    assert results["images_per_s"] == {"dataloader_0_workers": 64.0, "device_loader": 64.0,
                                       "device_loader_mixup_cutmix": 64.0}  # 32 images / 0.5 s
    assert results["preload_seconds_0_workers"] == 0.5
    assert results["train_images"] == 96 and json.loads((tmp_path / "p.json").read_text()) == results


profile_step = load("profile_step")


def test_profiler_groups_operators_and_its_shares_add_up(tmp_path):
    assert [profile_step.group_of(name) for name in ("aten::addmm", "aten::bmm", "aten::_softmax",
                                                     "aten::native_layer_norm", "aten::gelu_backward",
                                                     "aten::_foreach_lerp_", "aten::reflection_pad2d",
                                                     "aten::add")] == [
        "matrix products", "matrix products", "softmax", "layer norm", "gelu", "optimizer", "data", "other"]
    result = profile_step.main(["--model", "vit_cifar_tiny", "--batch-size", "8", "--steps", "1", "--image-size",
                                "16", "--precision", "fp32", "--out", str(tmp_path / "p.json")])
    shares = result["share_of_time"]
    assert abs(sum(shares.values()) - 1) < 1e-9 and shares["matrix products"] > 0 and shares["layer norm"] > 0
    assert result["images_per_s"] == 8 / result["seconds_per_step"]
    assert result["step_tflops"] == training_flops(profile_step.CONFIGS["vit_cifar_tiny"], 8, 16) / \
        result["seconds_per_step"] / 1e12
    assert json.loads((tmp_path / "p.json").read_text())["model"] == "vit_cifar_tiny"
    muon = profile_step.main(["--model", "vit_cifar_tiny", "--batch-size", "8", "--steps", "1", "--image-size", "16",
                              "--precision", "fp32", "--optimizer", "muon"])
    assert muon["optimizer"] == "muon" and result["optimizer"] == "adamw"


scratch_curve = load("scratch_curve")


def test_scratch_curve_stores_one_curve_per_seed_of_the_shipped_architecture(tmp_path):
    result = scratch_curve.main(["--steps", "2", "--seeds", "0", "1", "--batch-size", "16", "--train-size", "16",
                                 "--test-size", "10", "--precision", "fp32", "--out", str(tmp_path / "c.json")])
    assert result["steps"] == [1, 2] and len(result["test_acc"]) == 2 and len(result["seconds"]) == 2
    assert all(len(accs) == 2 for accs in result["test_acc"])  # evaluated after each epoch
    assert result["model"]["hidden_dim"] == json.loads(
        (Path(__file__).parents[1] / "assets" / "cifar10_vit" / "metrics.json").read_text())["config"]["hidden_dim"]
    assert result["recipe"]["low_res_size"] == 16 and result["recipe"]["patch_dropout"] == 0.25  # main job's
    assert json.loads((tmp_path / "c.json").read_text()) == result


def test_compute_table_counts_training_as_three_passes_of_the_forward_flops_torch_counts(capsys):
    compute = load("compute_table")
    rows = {r["name"]: r for r in compute.main()}
    # the UvA tutorial's ViT (D=256, L=6, D_mlp=512, 4x4 patches on 32x32): torch's own count of one forward pass,
    # x 3 passes, x 45,000 images x 180 epochs
    model = ViT(get_config("vit_cifar", hidden_dim=256, num_layers=6, num_heads=8, mlp_dim=512))
    model.configure(attention="explicit")  # q k^T and A v as matrix products, which the counter sees (not CPU SDPA)
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, 32, 32))
    uva = rows["UvA deep-learning tutorial 15"]["pflop"] * 1e15
    assert abs(uva - 3 * counter.get_total_flops() * 45_000 * 180) < 1e-6 * uva
    # short-cpu for 121 epochs as loop.fit trains it: 195 full batches of 256 an epoch, 23,595 steps, the first 85 %
    # of them (20,056) at 16x16, patch dropout 0.25 throughout
    architecture = model_config(preset("short-cpu"))
    low, full = (forward_flops(architecture, size, 0.25) for size in (16, None))
    expected = 3 * 256 * (20_056 * low + 3_539 * full)
    assert rows["this project, 30 min"]["pflop"] * 1e15 == pytest.approx(expected, rel=1e-12)
    printed = capsys.readouterr().out
    assert all(name in printed for name in rows)  # the printed table names every row


def test_recipes_reports_each_recipe_s_accuracy_ratio_and_training_images_per_second(tmp_path, monkeypatch):
    """The runs are stubbed: each writes a history of 9 steps (the last epoch cut short by the budget) and reports
    3 s of training; the benchmark's bookkeeping is what is checked."""
    recipes = load("recipes")
    ran = []

    def stub(accuracy):
        def run(settings, command):
            ran.append(settings)
            Path(settings.out).mkdir(parents=True)
            (Path(settings.out) / "history.json").write_text(json.dumps({"steps": [4, 4, 1]}))
            return None, {"test_acc": accuracy, "epochs": 3, "wall_seconds_this_run": 10.0,
                          "train_seconds_all_epochs": 3.0}
        return run

    monkeypatch.setattr(recipes.train, "run", stub(0.5))
    monkeypatch.setattr(recipes, "train_cnn", stub(0.75))
    results = recipes.main(["--recipes", "quick-cpu", "cnn", "small=--preset quick-cpu --hidden-dim 32",
                            "--time-budget", "60", "--train-size", "512", "--out", str(tmp_path), "--seed", "2"])
    assert [r["recipe"] for r in results] == ["quick-cpu", "cnn", "small"]
    assert [r["acc_ratio_to_baseline"] for r in results] == [1.0, 1.5, 1.0]
    assert [r["train_images_per_s"] for r in results] == [9 * 256 / 3.0] * 3  # 9 steps of 256 images in 3 s
    assert all(s.time_budget == 60 and s.train_size == 512 and s.seed == 2 for s in ran)
    assert ran[2].hidden_dim == 32 and ran[2].model == "vit_cifar_tiny" and ran[2].out == str(tmp_path / "small")
    assert json.loads((tmp_path / "recipes.json").read_text()) == results


def test_recipe_ablation_climbs_from_the_paper_preset_to_short_cpu_one_change_a_rung(tmp_path, monkeypatch):
    ablation = load("recipe_ablation")
    settings = {}
    assert ablation.LADDER[0][1] == {}  # the paper's recipe itself
    for _, change in ablation.LADDER[1:]:
        assert len(change) == 1 or set(change) == {"low_res_size", "low_res_fraction"}  # one idea a rung
        settings |= change
    assert preset("paper", **settings) == preset("short-cpu")  # the top of the ladder is the recipe itself
    monkeypatch.setattr(ablation, "choose_precision",
                        lambda device: SimpleNamespace(precision="fp32", attention="sdpa"))  # no timing here
    out = tmp_path / "ablation.json"
    result = ablation.main(["--train-size", "64", "--test-size", "32", "--epochs", "1", "--batch-size", "16",
                            "--seeds", "0", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == result and result["epochs"] == 1 and result["seeds"] == [0, 1]
    assert [rung["change"] for rung in result["rungs"]] == [name for name, _ in ablation.LADDER]
    for rung in result["rungs"]:
        assert len(rung["test_acc"]) == 2 and all(0 <= a <= 1 for a in rung["test_acc"])
        assert len(rung["seconds"]) == 2 and all(s > 0 for s in rung["seconds"])
    assert result["rungs"][0]["test_acc"] != result["rungs"][1]["test_acc"]  # the change changed the run
    assert "64 training and 32 test images" in result["dataset"] and result["command"].startswith(
        "python benchmarks/recipe_ablation.py --train-size 64")
