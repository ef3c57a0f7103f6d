"""The metrics on a CUDA device give the CPU's numbers (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from helpers import small_cnn
from lumos.metrics import (
    infidelity,
    insertion_deletion,
    model_randomization,
    pixel_flipping,
    spearman,
    ssim,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def both(model: torch.nn.Module, *tensors: torch.Tensor) -> tuple[object, ...]:
    return (model.cuda(), *(t.cuda() for t in tensors))


def test_perturbation_metrics_on_cuda_equal_cpu() -> None:
    model = small_cnn(in_channels=3)
    x = torch.rand(6, 3, 12, 12, dtype=torch.float64)
    x[:, :, :3] = 0.0
    a = torch.randn_like(x)
    t = torch.tensor([0, 1, 2, 3, 4, 5])
    cpu = [pixel_flipping(model, x, a, t, steps=12, patch=2, fill=f) for f in (0.0, "blur")]
    game = insertion_deletion(model, x, a, t, steps=9, patch=4)
    infid = infidelity(model, x, a, t, n_perturb=8)
    gm, gx, ga, gt = both(model, x, a, t)
    gpu = [pixel_flipping(gm, gx, ga, gt, steps=12, patch=2, fill=f) for f in (0.0, "blur")]
    for c, g in zip(cpu, gpu, strict=True):
        assert g.device.type == "cuda"
        torch.testing.assert_close(g.cpu(), c)
    game_gpu = insertion_deletion(gm, gx, ga, gt, steps=9, patch=4)
    torch.testing.assert_close(game_gpu.insertion.cpu(), game.insertion)
    torch.testing.assert_close(game_gpu.deletion.cpu(), game.deletion)
    torch.testing.assert_close(infidelity(gm, gx, ga, gt, n_perturb=8).cpu(), infid)


def test_similarity_and_randomization_on_cuda_equal_cpu() -> None:
    a = torch.randn(4, 1, 16, 16, dtype=torch.float64)
    b = a + torch.randn_like(a)
    torch.testing.assert_close(spearman(a.cuda(), b.cuda()).cpu(), spearman(a, b))
    torch.testing.assert_close(ssim(a.cuda(), b.cuda()).cpu(), ssim(a, b))

    def grad_x_input(m: torch.nn.Module, x: torch.Tensor, t: object) -> torch.Tensor:
        leaf = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(m(leaf)[:, 0].sum(), leaf)
        return g * x

    model = small_cnn()
    x = torch.rand(4, 1, 12, 12, dtype=torch.float64)
    cpu = model_randomization(model, x, grad_x_input)
    gpu = model_randomization(model.cuda(), x.cuda(), grad_x_input)
    torch.testing.assert_close(gpu.spearman.cpu(), cpu.spearman)
