"""The schedule (``training.schedule``: the learning rate and progress p of a run) and the time budget
(``training.budget.progress_for``)."""

import math

import pytest
import torch

from vit_replication.data import build_transform, make_loader, synthetic_sets
from vit_replication.model import ViT
from vit_replication.training import budget
from vit_replication.training.config import ConfigError, TrainConfig
from vit_replication.training.loop import Run, fit
from vit_replication.training.schedule import DECAYS, WSD_COOLDOWN, Progress, lr_factor


def test_warm_up_is_linear_in_the_step_whatever_p_and_the_decay():
    for decay in DECAYS:
        for step in range(5):
            for p in (0.0, 0.5, 0.99):
                assert lr_factor(p, step, 5, 0.5, decay) == pytest.approx((step + 1) / 5)
    assert lr_factor(0.0, 5, 5, 0.0, "cosine") == 1.0  # the first step after the warm-up is at the peak


@pytest.mark.parametrize("p, cosine, linear", [
    (0.2, 1.0, 1.0),
    (0.4, 0.5 * (1 + math.cos(math.pi / 4)), 0.75),
    (0.6, 0.5, 0.5),
    (0.9, 0.5 * (1 + math.cos(7 * math.pi / 8)), 0.125),
    (1.0, 0.0, 0.0),
])
def test_cosine_and_linear_fall_from_the_end_of_the_warm_up_to_zero_at_p_1(p, cosine, linear):
    # the warm-up (2 steps) ended at p = 0.2: q = (p - 0.2) / 0.8 of the decay done
    assert lr_factor(p, 10, 2, 0.2, "cosine") == pytest.approx(cosine, abs=1e-12)
    assert lr_factor(p, 10, 2, 0.2, "linear") == pytest.approx(linear, abs=1e-12)


def test_wsd_holds_the_peak_until_the_last_fifth_then_falls_along_a_line_to_zero():
    assert WSD_COOLDOWN == 0.2 and DECAYS == ("cosine", "linear", "wsd")
    for p in (0.0, 0.3, 0.5, 0.79):
        assert lr_factor(p, 10, 2, 0.2, "wsd") == 1.0
    assert lr_factor(0.8, 10, 2, 0.2, "wsd") == pytest.approx(1.0)  # (1 - 0.8) / 0.2 in floating point
    for p, expected in ((0.85, 0.75), (0.9, 0.5), (0.95, 0.25), (1.0, 0.0)):
        assert lr_factor(p, 10, 2, 0.2, "wsd") == pytest.approx(expected, abs=1e-12)
        assert lr_factor(p, 10, 2, 0.6, "wsd") == pytest.approx(expected, abs=1e-12)  # not moved by the warm-up


def test_progress_counts_steps_exactly():
    progress = Progress(steps=8)
    assert [progress(step) for step in (0, 2, 6, 8)] == [0.0, 0.25, 0.75, 1.0]
    assert progress.describe() == "8 steps"


def test_progress_counts_the_seconds_of_its_clock():
    readings = iter([10.0, 12.0, 15.0, 20.0])
    progress = Progress(seconds=10.0, clock=lambda: next(readings))  # started at 10 s
    assert progress(0) == pytest.approx(0.2) and progress(123) == pytest.approx(0.5)  # the step does not matter
    assert progress.elapsed() == 10.0
    assert progress.describe() == "10 s of training"


def test_progress_start_counts_from_now_after_the_seconds_already_spent():
    readings = iter([0.0, 100.0, 103.0, 104.0])
    progress = Progress(seconds=10.0, clock=lambda: next(readings))
    progress.start(4.0)  # at 100 s, a resumed run that had spent 4 s
    assert progress(0) == pytest.approx(0.7)
    progress.start()  # at 104 s: from zero
    assert progress.started == 104.0


def test_progress_on_a_step_clock_follows_the_models_forward_passes(tiny_config, step_clock):
    model = step_clock.hook(ViT(tiny_config))
    progress = Progress(seconds=2.0, clock=step_clock)
    images = torch.randn(2, 3, 16, 16)
    for expected in (0.25, 0.5):  # 0.5 s a training forward pass
        model.train()(images)
        assert progress(0) == expected
    with torch.no_grad():
        model.eval()(images)  # 0.125 s an evaluation one
    assert progress(0) == 0.5625 and progress.elapsed() == 1.125


@pytest.mark.parametrize("kwargs", [{}, dict(steps=4, seconds=1.0), dict(steps=0), dict(steps=-3),
                                    dict(seconds=0.0), dict(seconds=-1.0)])
def test_progress_needs_exactly_one_positive_length(kwargs):
    with pytest.raises(ValueError, match="Progress needs steps or seconds"):
        Progress(**kwargs)


