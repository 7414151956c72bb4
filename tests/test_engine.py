import inspect
from functools import partial

import pytest
import torch
from torch import nn

from vit_replication import timing
from vit_replication.checkpoint import load_checkpoint, save_checkpoint
from vit_replication.data import build_transform, make_loader, synthetic
from vit_replication.ema import EMA
from vit_replication.engine import Checkpoints, confusion_matrix, evaluate, fit, train_one_epoch
from vit_replication.errors import UserError
from vit_replication.model import ViT
from vit_replication.optim import WSD_COOLDOWN, build_optimizer, warmup_decay
from vit_replication.timing import time_steps


def test_warmup_decay_schedule():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_decay(optimizer, warmup_steps=4, total_steps=12, min_lr_ratio=0.1)
    lrs = []
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0)
    assert lrs[8] == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the cosine
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:]))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="need 0 <= warmup_steps <= total_steps"):
        warmup_decay(optimizer, 5, 4)
    with pytest.raises(ValueError, match="decay must be one of cosine, linear, wsd"):
        warmup_decay(optimizer, 1, 4, decay="step")


def _learning_rates(steps: int, **schedule) -> list[float]:
    """The learning rate of each of ``steps`` steps (and the one after them) of ``warmup_decay(**schedule)`` at a
    peak of 2.0."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    scheduler = warmup_decay(optimizer, **schedule)
    lrs = []
    for _ in range(steps + 1):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_linear_decay_falls_in_equal_steps_to_zero():
    lrs = _learning_rates(10, warmup_steps=2, total_steps=10, decay="linear")
    # warm-up 1.0, 2.0; then 8 steps from 2.0 down to 0 in equal steps of 0.25
    assert lrs == pytest.approx([1.0, 2.0, 2.0, 1.75, 1.5, 1.25, 1.0, 0.75, 0.5, 0.25, 0.0])


def test_wsd_holds_the_peak_then_falls_along_a_line_over_the_last_fifth():
    lrs = _learning_rates(20, warmup_steps=2, total_steps=20, decay="wsd")
    # warm-up 1.0, 2.0; the peak held to step 16 (20 - 20 % of 20); then 4 steps from 2.0 down to 0 in steps of 0.5
    assert lrs == pytest.approx([1.0] + [2.0] * 16 + [1.5, 1.0, 0.5, 0.0])
    assert WSD_COOLDOWN == 0.2


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


def _setup(config, tmp_path=None):
    tf = build_transform(16, train=True)
    train, test = synthetic(16, tf, build_transform(16, train=False), sizes=(48, 16))
    model = ViT(config, dropout=0.1, drop_path=0.1)
    optimizer = build_optimizer(model, 1e-3)
    scheduler = warmup_decay(optimizer, 2, 3 * 3)
    return model, optimizer, scheduler, make_loader(train, 16, True), make_loader(test, 16, False)


@pytest.mark.parametrize("ema", [None, 0.9])
def test_resume_gives_the_same_result_as_an_uninterrupted_run(tiny_config, tmp_path, ema):
    kwargs = dict(device=torch.device("cpu"), progress=False, log=False, seed=7)

    def run(epochs: int, path, resume: bool = False):
        model, optimizer, scheduler, train, test = _setup(tiny_config)
        average = EMA(model, ema) if ema else None
        state = load_checkpoint(path) if resume else None
        history = fit(model, train, test, optimizer=optimizer, scheduler=scheduler, epochs=epochs, ema=average,
                      checkpoints=Checkpoints(path), resume=state, **kwargs)
        return history, model, average

    full, model, average = run(3, tmp_path / "full.pt")
    torch.manual_seed(0)  # a fresh start, as in a new process
    run(1, tmp_path / "part.pt")
    torch.manual_seed(123)  # the interruption scrambles the global RNG
    resumed, model3, average3 = run(3, tmp_path / "part.pt", resume=True)

    resumed.pop("epoch_time"), full.pop("epoch_time")
    assert resumed == full
    for (name, a), b in zip(model.state_dict().items(), model3.state_dict().values()):
        assert torch.equal(a, b), name
    if ema:  # the average too, and it is what the checkpoint calls the model (what was evaluated)
        assert average3.updates == average.updates == 9
        for (name, a), b in zip(average.module.state_dict().items(), average3.module.state_dict().values()):
            assert torch.equal(a, b), name
        stored = load_checkpoint(tmp_path / "full.pt")
        assert all(torch.equal(stored["model"][k], v) for k, v in average.module.state_dict().items())
        assert all(torch.equal(stored["train_model"][k], v) for k, v in model.state_dict().items())
    assert not (tmp_path / "part.pt.tmp").exists()


def test_fit_takes_at_most_three_positional_parameters():
    positional = [p for p in inspect.signature(fit).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert [p.name for p in positional] == ["model", "train_loader", "test_loader"]


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
    with pytest.raises(ValueError, match="eval_every must be >= 1"):
        fit(nn.Linear(1, 1), [], [], optimizer=torch.optim.SGD(nn.Linear(1, 1).parameters(), 0.1), epochs=1,
            eval_every=0)


def test_training_fits_a_small_batch(tiny_config):
    """The whole pipeline can learn: 32 fixed images are memorised within 60 steps."""
    train, _ = synthetic(16, build_transform(16, train=False), None, sizes=(32, 1))
    loader = make_loader(train, 32, train=True)
    model = ViT(tiny_config)
    optimizer = build_optimizer(model, 3e-3, weight_decay=0.0)
    loss_fn = nn.CrossEntropyLoss()
    device = torch.device("cpu")
    first = evaluate(model, loader, loss_fn, device, progress=False)
    for _ in range(60):
        train_one_epoch(model, loader, optimizer, None, loss_fn, device, progress=False)
    last = evaluate(model, loader, loss_fn, device, progress=False)
    assert last["loss"] < 0.2 * first["loss"]
    assert last["acc"] > 0.9


def test_confusion_matrix():
    predictions = torch.tensor([0, 1, 1, 2, 2, 2])
    targets = torch.tensor([0, 1, 2, 2, 2, 0])
    expected = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 1, 2]])
    assert torch.equal(confusion_matrix(predictions, targets, 3), expected)


def test_one_hot_targets_from_a_batch_transform_train_exactly_like_labels(tiny_config):
    """Soft targets reach the loss: one-hot targets (label smoothing included) give the same step as labels."""
    train, _ = synthetic(16, build_transform(16, train=False), None, sizes=(32, 1))
    loader = make_loader(train, 16, train=False)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    results = []
    for transform in (None, lambda images, labels: (images, nn.functional.one_hot(labels, 10).float())):
        torch.manual_seed(0)
        model = ViT(tiny_config)
        optimizer = build_optimizer(model, 1e-3)
        stats = train_one_epoch(model, loader, optimizer, None, loss_fn, torch.device("cpu"), progress=False,
                                batch_transform=transform)
        results.append((stats, model.head.weight.detach().clone()))
    (plain, plain_head), (soft, soft_head) = results
    assert soft["loss"] == pytest.approx(plain["loss"], rel=1e-6) and soft["acc"] == plain["acc"]
    assert torch.allclose(plain_head, soft_head, atol=1e-6)


def test_timing_steps_leaves_training_exactly_as_it_would_have_been(tiny_config, step_clock, monkeypatch):
    kwargs = dict(device=torch.device("cpu"), progress=False, log=False, seed=5)
    model, optimizer, scheduler, train, test = _setup(tiny_config)
    expected = fit(model, train, test, optimizer=optimizer, scheduler=scheduler, epochs=2, **kwargs)

    torch.manual_seed(0)
    model2, optimizer2, scheduler2, train2, test2 = _setup(tiny_config)
    before = {k: v.clone() for k, v in model2.state_dict().items()}
    # timed on an injected clock: 0.5 s a training step, 0.125 s an evaluation batch, the warm-up left out
    monkeypatch.setattr(timing, "seconds_per_step", partial(timing.seconds_per_step, clock=step_clock))
    train_step, eval_step = time_steps(step_clock.hook(model2), train2, test2, optimizer2, nn.CrossEntropyLoss(),
                                       torch.device("cpu"), steps=4, warmup=2)  # 4 > the 3 batches of an epoch
    assert (train_step, eval_step) == (0.5, 0.125)
    assert all(torch.equal(before[k], v) for k, v in model2.state_dict().items())
    assert optimizer2.state_dict()["state"] == {}  # AdamW's moments are gone again
    got = fit(model2, train2, test2, optimizer=optimizer2, scheduler=scheduler2, epochs=2, **kwargs)
    got.pop("epoch_time"), expected.pop("epoch_time")
    assert got == expected
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), name


def test_checkpoints_every_n_epochs_and_after_the_last(tiny_config, tmp_path, monkeypatch):
    import vit_replication.engine as engine

    written = []
    monkeypatch.setattr(engine, "save_checkpoint", lambda path, **state: written.append(state["epoch"]))
    model, optimizer, scheduler, train, test = _setup(tiny_config)
    fit(model, train, test, optimizer=optimizer, scheduler=scheduler, epochs=3, progress=False, log=False,
        checkpoints=Checkpoints(tmp_path / "c.pt", every=2))
    assert written == [2, 3]
    fit(model, train, test, optimizer=optimizer, scheduler=scheduler, epochs=1, progress=False, log=False,
        checkpoints=Checkpoints(tmp_path / "c.pt", write=False))  # not the first process under torchrun
    assert written == [2, 3]
    with pytest.raises(ValueError, match="checkpoint every must be >= 1"):
        Checkpoints(tmp_path / "c.pt", every=0)
