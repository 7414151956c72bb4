import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("throughput", Path(__file__).parents[1] / "benchmarks" / "throughput.py")
throughput = importlib.util.module_from_spec(spec)
spec.loader.exec_module(throughput)


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


def test_benchmark_runs_and_reports_ratios(tmp_path):
    results = throughput.main(["--device", "cpu", "--configs", "vit_cifar", "--batch-size", "4", "--steps", "1",
                               "--warmup", "1", "--out", str(tmp_path / "b.json")])
    ratios = results[0]["ratios"]
    assert set(ratios) == {"train_vs_torchvision", "train_vs_naive", "infer_vs_torchvision", "infer_vs_naive",
                           "channels_last_train", "channels_last_infer"}
    speed = results[0]["images_per_s"]["ours"]
    assert results[0]["ours_tflops_per_s"]["infer"] == speed["infer"] * 2 * 218_240_512 / 1e12
    assert all(r > 0 for r in ratios.values())
    assert (tmp_path / "b.json").stat().st_size > 0


pipeline_spec = importlib.util.spec_from_file_location(
    "data_pipeline", Path(__file__).parents[1] / "benchmarks" / "data_pipeline.py")
data_pipeline = importlib.util.module_from_spec(pipeline_spec)
pipeline_spec.loader.exec_module(data_pipeline)


def test_data_pipeline_benchmark_times_every_pipeline(tmp_path):
    results = data_pipeline.main(["--train-size", "96", "--batch-size", "16", "--batches", "2", "--workers", "0",
                                  "--device", "cpu", "--out", str(tmp_path / "p.json")])
    assert set(results["images_per_s"]) == {"dataloader_0_workers", "device_loader", "device_loader_mixup_cutmix"}
    assert all(rate > 0 for rate in results["images_per_s"].values())
    assert results["train_images"] == 96 and (tmp_path / "p.json").stat().st_size > 0
