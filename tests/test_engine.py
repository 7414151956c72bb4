"""The training loop (``training.loop``): a step, evaluation, ``fit`` with its phases, checkpoints, exact resume and
a time budget."""

import inspect

import pytest
import torch
from torch import nn

from vit_replication.data import build_transform, make_loader, synthetic_sets
from vit_replication.data.augment import BatchMixing, DeviceLoader
from vit_replication.errors import UserError
from vit_replication.model import ViT
from vit_replication.training import budget, loop, timing
from vit_replication.training.config import TrainConfig
from vit_replication.training.loop import HISTORY, Run, confusion_matrix, evaluate, fit, train_step
from vit_replication.training.optim import build_optimizer
from vit_replication.training.precision import grad_scaler
from vit_replication.training.schedule import Progress, lr_factor
from vit_replication.weights.checkpoint import load_checkpoint, save_checkpoint

CPU = torch.device("cpu")


def _config(**settings) -> TrainConfig:
    return TrainConfig(**dict(epochs=3, batch_size=16, warmup_epochs=1.0, progress=False, device="cpu") | settings)


def _run(tiny_config, num_classes: int | None = None, **settings) -> Run:
    """A quiet run of a tiny ViT (with dropout and drop path, so that the RNG matters) on 48 synthetic training
    images (3 batches of 16) and 16 test ones (1 batch)."""
    train, test = synthetic_sets(16, build_transform(16, train=True), build_transform(16, train=False),
                                 sizes=(48, 16))
    model = ViT(tiny_config, dropout=0.1, drop_path=0.1)
    run = Run.create(_config(**settings), model, (make_loader(train, 16, True), make_loader(test, 16, False)), CPU,
                     num_classes=num_classes)
    run.log = False
    return run


