"""--time-budget planning with injected step times and clocks: nothing here depends on how fast the machine is."""

import itertools
import time

import pytest
import torch

from vit_replication import budget
from vit_replication.budget import (
    EPOCH_MARGIN,
    PLANNING_SHARE,
    UNMEASURED_MARGIN,
    Plan,
    epochs_that_fit,
    nearest_alike,
    plan_epochs,
    replannable,
    replanned_epochs,
)
from vit_replication.errors import UserError
from vit_replication.model import ViT
from vit_replication.recipe import ConfigError, TrainConfig, length_free_epochs, trained_alike
from vit_replication.timing import seconds_per_step


class FakeLoader(list):
    """A loader of ``batches`` placeholder batches of ``batch_size`` images (only its length is read here)."""

    def __init__(self, batches: int, batch_size: int = 32):
        super().__init__([None] * batches)
        self.batch_size, self.image_size = batch_size, None


def test_timing_stops_once_its_share_of_seconds_is_spent_and_takes_the_median_step():
    # the clock is read at the start, then before, after and once more after each step; the 2nd step is a slow one
    readings = iter([0.0, 0.0, 1.0, 1.0, 1.0, 5.0, 5.0, 5.0, 6.0, 6.0, 6.0, 7.0, 7.0])
    steps = []
    seconds = seconds_per_step(steps.append, torch.device("cpu"), warmup=1, steps=10, max_seconds=7.0,
                               clock=lambda: next(readings))
    # warm-up, then one step at a time: 1, 4, 1 and 1 s; after the 4th step 7 s are spent, so the timing stops there
    assert steps == [1, 1, 1, 1, 1] and seconds == 1.0
    clock, steps = itertools.count(0.0, 2.0), []
    assert seconds_per_step(steps.append, torch.device("cpu"), 2, 10, clock=lambda: next(clock)) == 2.0 / 10
    assert steps == [2, 10]  # without a limit: all the steps in one go, their mean


@pytest.mark.parametrize("train_step, eval_step, save, spent, expected", [
    (1.0, 0.5, 0.0, 0.0, 3),    # (10 - 0.5 final evaluation) // (2 x 1 + 0.5 / 1 + 0) = 3
    (1.0, 0.5, 1.0, 0.0, 3),    # a save every 2 epochs adds 0.5 s an epoch: 9.5 // 3.0 = 3
    (0.25, 0.5, 0.0, 2.0, 7),   # 7.5 // 1.0
])
def test_epochs_that_fit_is_arithmetic_on_step_times(train_step, eval_step, save, spent, expected, monkeypatch):
    monkeypatch.setattr(budget, "FIGURES_SECONDS", 0.0)
    monkeypatch.setattr(budget, "EPOCH_MARGIN", 1.0)  # the arithmetic alone (the margin is tested below)
    assert epochs_that_fit(10, 2, 1, train_step, eval_step, save, spent, eval_every=1, save_every=2) == expected


def test_less_than_one_epoch_names_the_measured_step_and_what_to_lower(monkeypatch):
    monkeypatch.setattr(budget, "FIGURES_SECONDS", 0.0)
    with pytest.raises(ConfigError) as error:
        epochs_that_fit(10, 40, 1, 21.3, 0.5, 0.0, 2.0, batch_size=256, precision="bf16")
    message = str(error.value)  # the library speaks of parameters, the command line of its flags
    assert message.startswith("time_budget 10 s leaves 8 s for training, less than one epoch (about 1022.9 s: "
                              "a training step took 21.30 s, 12 images/s in bf16, 40 steps an epoch)")
    assert "lower train_size, batch_size" in message
    assert error.value.with_flags().startswith("--time-budget 10 s leaves")
    assert "lower --train-size, --batch-size or the model's size (--hidden-dim, --num-layers)" in \
        error.value.with_flags()


