"""The run's settings (``training.config.TrainConfig``), how the model runs in a recipe, the recipe's phases by
progress, and the statistics of a few seeds."""

import math
import re
import statistics

import pytest
import torch

from vit_replication import train
from vit_replication.analysis.stats import mean_std, regularized_beta, t_two_sided_p, welch_t_test
from vit_replication.data.augment import DeviceLoader
from vit_replication.model import ViT, count_parameters
from vit_replication.model.vit import Runtime
from vit_replication.training.config import (
    DROP_PATH,
    PRESETS,
    ConfigError,
    TrainConfig,
    model_config,
    model_runtime,
    preset,
)
from vit_replication.training.loop import Run, set_phase


@pytest.mark.parametrize("changes, field, message", [
    (dict(batch_size=0), "batch_size", "batch_size must be at least 1, got 0"),
    (dict(lr=0.0), "lr", "lr must be > 0, got 0.0"),
    (dict(patch_dropout=1.0), "patch_dropout", "patch_dropout must be in [0, 1), got 1.0"),
    (dict(time_budget=0.0), "time_budget", "time_budget must be > 0 seconds, got 0"),
    (dict(eval_every=0), "eval_every", "eval_every must be at least 1, got 0"),
    (dict(low_res_fraction=-0.1), "low_res_fraction", "low_res_fraction must be in [0, 1], got -0.1"),
    (dict(mixing_fraction=1.5), "mixing_fraction", "mixing_fraction must be in [0, 1], got 1.5"),
    (dict(decay="step"), "decay", "decay must be one of cosine, linear, wsd, got 'step'"),
    (dict(optimizer="sgd"), "optimizer", "optimizer must be one of adamw, muon, got 'sgd'"),
    (dict(model="vit_nothing"), "model", "model must be one of"),
    (dict(low_res_size=16), "low_res_size", "low_res_size needs loader device"),
])
def test_a_value_that_cannot_run_is_refused_naming_its_field(changes, field, message):
    with pytest.raises(ConfigError) as error:
        TrainConfig(**changes)
    assert str(error.value).startswith(message) and field in error.value.names
    flag = "--" + field.replace("_", "-")
    assert error.value.with_flags().startswith(flag + " ")  # the command line names its flag


def test_with_flags_renames_whole_field_names_only():
    error = ConfigError("low_res_size needs loader device; loader_x and low_res_size_2 stay", "low_res_size", "loader")
    assert error.with_flags() == "--low-res-size needs --loader device; loader_x and low_res_size_2 stay"


def test_presets_are_overrides_of_the_defaults_and_the_command_line_parses_into_the_same_object():
    config = preset("cifar10-cpu", lr=1e-3)
    assert config == TrainConfig(**PRESETS["cifar10-cpu"] | {"lr": 1e-3})
    assert config.model == "vit_cifar_cpu" and config.randaugment is False and config.lr == 1e-3
    assert train.parse_args(["--preset", "cifar10-cpu", "--lr", "1e-3"]) == config
    assert train.parse_args([]) == TrainConfig()
    assert train.given_options(["--lr", "0.5", "--no-progress"]) == {"lr": 0.5, "progress": False}
    with pytest.raises(ConfigError, match="unknown setting"):
        preset("cifar10-cpu", learning_rate=1.0)
    for removed in ("ema", "patch_dropout_fraction"):
        with pytest.raises(ConfigError, match=rf"unknown setting\(s\) {removed}$"):
            preset(None, **{removed: 0.5})
        with pytest.raises(TypeError):
            TrainConfig(**{removed: 0.5})
    with pytest.raises(ConfigError, match="preset must be one of"):
        preset("gpu-fast")


def test_a_presets_pooling_reaches_the_model_and_the_command_line_overrides_it():
    for name, pooled in (("short-cpu", lambda z: z[:, 1:].mean(1)), ("cifar10-cpu", lambda z: z[:, 0])):
        model = ViT(model_config(preset(name))).eval()  # short-cpu: the mean of the patch tokens; else the class token
        with torch.no_grad():
            z = model.forward_features(torch.randn(2, 3, 32, 32))
            torch.testing.assert_close(model.forward_head(z), model.head(model.norm(pooled(z))))
    assert model_config(train.parse_args(["--preset", "short-cpu", "--pool", "cls"])).pool == "cls"


def test_the_long_preset_is_the_150_minute_runs_command():
    # long-cpu is short-cpu on the D=96 model with MixUp/CutMix for the first 90 %
    measured = train.parse_args(["--preset", "short-cpu", "--hidden-dim", "96", "--num-layers", "6", "--num-heads", "3",
                                 "--mlp-dim", "384", "--mixup", "0.8", "--cutmix", "1.0", "--mixing-fraction", "0.9"])
    named = train.parse_args(["--preset", "long-cpu"])
    assert model_config(named) == model_config(measured)
    assert count_parameters(ViT(model_config(named))) == 683_242  # as the run's metrics.json counted
    same = {f: getattr(measured, f) for f in TrainConfig.__dataclass_fields__
            if f not in ("model", "hidden_dim", "num_layers", "num_heads", "mlp_dim")}
    assert {f: getattr(named, f) for f in same} == same