def _run(tiny_config, **settings) -> Run:
    """A quiet run of a tiny ViT on 48 synthetic training images (3 batches of 16) and 32 test ones (2 batches)."""
    train, test = synthetic_sets(16, build_transform(16, train=True), build_transform(16, train=False),
                                 sizes=(48, 32))
    config = TrainConfig(**dict(epochs=3, batch_size=16, warmup_epochs=1.0, progress=False, device="cpu") | settings)
    run = Run.create(config, ViT(tiny_config), (make_loader(train, 16, True), make_loader(test, 16, False)), "cpu")
    run.log = False
    return run


C = math.cos(math.pi / 6)


@pytest.mark.parametrize("decay, factors", [
    # 9 steps, a warm-up of 3 ending at p = 1/3; then the decay over the 6 steps left: q = (step - 3) / 6
    ("cosine", [1 / 3, 2 / 3, 1, 1, (1 + C) / 2, 0.75, 0.5, 0.25, (1 - C) / 2]),
    ("linear", [1 / 3, 2 / 3, 1, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6]),
    ("wsd", [1 / 3, 2 / 3, 1, 1, 1, 1, 1, 1, 5 / 9]),  # the peak held while (1 - step / 9) / 0.2 >= 1
])
def test_fit_sets_the_learning_rate_of_every_group_at_every_step(tiny_config, decay, factors):
    run = _run(tiny_config, lr=2e-3, decay=decay)
    seen = []
    run.model.register_forward_pre_hook(
        lambda module, args: seen.append([g["lr"] for g in run.optimizer.param_groups]) if module.training else None)
    history = fit(run, Progress(steps=run.steps()))
    assert run.steps() == 9 and len(seen) == 9
    assert all(len(set(lrs)) == 1 for lrs in seen)  # every param group alike
    assert [lrs[0] for lrs in seen] == pytest.approx([2e-3 * f for f in factors], abs=1e-15)
    assert history["lr"] == pytest.approx([2e-3 * factors[i] for i in (2, 5, 8)], abs=1e-15)  # each epoch's last


def test_progress_for_epochs_is_the_steps_of_the_epochs(tiny_config):
    run = _run(tiny_config, epochs=4)
    progress = budget.progress_for(run, started=0.0)
    assert progress.steps == 4 * len(run.train_loader) == 12 and progress.seconds is None
    assert progress(6) == 0.5


def test_progress_for_a_time_budget_leaves_time_for_the_final_evaluations_and_figures(tiny_config, step_clock,
                                                                                       monkeypatch):
    monkeypatch.setattr(budget, "FIGURES_SECONDS", 1.5)
    run = _run(tiny_config, time_budget=60.0)
    step_clock.hook(run.model)
    step_clock.now = 10.0  # the set-up took 10 s since started = 0
    progress = budget.progress_for(run, started=0.0, clock=step_clock)
    # the untrained model is evaluated once: 2 batches of 0.125 s; spent 10.25 s, 2 evaluations and the figures
    assert step_clock.now == 10.25
    assert progress.steps is None and progress.seconds == 60.0 - 10.25 - 2 * 0.25 - 1.5
    assert progress.clock is step_clock and progress(0) == 0.0
    step_clock.now += progress.seconds / 2
    assert progress(0) == 0.5


def test_a_time_budget_that_leaves_nothing_for_training_names_time_budget(tiny_config, step_clock, monkeypatch):
    monkeypatch.setattr(budget, "FIGURES_SECONDS", 1.5)
    run = _run(tiny_config, time_budget=12.0)  # 10.25 s spent, 0.5 s of evaluations, 1.5 s of figures: -0.25 s
    step_clock.hook(run.model)
    step_clock.now = 10.0
    with pytest.raises(ConfigError, match="time_budget 12 s leaves no time for training") as error:
        budget.progress_for(run, started=0.0, clock=step_clock)
    assert "time_budget" in error.value.names and error.value.with_flags().startswith("--time-budget 12 s")


def test_a_resumed_run_keeps_the_budget_of_its_first_part_without_evaluating(tiny_config, step_clock):
    run = _run(tiny_config, time_budget=60.0)
    step_clock.hook(run.model)
    progress = budget.progress_for(run, started=0.0, resume={"budget_seconds": 33.0}, clock=step_clock)
    assert progress.seconds == 33.0 and step_clock.now == 0.0  # no evaluation was timed
    epochs = budget.progress_for(_run(tiny_config), started=0.0, resume={"budget_seconds": 33.0})
    assert epochs.steps == 9  # without time_budget: the epochs' steps
