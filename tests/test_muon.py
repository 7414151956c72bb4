"""Muon on the encoder's weight matrices, AdamW on the rest (muon.MuonAdamW), against torch.optim.Muon and
torch.optim.AdamW, and the singular value decomposition."""

import pytest
import torch
from torch import nn

from vit_replication.model import ViT, get_config
from vit_replication.training.muon import MuonAdamW, newton_schulz, orthogonalised
from vit_replication.training.optim import build_optimizer
from vit_replication.variants.cnn import CNN


@pytest.mark.parametrize("shape", [(64, 192), (192, 64), (48, 48)])
def test_newton_schulz_keeps_the_singular_vectors_and_brings_the_singular_values_near_one(shape):
    torch.manual_seed(0)
    rank = min(shape)
    u, vh = torch.linalg.qr(torch.randn(shape[0], rank))[0], torch.linalg.qr(torch.randn(shape[1], rank))[0].T
    matrix = u @ torch.diag(torch.logspace(-1, 1, rank)) @ vh  # singular values over 2 decades
    orthogonal = newton_schulz(matrix)
    assert orthogonal.shape == matrix.shape
    values = torch.linalg.svdvals(orthogonal)
    assert values.max() < 1.25 and values.min() > 0.5, values  # not exactly 1: the quintic trades that for speed
    # orthogonal = U S' V^T with S' near 1: projected on the SVD's singular vectors it is diagonal and positive
    projected = u.T @ orthogonal @ vh.T
    off_diagonal = projected - torch.diag(projected.diagonal())
    assert projected.diagonal().min() > 0.5 and off_diagonal.abs().max() < 0.05


def test_orthogonalised_batches_by_shape_and_equals_newton_schulz_of_each_matrix_in_order():
    generator = torch.Generator().manual_seed(0)
    shapes = [(16, 48), (48, 16), (16, 48), (32, 32), (48, 16), (16, 48)]  # shapes interleaved, repeated
    updates = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in shapes]
    results = orthogonalised(updates, steps=5, dtype=torch.float32)
    assert [r.shape for r in results] == [u.shape for u in updates]
    assert all(r.dtype == torch.float64 for r in results)  # returned in the updates' dtype
    for update, result in zip(updates, results):
        expected = newton_schulz(update.float(), steps=5).double()
        torch.testing.assert_close(result, expected, rtol=1e-4, atol=1e-5)


def two_params(seed: int) -> tuple[nn.Parameter, nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return nn.Parameter(torch.randn(48, 96, generator=generator)), nn.Parameter(torch.randn(96, generator=generator))


def test_muon_adamw_steps_as_torch_muon_on_matrices_and_as_torch_adamw_on_the_rest():
    (matrix, vector), (matrix_ref, vector_ref) = two_params(0), two_params(0)
    ours = MuonAdamW([{"params": [matrix], "muon": True}, {"params": [vector], "weight_decay": 0.2}], lr=0.01,
                     weight_decay=0.1)
    muon = torch.optim.Muon([matrix_ref], lr=0.01, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
    adamw = torch.optim.AdamW([vector_ref], lr=0.01, weight_decay=0.2)
    start = matrix.detach().clone()
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):
        grads = torch.randn(48, 96, generator=generator), torch.randn(96, generator=generator)
        for params, grad in zip(((matrix, matrix_ref), (vector, vector_ref)), grads):
            for param in params:
                param.grad = grad.clone()
        ours.step(), muon.step(), adamw.step()
    torch.testing.assert_close(vector, vector_ref)  # AdamW: the same arithmetic, decoupled decay included
    # torch's Muon orthogonalises in bf16, this one in fp32: equal to bf16's precision of the 5 steps taken
    moved, difference = (matrix_ref - start).abs().max(), (matrix - matrix_ref).abs().max()
    assert moved > 0.02 and difference < 0.03 * moved


def test_muon_adamw_refuses_a_muon_group_that_is_not_matrices():
    with pytest.raises(ValueError, match="2-D weight matrices"):
        MuonAdamW([{"params": [nn.Parameter(torch.zeros(3))], "muon": True}])


def test_build_optimizer_muon_takes_the_encoders_matrices_and_adamw_keeps_the_rest():
    model = ViT(get_config("vit_cifar_tiny", num_layers=2))
    optimizer = build_optimizer(model, 1e-3, weight_decay=0.05, optimizer="muon")
    names = {id(param): name for name, param in model.named_parameters()}
    muon, decay, no_decay = ([names[id(p)] for p in group["params"]] for group in optimizer.param_groups)
    assert [group["muon"] for group in optimizer.param_groups] == [True, False, False]
    assert sorted(muon) == sorted(f"encoder.{i}.{layer}.weight" for i in range(2)
                                  for layer in ("attention.qkv", "attention.proj", "mlp.fc1", "mlp.fc2"))
    assert sorted(decay) == ["embedding.patch_embedding.proj.weight", "head.weight"]  # Eq. 1's E, Eq. 4's head
    assert len(muon) + len(decay) + len(no_decay) == len(names)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.05, 0.05, 0.0]
    # orthogonalised in the run's format where that is bf16, else in fp32 (bf16 emulated on a CPU costs 10x)
    assert optimizer.ns_dtype == torch.float32
    assert build_optimizer(model, 1e-3, optimizer="muon", precision="bf16").ns_dtype == torch.bfloat16
    adamw = build_optimizer(model, 1e-3, weight_decay=0.05)
    assert isinstance(adamw, torch.optim.AdamW) and len(adamw.param_groups[0]["params"]) == len(muon) + len(decay)
    with pytest.raises(ValueError, match="optimizer muon is for the ViTs"):  # the CNN's last Linear is its head
        build_optimizer(CNN(), 1e-3, optimizer="muon")


def test_muon_adamw_state_dict_resumes_the_same_steps():
    def run(steps: int, resume_from: dict | None = None):
        torch.manual_seed(0)
        model = ViT(get_config("vit_cifar_tiny", num_layers=1, num_classes=3))
        optimizer = build_optimizer(model, 3e-3, optimizer="muon")
        if resume_from is not None:
            model.load_state_dict(resume_from["model"]), optimizer.load_state_dict(resume_from["optimizer"])
        images, labels = torch.randn(8, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
        for _ in range(steps):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(images), labels).backward()
            optimizer.step()
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict()}

    full, half = run(4), run(2)
    resumed = run(2, resume_from=half)
    for key, value in full["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, msg=key)
