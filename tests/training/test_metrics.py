"""Masked PSNR, its gain over a baseline, and sharpness relative to HR, as functions and as ignite metrics."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Engine
from ignite.exceptions import NotComputableError

from pipeline.evaluation import relative_sharpness
from pipeline.evaluation.metrics import data_range, psnr
from pipeline.training import MaskedPSNR, MaskedPSNRGain, MaskedRelativeSharpness, masked_psnr


def volumes(error: float, shape=(1, 6, 6, 4)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Target, a prediction off by ``error`` inside the mask (and by 5 outside), and the mask."""
    target = torch.rand(shape)
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[:, 1:5, 1:5, 1:3] = True
    pred = torch.where(mask, target + error, target + 5.0)
    return pred, target, mask


@pytest.mark.parametrize("error,data_range", [(0.1, 1.0), (0.01, 1.0), (0.1, 2.0)])
def test_masked_psnr_value(error, data_range):
    pred, target, mask = volumes(error)
    expected = 10 * math.log10(data_range**2 / error**2)
    assert masked_psnr(pred, target, mask, data_range) == pytest.approx(expected, rel=1e-5)


def test_default_is_the_evaluation_psnr():
    """One PSNR definition: validation scores equal ``mrisr evaluate``'s (L = HR max - min in the mask)."""
    pred, target, mask = volumes(0.05)
    expected = psnr(pred.numpy(), target.numpy(), mask.numpy(), data_range(target.numpy(), mask.numpy()))
    assert masked_psnr(pred, target, mask) == pytest.approx(expected, rel=1e-6)
    assert masked_psnr(pred * 7.0, target * 7.0, mask) == pytest.approx(expected, rel=1e-6)  # scale-free


def test_masked_psnr_perfect_and_ill_arg():
    _, target, mask = volumes(0.0)
    assert masked_psnr(target, target, mask) == math.inf
    with pytest.raises(ValueError, match="empty"):
        masked_psnr(target, target, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="shapes"):
        masked_psnr(target[:, :-1], target, mask)
    with pytest.raises(ValueError):
        MaskedPSNR(data_range=0)
    with pytest.raises(ValueError, match="constant"):
        masked_psnr(target + 1, torch.ones_like(target), mask)


def run_metric(metric, batches, name="psnr"):
    engine = Engine(lambda e, batch: batch)
    metric.attach(engine, name)
    engine.run(batches, max_epochs=1)
    return engine


def test_metric_averages_volumes_over_batches():
    a, b = volumes(0.1), volumes(0.01)
    batched = [tuple(torch.stack(x) for x in zip(a, b)), tuple(x[None] for x in volumes(0.001))]
    engine = run_metric(MaskedPSNR(data_range=1.0, save_details=True), batched)
    assert engine.state.metrics["psnr"] == pytest.approx((20 + 40 + 60) / 3, rel=1e-4)
    details = engine.state.metric_details["psnr"][:, 0]
    torch.testing.assert_close(details, torch.tensor([20.0, 40.0, 60.0]), rtol=1e-4, atol=0)


def test_gain():
    pred, target, mask = volumes(0.01)
    reference = torch.where(mask, target + 0.1, target)
    engine = run_metric(MaskedPSNRGain(), [(pred[None], reference[None], target[None], mask[None])], "gain")
    assert engine.state.metrics["gain"] == pytest.approx(20.0, rel=1e-4)


def test_not_computable_without_volumes():
    with pytest.raises(NotComputableError):
        MaskedPSNR().compute()


def test_relative_sharpness_is_that_of_the_evaluation():
    torch.manual_seed(0)
    target = torch.rand(1, 10, 10, 8)
    mask = torch.zeros_like(target, dtype=torch.bool)
    mask[:, 2:8, 2:8, 2:6] = True
    smooth = torch.nn.functional.avg_pool3d(target[None], 3, stride=1, padding=1)[0]
    batch = [(torch.stack([smooth, target]), torch.stack([target, target]), torch.stack([mask, mask]))]
    engine = run_metric(MaskedRelativeSharpness(save_details=True), batch, "sharpness")
    expected = relative_sharpness(smooth, target, mask)
    assert expected < 0.9
    assert engine.state.metrics["sharpness"] == pytest.approx((expected + 1.0) / 2)
    details = engine.state.metric_details["sharpness"][:, 0].double()
    torch.testing.assert_close(details, torch.tensor([expected, 1.0], dtype=torch.float64))
