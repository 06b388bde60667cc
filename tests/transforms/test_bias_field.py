# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.transforms.bias_field import N4BiasFieldCorrection, N4BiasFieldCorrectiond, evaluate_bspline_lattice

FAST = {"shrink_factor": 2, "iterations": (20, 20, 20)}


def phantom(spacing=(2.0, 2.0, 2.5), shape=(40, 48, 36), seed: int = 0):
    """Three tissue classes in an ellipsoid, times a smooth field scaled to 0.8..1.2 inside it.

    Returns the biased (1, X, Y, Z) MetaTensor, the clean volume, the true field, the object
    mask and the brightest class's mask (all (X, Y, Z))."""
    sp = np.asarray(spacing)
    half = np.asarray(shape) * sp / 2
    x, y, z = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, sp)], indexing="ij")
    r = np.sqrt((x / (0.85 * half[0])) ** 2 + (y / (0.85 * half[1])) ** 2 + (z / (0.85 * half[2])) ** 2)
    obj = r <= 1
    blobs = np.sin(x / 6) * np.sin(y / 7) * np.sin(z / 8) > 0.2
    classes = np.where(obj, 1 + (r < 0.7) + ((r < 0.7) & blobs), 0)
    clean = np.choose(classes, [0.0, 60.0, 100.0, 130.0]) + np.random.default_rng(seed).normal(0, 2, shape) * obj
    clean = clean.clip(0)
    u, v, w = x / half[0], y / half[1], z / half[2]
    poly = 0.9 * u - 0.6 * v + 1.0 * w + 0.5 * u * v - 0.7 * w**2
    lo, hi = poly[obj].min(), poly[obj].max()
    field = 0.8 + 0.4 * (poly - lo) / (hi - lo)
    img = MetaTensor(
        torch.from_numpy((clean * field).astype(np.float32))[None],
        affine=torch.from_numpy(np.diag([*sp, 1.0])),
        meta={"filename_or_obj": "sub-07_T1w.nii.gz"},
    )
    return img, clean, field, obj, classes == 3


def cv(values: np.ndarray) -> float:
    return float(values.std() / values.mean())


def test_bspline_lattice_reproduces_linear_functions():
    coords = [np.linspace(0, 4, 9), np.linspace(-0.5, 3.5, 5), np.linspace(0, 1, 3)]
    np.testing.assert_allclose(evaluate_bspline_lattice(np.full((7, 7, 4), 2.5), coords), 2.5)
    j = np.arange(7)[:, None, None] - 1.0  # control point j sits at parametric u = j - 1
    lattice = np.broadcast_to(0.3 * j, (7, 7, 4))
    expected = np.broadcast_to(0.3 * coords[0][:, None, None], (9, 5, 3))
    np.testing.assert_allclose(evaluate_bspline_lattice(lattice, coords), expected, atol=1e-12)


