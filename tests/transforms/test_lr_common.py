# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Shared LR-synthesis machinery: axis/zoom parsing, resampling matrices, metadata records."""

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
    finalize_output,
    normalize_zoom,
    resampling_matrix,
)
from pipeline.transforms.grid import spacing_from_affine
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


def test_normalize_zoom():
    assert normalize_zoom(2, 3, integer=True) == (2.0, 2.0, 2.0)
    assert normalize_zoom((1.5, 2), 2, integer=False) == (1.5, 2.0)
    assert normalize_zoom((2, 3), None, integer=True) == (2.0, 3.0)


@pytest.mark.parametrize(
    "zoom, n_axes, integer",
    [((2, 2), 3, True), (0.5, 1, False), (0, 1, True), (1.5, 1, True), (float("nan"), 1, False), ("2", 1, False)],
)
def test_normalize_zoom_ill_arg(zoom, n_axes, integer):
    with pytest.raises(ValueError):
        normalize_zoom(zoom, n_axes, integer=integer)


@pytest.mark.parametrize("grid, spacing", [("lr", [2.0, 1.0, 4.0]), ("hr", [1.0, 1.0, 1.0])])
def test_finalize_output_takes_the_sr_ratio_and_the_grid(grid, spacing):
    img = MetaTensor(torch.rand(1, 8, 8, 8))
    out = finalize_output(img.as_tensor(), img, method="m", axes=(0, 2), zoom=[2, 1, 4], output_grid=grid, params={})
    assert spacing_from_affine(out.affine).tolist() == spacing  # the grid change is 1 / zoom on the LR grid
    assert out.meta["degradation"]["zoom"] == [2.0, 1.0, 4.0] and out.meta["degradation"]["output_grid"] == grid
    with pytest.raises(ValueError, match="output_grid"):
        finalize_output(img.as_tensor(), img, method="m", axes=(0,), zoom=[2, 1, 1], output_grid="mm", params={})


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: BlurDownsample(axes=(0, 1), **kw),
        lambda **kw: AntialiasedResize(axes=(0, 1), **kw),
        lambda **kw: KSpaceTruncation(axes=(0, 1), output_grid="lr", **kw),
    ],
    ids=["blur", "resize", "kspace"],
)
def test_factors_is_a_deprecated_alias_of_zoom(make):
    img = MetaTensor(torch.rand(1, 8, 8, 4))
    with pytest.warns(FutureWarning, match="`factors` has been deprecated since version 0.1.0.*removed in version 0.2"):
        old = make(factors=(2, 2))
    new = make(zoom=(2, 2))
    assert old.zoom == new.zoom == (2.0, 2.0)
    torch.testing.assert_close(old(img), new(img))


def test_dictionary_transforms_take_factors_for_one_version():
    from pipeline.transforms import AntialiasedResized, BlurDownsampled, KSpaceTruncationd

    img = MetaTensor(torch.rand(1, 8, 8, 4))
    for cls in (AntialiasedResized, BlurDownsampled, KSpaceTruncationd):
        with pytest.warns(FutureWarning, match="zoom"):
            out = cls("image", factors=2, axes=(0, 1))({"image": img})["image"]
        assert out.meta["degradation"]["zoom"][:2] == [2.0, 2.0]


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
    assert out.meta["degradation"]["zoom"] == [1.0, 1.0, 4.0]
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
