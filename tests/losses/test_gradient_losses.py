# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import pytest
import torch

from pipeline.losses import GradientDifferenceLoss, TotalVariationLoss, spatial_differences


def _step_image(spatial_dims: int, edge: int, side: int = 6) -> torch.Tensor:
    """(1, 1, side, ...) image that is 1 from index ``edge`` on along the first spatial axis, 0 before."""
    x = torch.zeros((1, 1) + (side,) * spatial_dims)
    x[:, :, edge:] = 1.0
    return x


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_spatial_differences(spatial_dims):
    x = torch.rand((2, 1) + (4, 5, 6)[:spatial_dims])
    diffs = spatial_differences(x)
    assert len(diffs) == spatial_dims
    for axis, d in enumerate(diffs):
        expected_shape = list(x.shape)
        expected_shape[axis + 2] -= 1
        assert list(d.shape) == expected_shape


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_gdl_zero_for_identical_and_offset_images(spatial_dims):
    x = torch.rand((2, 1) + (5,) * spatial_dims)
    gdl = GradientDifferenceLoss()
    assert gdl(x, x).item() == 0.0
    torch.testing.assert_close(gdl(x + 0.3, x), torch.tensor(0.0))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_gdl_shifted_edge(spatial_dims):
    """Shifting a unit step by one voxel: two difference positions disagree by 1 along the edge axis."""
    side = 6
    a, b = _step_image(spatial_dims, 2, side), _step_image(spatial_dims, 3, side)
    loss = GradientDifferenceLoss()(a, b)
    assert loss > 0
    # along axis 0: (side-1) * side^(N-1) differences, 2 * side^(N-1) of them equal to 1; other axes: 0
    expected = 2 * side ** (spatial_dims - 1) / ((side - 1) * side ** (spatial_dims - 1))
    torch.testing.assert_close(loss, torch.tensor(expected))
    expected_sum = 2.0 * side ** (spatial_dims - 1)
    torch.testing.assert_close(GradientDifferenceLoss(reduction="sum")(a, b), torch.tensor(expected_sum))


def test_gdl_hand_computed_alpha():
    """Two identical rows (no vertical differences); along W |d input| = 2, 0 and |d target| = 1, 2."""
    input = torch.tensor([[0.0, 2.0, 2.0]]).expand(1, 1, 2, 3)
    target = torch.tensor([[0.0, 1.0, 3.0]]).expand(1, 1, 2, 3)
    torch.testing.assert_close(GradientDifferenceLoss(alpha=1.0)(input, target), torch.tensor((1.0 + 2.0) / 2))
    torch.testing.assert_close(GradientDifferenceLoss(alpha=2.0)(input, target), torch.tensor((1.0 + 4.0) / 2))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_tv(spatial_dims):
    assert TotalVariationLoss()(torch.full((1, 1) + (4,) * spatial_dims, 0.7)).item() == 0.0
    side = 6
    step = _step_image(spatial_dims, 3, side)
    # one unit jump per line along axis 0: side^(N-1) ones among (side-1) * side^(N-1) differences
    torch.testing.assert_close(TotalVariationLoss()(step), torch.tensor(1 / (side - 1)))
    tv_sum = TotalVariationLoss(reduction="sum")(2 * step)
    torch.testing.assert_close(tv_sum, torch.tensor(4.0 * side ** (spatial_dims - 1)))


def test_tv_ramp_hand_computed():
    """x = i + 2j on a 3x3 grid: (dx)^2 = 1 and (dy)^2 = 4 everywhere -> TV = 1 + 4."""
    i, j = torch.meshgrid(torch.arange(3.0), torch.arange(3.0), indexing="ij")
    torch.testing.assert_close(TotalVariationLoss()((i + 2 * j)[None, None]), torch.tensor(5.0))


@pytest.mark.parametrize(
    "build",
    [
        lambda: GradientDifferenceLoss(alpha=0),
        lambda: GradientDifferenceLoss(reduction="none"),
        lambda: TotalVariationLoss(reduction="none"),
    ],
)
def test_ill_arg(build):
    with pytest.raises(ValueError):
        build()


def test_bad_inputs():
    with pytest.raises(ValueError):
        GradientDifferenceLoss()(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 3))
    with pytest.raises(ValueError):
        TotalVariationLoss()(torch.rand(4, 4))
    with pytest.raises(ValueError):
        TotalVariationLoss()(torch.rand(2, 1, 1, 1))


def test_singleton_axis_is_skipped():
    """A 2D slice stored as (B, C, H, W, 1) gives the 2D value."""
    x, y = torch.rand(1, 1, 5, 6), torch.rand(1, 1, 5, 6)
    torch.testing.assert_close(TotalVariationLoss()(x[..., None]), TotalVariationLoss()(x))
    torch.testing.assert_close(GradientDifferenceLoss()(x[..., None], y[..., None]), GradientDifferenceLoss()(x, y))