def _device_run(tiny_config, num_classes: int | None = None, **settings) -> Run:
    """A quiet run of a tiny ViT that accepts other image sizes, on a ``DeviceLoader`` of 20 images (5 batches of
    4) and 8 test images (1 batch)."""
    images = torch.randint(0, 256, (20, 3, 16, 16), dtype=torch.uint8)
    stats = (0.5,) * 3, (0.25,) * 3
    train = DeviceLoader(images, torch.arange(20) % 10, 4, True, stats)
    test = DeviceLoader(images[:8], torch.arange(8) % 10, 8, False, stats)
    config = _config(loader="device", epochs=2, batch_size=4, **settings)
    run = Run.create(config, ViT(tiny_config, dynamic_image_size=True), (train, test), CPU, num_classes=num_classes)
    run.log = False
    return run


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in model.state_dict().items()}


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def test_optimizer_does_not_decay_biases_norms_tokens_positions(tiny_config):
    model = ViT(tiny_config)
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.1)
    decay, no_decay = optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert "embedding.position_embedding" in no_decay_names and "embedding.class_token" in no_decay_names
    assert "norm.weight" in no_decay_names and "head.bias" in no_decay_names
    assert all(names[id(p)].endswith("weight") for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_fit_trains_and_evaluates_every_eval_every_epochs_and_after_the_last(tiny_config):
    run = _run(tiny_config, epochs=5, eval_every=2)
    before = _weights(run.model)
    history = fit(run, Progress(steps=run.steps()))
    assert list(history) == list(HISTORY) and history["epoch"] == [1, 2, 3, 4, 5]
    assert history["steps"] == [3] * 5 and history["low_res_steps"] == [0] * 5
    evaluated = [acc is not None for acc in history["test_acc"]]
    assert evaluated == [False, True, False, True, True]
    assert evaluated == [loss is not None for loss in history["test_loss"]]
    final = evaluate(run.model, run.test_loader, CPU)  # the last entry is the trained model's evaluation
    assert history["test_acc"][-1] == final["acc"] and history["test_loss"][-1] == pytest.approx(final["loss"])
    assert all(0 <= acc <= 1 for acc in history["train_acc"]) and all(loss > 0 for loss in history["train_loss"])
    assert not all(torch.equal(before[k], v) for k, v in run.model.state_dict().items())


@pytest.mark.parametrize("k", [1, 2])
def test_resume_gives_the_same_result_as_an_uninterrupted_run(tiny_config, tmp_path, monkeypatch, k):
    def every_epoch(path, **state):  # keep each epoch's checkpoint, as if the run had stopped after it
        save_checkpoint(path.with_name(f"epoch{state['epoch']}.pt"), **state)

    monkeypatch.setattr(loop, "save_checkpoint", every_epoch)
    run = _run(tiny_config, seed=7)
    run.checkpoint, run.stored = tmp_path / "checkpoint.pt", {"classes": ["a", "b"]}
    full = fit(run, Progress(steps=run.steps()))
    state = load_checkpoint(tmp_path / f"epoch{k}.pt")
    assert set(state) == {"model", "optimizer", "scaler", "epoch", "step", "warmup_end", "seconds", "budget_seconds",
                          "history", "classes"}
    assert state["epoch"] == k and state["step"] == 3 * k and state["budget_seconds"] is None
    assert state["warmup_end"] == (1.0 if k == 1 else 1 / 3)  # the warm-up (3 steps) ends at the start of epoch 2

    torch.manual_seed(123)  # the interruption scrambles the global RNG (and the fresh model's weights)
    resumed_run = _run(tiny_config, seed=7)
    resumed = fit(resumed_run, Progress(steps=resumed_run.steps()), resume=state)
    resumed.pop("epoch_time"), full.pop("epoch_time")
    assert resumed == full
    _assert_same_weights(run.model, resumed_run.model)
    assert not list(tmp_path.glob("*.tmp"))


def test_fit_takes_at_most_three_positional_parameters():
    positional = [p for p in inspect.signature(fit).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert [p.name for p in positional] == ["run", "progress", "resume"]


def test_checkpoint_round_trip_and_missing_file(tmp_path):
    save_checkpoint(tmp_path / "sub" / "c.pt", epoch=3, weights=torch.arange(4))
    state = load_checkpoint(tmp_path / "sub" / "c.pt")
    assert state["epoch"] == 3 and torch.equal(state["weights"], torch.arange(4))
    with pytest.raises(UserError, match="no checkpoint at .*nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")
    whole = (tmp_path / "sub" / "c.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserError, match=r"cut.pt is not a readable checkpoint .*it may be truncated"):
        load_checkpoint(tmp_path / "cut.pt")


def test_checkpoints_every_n_epochs_and_after_the_last(tiny_config, tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(loop, "save_checkpoint", lambda path, **state: written.append((path, state["epoch"])))
    run = _run(tiny_config, save_every=2)
    fit(run, Progress(steps=run.steps()))
    assert written == []  # no checkpoint path: none
    run = _run(tiny_config, save_every=2)
    run.checkpoint = tmp_path / "c.pt"
    fit(run, Progress(steps=run.steps()))
    assert written == [(tmp_path / "c.pt", 2), (tmp_path / "c.pt", 3)]
    run = _run(tiny_config, save_every=2, epochs=1)
    run.checkpoint, run.rank = tmp_path / "c.pt", 1  # not the first process under torchrun
    fit(run, Progress(steps=run.steps()))
    assert len(written) == 2


def test_training_fits_a_small_batch(tiny_config):
    """The whole pipeline can learn: 32 fixed images are memorised within 60 steps."""
    train, _ = synthetic_sets(16, build_transform(16, train=False), None, sizes=(32, 1))
    loader = make_loader(train, 32, train=True)
    model = ViT(tiny_config)
    run = Run(_config(grad_clip=0.0), model, loader, loader, build_optimizer(model, 3e-3, weight_decay=0.0),
              nn.CrossEntropyLoss(), CPU)
    scaler = grad_scaler(CPU, "fp32")
    first = evaluate(model, loader, CPU)
    for _ in range(60):
        model.train()
        for images, labels in loader:
            train_step(run, images, labels, scaler)
    last = evaluate(model, loader, CPU)
    assert last["loss"] < 0.2 * first["loss"]
    assert last["acc"] > 0.9


def test_confusion_matrix():
    predictions = torch.tensor([0, 1, 1, 2, 2, 2])
    targets = torch.tensor([0, 1, 2, 2, 2, 0])
    expected = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 1, 2]])
    assert torch.equal(confusion_matrix(predictions, targets, 3), expected)


def test_one_hot_targets_from_a_batch_mixing_train_exactly_like_labels(tiny_config):
    """Soft targets reach the loss: one-hot targets (label smoothing included) give the same steps as labels."""
    train, _ = synthetic_sets(16, build_transform(16, train=False), None, sizes=(32, 1))
    loader = make_loader(train, 16, train=False)
    one_hot = BatchMixing(lambda images, labels: (images, nn.functional.one_hot(labels, 10).float()))
    results = []
    for mixing in (None, one_hot):
        torch.manual_seed(0)
        model = ViT(tiny_config).train()
        run = Run(_config(), model, loader, loader, build_optimizer(model, 1e-3),
                  nn.CrossEntropyLoss(label_smoothing=0.1), CPU, mixing=mixing)
        scaler = grad_scaler(CPU, "fp32")
        steps = [train_step(run, images, labels, scaler) for images, labels in loader]
        results.append((steps, model.head.weight.detach().clone()))
    (plain, plain_head), (soft, soft_head) = results
    for (loss, _, labels), (soft_loss, _, soft_labels) in zip(plain, soft):
        assert soft_loss.item() == pytest.approx(loss.item(), rel=1e-6) and torch.equal(labels, soft_labels)
    assert torch.allclose(plain_head, soft_head, atol=1e-6)


def test_seconds_per_step_times_the_steps_after_the_warm_up(tiny_config, step_clock):
    model = step_clock.hook(ViT(tiny_config).train())
    calls = []

    def steps(n: int) -> None:
        calls.append(n)
        for _ in range(n):
            model(torch.randn(2, 3, 16, 16))

    assert timing.seconds_per_step(steps, CPU, warmup=3, steps=4, clock=step_clock) == 0.5
    assert calls == [3, 4] and step_clock.now == 3.5


def test_a_time_budget_stops_mid_epoch_when_it_is_spent(tiny_config, step_clock):
    run = _run(tiny_config, eval_every=1)
    step_clock.hook(run.model)  # 0.5 s a training step, 0.125 s the test set's one batch
    history = fit(run, Progress(seconds=4.0, clock=step_clock))
    # epoch 1: 3 steps and an evaluation, 1.625 s; epoch 2: 3.25 s; epoch 3 starts at p = 0.8125, ends after 2 steps
    assert history["steps"] == [3, 3, 2] and len(run.train_loader) == 3
    assert all(acc is not None for acc in history["test_acc"])
    assert step_clock.now == 4.25 + 0.125  # the last step ran over the budget; then the final evaluation


def test_a_budget_that_runs_out_during_an_evaluation_ends_the_run_with_that_epoch(tiny_config, step_clock):
    run = _run(tiny_config, eval_every=1)
    step_clock.hook(run.model)  # 3 steps of 0.5 s, then an evaluation of 0.125 s
    history = fit(run, Progress(seconds=1.55, clock=step_clock))
    assert history["steps"] == [3] and history["test_acc"][0] is not None  # no empty second epoch
    assert step_clock.now == 1.625


@pytest.mark.parametrize("decay", ["wsd", "linear"])
def test_the_learning_rate_of_a_time_budget_falls_to_zero_as_it_is_spent(tiny_config, step_clock, decay):
    run = _run(tiny_config, lr=1e-3, decay=decay, warmup_epochs=0.0, eval_every=100)
    step_clock.hook(run.model, train_seconds=0.0625)
    seen = []
    run.model.register_forward_pre_hook(
        lambda module, args: seen.append(run.optimizer.param_groups[0]["lr"]) if module.training else None)
    history = fit(run, Progress(seconds=2.0, clock=step_clock))
    assert history["steps"] == [3] * 10 + [2]  # 32 steps of 1/32 of the budget
    assert seen == pytest.approx([1e-3 * lr_factor(k / 32, k, 0, 0.0, decay) for k in range(32)], abs=1e-15)
    assert seen[:16] == pytest.approx([1e-3 * (1 - k / 32) if decay == "linear" else 1e-3 for k in range(16)])
    assert seen[-1] == pytest.approx(1e-3 * (1 / 32 if decay == "linear" else 5 / 32))
    assert history["lr"][-1] == seen[-1] and [acc is None for acc in history["test_acc"]] == [True] * 10 + [False]


def test_a_time_budget_run_resumes_exactly_with_the_budget_of_its_first_part(tiny_config, tmp_path, monkeypatch,
                                                                              step_clock):
    def every_epoch(path, **state):
        save_checkpoint(path.with_name(f"epoch{state['epoch']}.pt"), **state)

    monkeypatch.setattr(loop, "save_checkpoint", every_epoch)
    run = _run(tiny_config, seed=3, time_budget=100.0)
    run.checkpoint = tmp_path / "checkpoint.pt"
    step_clock.hook(run.model)
    full = fit(run, Progress(seconds=4.0, clock=step_clock))
    state = load_checkpoint(tmp_path / "epoch1.pt")
    assert state["budget_seconds"] == 4.0 and state["seconds"] == 1.625 and state["step"] == 3

    torch.manual_seed(123)
    resumed_run = _run(tiny_config, seed=3, time_budget=100.0)
    clock = type(step_clock)()  # a new process's clock, from zero
    clock.hook(resumed_run.model)
    progress = budget.progress_for(resumed_run, started=0.0, resume=state, clock=clock)
    resumed = fit(resumed_run, progress, resume=state)
    assert clock.now == 4.375 - 1.625  # the rest of the budget, and the final evaluation
    resumed.pop("epoch_time"), full.pop("epoch_time")
    assert resumed == full and full["steps"] == [3, 3, 2]
    _assert_same_weights(run.model, resumed_run.model)


@pytest.mark.parametrize("fraction, low_res_steps", [(0.35, [4, 0]), (0.65, [5, 2]), (1.0, [5, 5]), (0.0, [0, 0])])
def test_the_low_resolution_phase_is_the_steps_with_p_below_its_fraction(tiny_config, fraction, low_res_steps):
    run = _device_run(tiny_config, low_res_size=8, low_res_fraction=fraction)
    sizes = []
    run.model.register_forward_pre_hook(lambda module, args: sizes.append((module.training, args[0].shape[-1])))
    history = fit(run, Progress(steps=run.steps()))
    assert history["steps"] == [5, 5] and history["low_res_steps"] == low_res_steps
    low = sum(low_res_steps)  # the steps 0 .. low - 1, p = step / 10 < fraction
    assert [size for training, size in sizes if training] == [8] * low + [16] * (10 - low)
    assert {size for training, size in sizes if not training} == {16}  # evaluation at full size


def test_mixing_is_active_only_while_p_is_below_the_mixing_fraction(tiny_config):
    run = _device_run(tiny_config, num_classes=10, mixup=0.8, mixing_fraction=0.35)
    assert run.mixing is not None
    targets, loss_fn = [], run.loss_fn

    def recorded(logits, target):
        targets.append(target.ndim)
        return loss_fn(logits, target)

    run.loss_fn = recorded
    history = fit(run, Progress(steps=run.steps()))
    assert history["steps"] == [5, 5]
    assert targets == [2] * 4 + [1] * 6  # soft targets [B, classes] for steps 0-3 (p < 0.35), then the labels
    assert not run.mixing.active
    without = _device_run(tiny_config, mixup=0.8)  # no num_classes: no mixing
    assert without.mixing is None
