# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Shared LR-synthesis machinery: axis/factor parsing, resampling matrices, metadata records."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.data import MetaTensor, list_data_collate, set_track_meta
from scipy.ndimage import gaussian_filter1d

from pipeline.transforms.lr_blur import BlurDownsample
from pipeline.transforms.lr_common import (
    boxcar_weights,
    gaussian_weights,
    lr_centres,
    normalize_axes,
    normalize_factors,
    resampling_matrix,
)
from pipeline.transforms.lr_kspace import KSpaceTruncation
from pipeline.transforms.lr_resize import AntialiasedResize
from pipeline.transforms.lr_thick_slice import ThickSlice


@pytest.mark.parametrize(
    "axes, dims, expected",
    [((1, 2), 3, (1, 2)), ((-2, -1), 3, (1, 2)), ((-1,), 2, (1,)), (None, 2, (0, 1)), (0, 3, (0,))],
)
def test_normalize_axes(axes, dims, expected):
    assert normalize_axes(axes, dims) == expected


@pytest.mark.parametrize("axes, dims", [((0, 3), 3), ((2,), 2), ((1, 1), 3), ((), 3), ((0.5,), 3), ((True,), 3)])
def test_normalize_axes_ill_arg(axes, dims):
    with pytest.raises(ValueError):
        normalize_axes(axes, dims)


def test_normalize_factors():
    assert normalize_factors(2, 3, integer=True) == (2.0, 2.0, 2.0)
    assert normalize_factors((1.5, 2), 2, integer=False) == (1.5, 2.0)
    assert normalize_factors((2, 3), None, integer=True) == (2.0, 3.0)


@pytest.mark.parametrize(
    "factors, n_axes, integer",
    [((2, 2), 3, True), (0.5, 1, False), (0, 1, True), (1.5, 1, True), (float("nan"), 1, False), ("2", 1, False)],
)
def test_normalize_factors_ill_arg(factors, n_axes, integer):
    with pytest.raises(ValueError):
        normalize_factors(factors, n_axes, integer=integer)


@pytest.mark.parametrize("sigma", [0.6, 0.85, 2.0, 5.3])
def test_gaussian_weights_match_scipy_gaussian_filter(sigma):
    n = 40
    mat = resampling_matrix(n, np.arange(n, dtype=float), gaussian_weights(sigma), 4 * sigma)
    np.testing.assert_allclose(mat, gaussian_filter1d(np.eye(n), sigma, axis=0, mode="reflect").T, atol=1e-12)


@pytest.mark.parametrize(
    "width, centre, expected",
    [
        (3.0, 0.0, {-2: 0.125, -1: 0.875, 0: 1, 1: 0.875, 2: 0.125}),
        (2.0, 0.5, {-1: 0.125, 0: 0.875, 1: 0.875, 2: 0.125}),
        (1.0, 0.0, {-1: 0.125, 0: 0.75, 1: 0.125}),
    ],
)
def test_boxcar_weights_are_slab_integrals_of_linear_interpolant(width, centre, expected):
    idx = np.arange(-4, 5)
    w = boxcar_weights(width)(idx - centre)
    assert w == pytest.approx([expected.get(int(i), 0.0) for i in idx])
    assert w.sum() == pytest.approx(width)
    assert (w * (idx - centre)).sum() == pytest.approx(0.0, abs=1e-12)  # no shift: ramps are reproduced


def test_resampling_matrix_rows_and_reflection():
    n = 6
    mat = resampling_matrix(n, lr_centres(3, 2.0), boxcar_weights(3.0), 2.0)
    assert mat.shape == (3, 6)
    np.testing.assert_allclose(mat.sum(1), 1.0)
    # slab 0 covers voxel coordinates [-1, 2]: half of (mirrored) voxel -1, i.e. of voxel 0, then 0, 1, half of 2
    np.testing.assert_allclose(mat[0], np.array([1.5, 1.0, 0.5, 0.0, 0.0, 0.0]) / 3.0)
    np.testing.assert_allclose(mat[1], np.array([0.0, 0.5, 1.0, 1.0, 0.5, 0.0]) / 3.0)


def _chain(img: MetaTensor) -> MetaTensor:
    return ThickSlice(4.0, axis=2, gap_mm=2.0)(AntialiasedResize(2, axes=(0, 1))(img))


def test_history():
    img = MetaTensor(torch.rand(1, 16, 16, 24), affine=torch.diag(torch.tensor([1.0, 1.0, 1.5, 1.0])))
    out = _chain(img)
    history = out.meta["degradation_history"]
    assert [r["method"] for r in history] == ["antialiased_resize", "thick_slice"]
    assert out.meta["degradation"] == history[-1]
    assert out.meta["degradation"]["factors"] == [1.0, 1.0, 4.0]
    assert history[0]["input_spacing_mm"] == [1.0, 1.0, 1.5] and history[-1]["output_spacing_mm"] == [2.0, 2.0, 6.0]
    json.dumps(out.meta["degradation_history"])
    assert "degradation" not in img.meta  # the input is left alone
    again = KSpaceTruncation(2, axes=(0,))(out)
    assert len(again.meta["degradation_history"]) == 3 and len(out.meta["degradation_history"]) == 2


def test_collate_degraded_batch():
    imgs = [MetaTensor(torch.rand(1, 16, 16, 12)) for _ in range(2)]
    degrade = BlurDownsample(2, noise="rician")
    batch = list_data_collate([{"image": degrade.set_random_state(i)(x)} for i, x in enumerate(imgs)])
    assert batch["image"].shape == (2, 1, 8, 8, 6)


@pytest.mark.parametrize(
    "transform",
    [KSpaceTruncation(), BlurDownsample(2), AntialiasedResize(2), ThickSlice(2.0)],
    ids=lambda t: type(t).__name__,
)
def test_without_meta_tracking(transform):
    set_track_meta(False)
    try:
        out = transform(MetaTensor(torch.rand(1, 8, 8, 8)))
    finally:
        set_track_meta(True)
    assert type(out) is torch.Tensor and out.ndim == 4