def test_every_field_of_the_settings_is_a_flag():
    for name in TrainConfig.__dataclass_fields__:
        flag = "--" + name.replace("_", "-")
        assert flag in train.parser().format_help(), flag
    assert not re.search(r"--ema\b|--patch-dropout-fraction", train.parser().format_help())  # removed settings


def test_model_config_is_the_named_config_with_the_fields_given():
    config = model_config(TrainConfig(model="vit_cifar_tiny", hidden_dim=48, pool="gap"), num_classes=7)
    assert (config.hidden_dim, config.pool, config.num_classes) == (48, "gap", 7)
    assert model_config(TrainConfig(model="vit_cifar_tiny")) == model_config(TrainConfig(model="vit_cifar_tiny",
                                                                                         hidden_dim=None))
    assert model_config(TrainConfig(model="vit_cifar_tiny")).hidden_dim != 48


def test_model_runtime_is_how_the_recipe_runs_the_model():
    assert DROP_PATH == {"vit_cifar": 0.1, "vit_s_cifar": 0.1}
    assert model_runtime(TrainConfig(), "sdpa") == Runtime("sdpa", 0.0, 0.1, False)  # vit_cifar's drop path
    assert model_runtime(TrainConfig(model="vit_cifar_tiny"), "explicit") == Runtime("explicit", 0.0, 0.0, False)
    assert model_runtime(TrainConfig(drop_path=0.0), "sdpa").drop_path == 0.0  # given: not the default
    short = model_runtime(preset("short-cpu"), "sdpa")  # a low-resolution phase needs other image sizes
    assert short == Runtime("sdpa", 0.25, 0.0, True)
    model = ViT(model_config(preset("quick-cpu")), short)
    assert model.runtime == short


def _run(tiny_config, **settings) -> Run:
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    loader = DeviceLoader(images, torch.arange(8) % 10, 4, True, ((0.5,) * 3, (0.25,) * 3))
    config = TrainConfig(loader="device", device="cpu", **settings)
    return Run.create(config, ViT(tiny_config, dynamic_image_size=True), (loader, loader), "cpu", num_classes=10)


def test_the_phases_follow_the_progress_of_the_run(tiny_config):
    run = _run(tiny_config, low_res_size=8, low_res_fraction=0.25, mixup=0.8, mixing_fraction=0.75)
    seen = [(set_phase(run, p), run.train_loader.image_size, run.mixing.active) for p in (0.0, 0.2, 0.25, 0.5, 0.75)]
    assert seen == [(True, 8, True), (True, 8, True), (False, None, True), (False, None, True),
                    (False, None, False)]
    images, labels = torch.randn(4, 3, 16, 16), torch.arange(4)
    out_images, out_labels = run.mixing(images, labels)  # switched off: the batch and hard labels pass unchanged
    assert out_images is images and out_labels is labels
    plain = _run(tiny_config)  # a single phase: full size, no mixing
    assert not set_phase(plain, 0.0) and plain.train_loader.image_size is None and plain.mixing is None


def test_welch_t_test_against_closed_forms():
    # Student's t with 1 degree of freedom is Cauchy, with 2 it has a closed form; 2.776 is t(0.975, 4)
    assert t_two_sided_p(3.0, 1) == pytest.approx(1 - 2 / math.pi * math.atan(3.0), rel=1e-12)
    assert t_two_sided_p(1.5, 2) == pytest.approx(1 - 1.5 / math.sqrt(2 + 1.5 ** 2), rel=1e-12)
    assert t_two_sided_p(2.776445, 4) == pytest.approx(0.05, abs=1e-6)
    assert regularized_beta(0.3, 2, 3) == pytest.approx(0.3483, rel=1e-12)  # a binomial tail: sum of 3 terms
    a, b = [0.30, 0.31, 0.29], [0.33, 0.34, 0.32]
    t, df, p = welch_t_test(a, b)
    se = math.sqrt(statistics.variance(a) / 3 + statistics.variance(b) / 3)
    assert t == pytest.approx(0.03 / se) and df == pytest.approx(4.0) and p == pytest.approx(t_two_sided_p(t, 4))
    assert 0.02 < p < 0.03  # 3 seeds a side, 3 points apart with 1 point of spread
    assert welch_t_test([0.5, 0.5], [0.5, 0.5])[2] == 1.0
    assert mean_std([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError, match="at least 2 values per group"):
        welch_t_test([0.5], [0.4, 0.6])


def test_mean_se_is_the_standard_deviation_over_the_root_of_the_count():
    from vit_replication.analysis.stats import mean_se

    assert mean_se([0.60, 0.62, 0.64]) == pytest.approx((0.62, 0.02 / 3 ** 0.5))
    assert mean_se([0.5]) == (0.5, 0.0)