def planner(tmp_path, steps: dict, calls: list, **options):
    """plan_epochs on a tiny model with ``time_steps`` replaced: it returns ``steps[image_size]`` and records its
    keyword arguments."""
    def fake_time_steps(*args, **kwargs):
        calls.append({"image_size": args[1].image_size, **kwargs})
        return steps[args[1].image_size]

    model = ViT(image_size=16, patch_size=4, num_classes=10, hidden_dim=32, num_layers=1, num_heads=2, mlp_dim=64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    budget.time_steps, saved = fake_time_steps, budget.time_steps
    try:
        precision = options.pop("precision", "fp32")
        config = TrainConfig(out=str(tmp_path), loader="device", **options)
        return plan_epochs(model, FakeLoader(40, 256), FakeLoader(4), optimizer, None, config=config,
                           device=torch.device("cpu"), started=time.perf_counter(), precision=precision)
    finally:
        budget.time_steps = saved


def test_an_impossible_budget_fails_after_one_timed_step(tmp_path):
    calls = []
    with pytest.raises(UserError, match=r"time_budget 300 s leaves .* a training step took 21.00 s, 12 images/s "
                                        r"in bf16, 40 steps an epoch"):
        planner(tmp_path, {None: (21.0, 1.0)}, calls, time_budget=300, precision="bf16")
    assert [(c["steps"], c["warmup"], c["max_seconds"]) for c in calls] == [(1, 1, None)]  # one step, then the error
    assert not list(tmp_path.iterdir())  # nothing written


def test_planning_times_at_most_its_share_of_the_budget_at_each_resolution(tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "FIGURES_SECONDS", 0.0)
    calls = []
    plan = planner(tmp_path, {None: (1.0, 0.5), 8: (0.25, 0.0)}, calls, time_budget=1000, low_res_size=8,
                   low_res_fraction=0.5)
    share = PLANNING_SHARE * 1000 / 2
    assert [(c["image_size"], c["steps"], c["warmup"], c["max_seconds"], c["eval_steps"]) for c in calls] == [
        (None, 1, 1, None, 1), (8, 1, 1, None, 0), (None, 30, 1, share, 30), (8, 30, 1, share, 0)]
    # an epoch: 40 steps of 0.5 x 1.0 + 0.5 x 0.25 s (x EPOCH_MARGIN) and 4 evaluation batches of 0.5 s; the final
    # evaluation takes 2 s and the start-up and checkpoint timing about 0 s
    assert EPOCH_MARGIN == 1.2 and plan.epochs == (1000 - 2) // (40 * 0.625 * 1.2 + 2) == 31
    assert plan.train_steps == {None: 1.0, 8: 0.25} and plan.eval_step == 0.5  # what the re-plan scales


def test_the_replan_scales_the_timed_steps_by_the_measured_first_epoch(monkeypatch):
    monkeypatch.setattr(budget, "FIGURES_SECONDS", 0.0)
    # one size: the first epoch's 40 steps took 60 s against 40 x 1.0 s timed, so every epoch takes 60 s; with 100 s
    # spent, the 900 s left hold epochs 2..16 (the evaluation, 4 batches of 0 s, and the checkpoint cost nothing)
    plan = Plan(10, {None: 1.0}, eval_step=0.0, save=0.0)
    config = TrainConfig(time_budget=1000, eval_every=1)
    assert replanned_epochs(plan, config, [60.0], 100.0, 40, 4) == 16
    # the first epoch's evaluation (4 batches of 2.5 s, eval_every 1) is not training: the same 60 s of training
    evaluated = Plan(10, {None: 1.0}, eval_step=2.5, save=0.0)
    assert replanned_epochs(evaluated, config, [70.0], 100.0, 40, 4) == 1 + 900 // 70
    # two sizes: the first (low-resolution) epoch took 20 s against 40 x 0.25 s, twice the timed steps, so a 16x16
    # epoch takes 20 s and a 32x32 one, not measured yet, 1.1 x 2 x 40 s = 88 s (UNMEASURED_MARGIN); N epochs hold
    # round(N / 2) at 16x16: 19 fit in the 980 s left (9 x 20 + 9 x 88 = 972), 20 do not (9 x 20 + 10 x 88)
    two = Plan(10, {None: 1.0, 16: 0.25})
    config = TrainConfig(time_budget=1000, loader="device", low_res_size=16, low_res_fraction=0.5, eval_every=100)
    assert replanned_epochs(two, config, [20.0], 20.0, 40, 4) == 19
    # a first epoch faster than its timed steps (5 s against 10 s) scales the 16x16 epochs to 5 s, and the 32x32
    # ones, which no epoch has measured, by UNMEASURED_MARGIN times that factor: 1.1 x 0.5 x 40 s = 22 s each (not
    # EPOCH_MARGIN's 48 s); 72 epochs fit in the 980 s left (35 x 5 + 36 x 22 = 967), 73 do not (round(36.5) = 36
    # at 16x16: 35 x 5 + 37 x 22 = 989)
    assert UNMEASURED_MARGIN == 1.1 and replanned_epochs(two, config, [5.0], 20.0, 40, 4) == 72
    # a first epoch slower than its timed steps (30 s against 10 s): the 32x32 epochs count 1.1 x 3 x 40 s = 132 s,
    # more than the measured factor alone gives (120 s, with which 13 epochs would fill the 990 s left exactly:
    # 5 x 30 + 7 x 120 = 990); 12 fit (5 x 30 + 6 x 132 = 942), 13 do not (5 x 30 + 7 x 132 = 1,074)
    assert replanned_epochs(two, config, [30.0], 10.0, 40, 4) == 12


def test_a_later_replan_scales_the_timed_steps_by_the_last_epochs_at_the_latest_resolution(monkeypatch):
    monkeypatch.setattr(budget, "FIGURES_SECONDS", 0.0)
    # five 16x16 epochs of a 10-epoch plan (16x16 for the first 5), the machine slowing: 10, 10, 10, 20, 20 s
    # against 40 x 0.25 s timed. The last three (REPLAN_WINDOW) took 50 s for 30 s timed, so a 16x16 epoch counts
    # 50 / 3 s and a 32x32 one 1.1 x 5/3 x 40 s = 220 / 3 s. In the 900 s left, 21 epochs fit (16x16 up to the
    # 10th, round(10.5) = 10: 5 x 50/3 + 11 x 220/3 = 890 s); 22 do not (6 x 50/3 + 11 x 220/3 = 906.7 s). All five
    # epochs' mean (14 s) would have counted the machine faster than it now is, and planned 25
    plan = Plan(10, {None: 1.0, 16: 0.25})
    config = TrainConfig(time_budget=1000, loader="device", low_res_size=16, low_res_fraction=0.5, eval_every=100)
    assert budget.REPLAN_WINDOW == 3 and replanned_epochs(plan, config, [10, 10, 10, 20, 20], 100.0, 40, 4) == 21
    # the evaluation of the 5th epoch (eval_every 5: 4 batches of 2.5 s) is not training: the same answer
    evaluated = TrainConfig(time_budget=1000, loader="device", low_res_size=16, low_res_fraction=0.5, eval_every=5)
    plan = Plan(10, {None: 1.0, 16: 0.25}, eval_step=2.5)
    # (the evaluations to come, after epochs 10, 15 and 20 and the last, 10 s each, leave room for 20 epochs)
    assert replanned_epochs(plan, evaluated, [10, 10, 10, 20, 30], 100.0, 40, 4) == 20


def test_the_epochs_whose_learning_rates_do_not_depend_on_the_runs_length():
    # wsd: the peak is held until the last 20 % of the steps; 10 epochs of 10 steps cool down from step 80
    assert length_free_epochs(TrainConfig(time_budget=100, decay="wsd"), 10, 10) == 8
    # 11 epochs of 10 steps cool down from step 88, inside epoch 9 (steps 80-90): 8 epochs end before it
    assert length_free_epochs(TrainConfig(time_budget=100, decay="wsd"), 11, 10) == 8
    # cosine and linear fall from the warm-up's end: one epoch of warm-up, or none when it ends inside the first
    assert length_free_epochs(TrainConfig(time_budget=100), 10, 10) == 1
    assert length_free_epochs(TrainConfig(time_budget=100, decay="linear", warmup_epochs=0.5), 10, 10) == 0


def test_a_plan_changes_only_to_one_under_which_the_epochs_so_far_trained_alike():
    # decay wsd, 10 steps an epoch: a plan of E epochs holds the peak for 8E steps, so 5 epochs done (50 steps)
    # trained alike under 7 epochs or more (56 steps), not under 6 (48)
    wsd = TrainConfig(time_budget=100, decay="wsd")
    assert trained_alike(wsd, 10, 7, 5, 10) and not trained_alike(wsd, 10, 6, 5, 10)
    assert nearest_alike(wsd, 10, 4, 5, 10) == 7 and nearest_alike(wsd, 10, 30, 5, 10) == 30
    # the cosine falls from the warm-up's end: after its first epoch (all warm-up), never again
    cosine = TrainConfig(time_budget=100)
    assert trained_alike(cosine, 10, 20, 1, 10) and not trained_alike(cosine, 10, 20, 2, 10)
    assert nearest_alike(cosine, 10, 20, 2, 10) == 10
    # the phases too: 16x16 for the first half, so epoch 5 (from 0) is at 16x16 in 12 epochs, at 32x32 in 10
    low = TrainConfig(time_budget=100, decay="wsd", loader="device", low_res_size=16, low_res_fraction=0.5)
    assert trained_alike(low, 12, 11, 5, 10) and not trained_alike(low, 12, 10, 6, 10)


def test_the_replan_keeps_at_least_two_epochs_and_grows_at_most_tenfold(monkeypatch):
    monkeypatch.setattr(budget, "FIGURES_SECONDS", 0.0)
    plan, config = Plan(5, {None: 1.0}), TrainConfig(time_budget=1000)
    assert replanned_epochs(plan, config, [900.0], 990.0, 40, 4) == 2  # nothing left: the epoch under way ends
    assert replanned_epochs(plan, config, [0.0], 1.0, 40, 4) == 50  # a measured 0 s (a fake clock): the cap


def test_only_a_timed_plan_of_enough_epochs_whose_first_epoch_is_warm_up_is_corrected():
    timed = Plan(10, {None: 1.0})
    assert replannable(timed, TrainConfig(time_budget=100), 40)
    assert not replannable(Plan(10), TrainConfig(epochs=10), 40)  # fixed epochs, or a resumed plan: not timed
    assert not replannable(Plan(3, {None: 1.0}), TrainConfig(time_budget=100), 40)  # too few to correct
    assert not replannable(timed, TrainConfig(time_budget=100, warmup_epochs=0.5), 40)  # the decay starts in epoch 1
    # 20 % at low resolution: 2 of a plan of 10 epochs, none of a plan of 2, so the first epoch could differ
    assert not replannable(timed, TrainConfig(time_budget=100, loader="device", low_res_size=8,
                                              low_res_fraction=0.2), 40)
    assert replannable(timed, TrainConfig(time_budget=100, loader="device", low_res_size=8, low_res_fraction=0.3), 40)