def test_recovers_known_field():
    img, clean, field, obj, bright = phantom()
    corrected, estimate = N4BiasFieldCorrection(return_field=True, **FAST)(img, mask=obj)
    for out in (corrected, estimate):
        assert isinstance(out, MetaTensor) and out.dtype == torch.float32 and out.shape == img.shape
        torch.testing.assert_close(out.affine, img.affine)
    corrected, estimate = corrected[0].numpy(), estimate[0].numpy()
    assert cv(corrected[bright]) < 0.5 * cv(img[0].numpy()[bright])
    assert abs(cv(corrected[bright]) - cv(clean[bright])) / cv(clean[bright]) < 0.25
    assert np.corrcoef(estimate[obj], field[obj])[0, 1] > 0.95
    assert estimate[obj].mean() == pytest.approx(1.0, rel=1e-4)  # the input's intensity units
    np.testing.assert_allclose(corrected * estimate, img[0].numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("mesh", [{"spline_distance_mm": 60.0}, {"num_control_points": (5, 6, 5)}])
def test_mesh_options(mesh):
    img, _, field, obj, bright = phantom()
    corrected, estimate = N4BiasFieldCorrection(return_field=True, **FAST, **mesh)(img, mask=obj)
    assert cv(corrected[0].numpy()[bright]) < 0.5 * cv(img[0].numpy()[bright])
    assert np.corrcoef(estimate[0].numpy()[obj], field[obj])[0, 1] > 0.9


def test_default_mask_and_plain_arrays():
    img, clean, _, _, bright = phantom(seed=1)
    corrected = N4BiasFieldCorrection(**FAST)(img.numpy())  # Otsu foreground mask, 1 mm spacing assumed
    assert isinstance(corrected, np.ndarray) and corrected.dtype == np.float32
    assert cv(corrected[0][bright]) < 0.5 * cv(img[0].numpy()[bright])


def test_negative_values():
    img, _, _, obj, _ = phantom(seed=2)
    shifted = img - 5.0
    with pytest.raises(ValueError, match=r"sub-07_T1w\.nii\.gz.*minimum is -5"):
        N4BiasFieldCorrection(**FAST)(shifted, mask=obj)
    reference = N4BiasFieldCorrection(**FAST)(img, mask=obj)
    out = N4BiasFieldCorrection(shift_negative=True, **FAST)(shifted, mask=obj)
    # u = (v - m) / b + m with m = -5: the same correction as the unshifted volume, shifted back
    np.testing.assert_allclose(out.numpy(), reference.numpy() - 5.0, atol=1e-2)


def test_dict_version():
    img, _, _, obj, bright = phantom(seed=3)
    mask = MetaTensor(torch.from_numpy(obj.astype(np.uint8))[None], affine=img.affine)
    data = {"image": img, "brain": mask}
    t = N4BiasFieldCorrectiond(
        keys=["image", "missing"],
        mask_key="brain",
        field_key=["field", "field2"],
        return_field=True,
        allow_missing_keys=True,
        **FAST,
    )
    out = t(data)
    assert set(out) == {"image", "brain", "field"} and out["brain"] is mask
    torch.testing.assert_close(out["image"].affine, img.affine)
    torch.testing.assert_close(out["field"].affine, img.affine)
    assert cv(out["image"][0].numpy()[bright]) < 0.5 * cv(img[0].numpy()[bright])
    assert set(N4BiasFieldCorrectiond(keys="image", **FAST)(data)) == {"image", "brain"}
    with pytest.raises(KeyError):
        N4BiasFieldCorrectiond(keys="missing", **FAST)(data)


def test_ill_arg():
    for kwargs in (
        {"shrink_factor": 0},
        {"shrink_factor": 1.5},
        {"iterations": ()},
        {"iterations": (50, 0)},
        {"convergence_threshold": -1.0},
        {"spline_distance_mm": 0.0},
        {"num_control_points": 3},
        {"spline_distance_mm": 50.0, "num_control_points": 6},
        {"histogram_bins": 1},
        {"bias_field_fwhm": 0.0},
    ):
        with pytest.raises(ValueError):
            N4BiasFieldCorrection(**kwargs)
    img, _, _, obj, _ = phantom((3.0, 3.0, 3.0), shape=(12, 12, 12))
    n4 = N4BiasFieldCorrection(**FAST)
    with pytest.raises(ValueError, match="sub-07_T1w.nii.gz.*all zero"):
        n4(img * 0)
    with pytest.raises(ValueError, match="no voxel with positive intensity"):
        n4(img, mask=np.zeros_like(obj))
    with pytest.raises(ValueError, match=r"\(1, X, Y, Z\)"):
        n4(img[0])
    with pytest.raises(ValueError, match="does not match"):
        n4(img, mask=obj[:-1])
    with pytest.raises(ValueError, match="field_key"):
        N4BiasFieldCorrectiond(keys=["a", "b"], return_field=True)
