# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Blur + decimate + noise (MFCN degradation L = D S H + e)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy.ndimage import gaussian_filter

from pipeline.transforms.grid import spacing_from_affine
from pipeline.transforms.lr_blur import BlurDownsample, BlurDownsampled
from pipeline.transforms.lr_common import FWHM_TO_SIGMA

SPACING = np.array([1.2, 0.9, 3.0])


def meta_volume(shape: tuple[int, ...], seed: int = 0) -> MetaTensor:
    data = torch.as_tensor(np.random.default_rng(seed).random((1, *shape)) * 100, dtype=torch.float32)
    affine = np.eye(4)
    affine[: len(shape), : len(shape)] = np.diag(SPACING[: len(shape)])
    return MetaTensor(data, affine=torch.as_tensor(affine))


@pytest.mark.parametrize(
    "shape, zoom, axes",
    [
        ((32, 32, 32), 2, None),
        ((33, 30, 17), (2, 3), (0, 1)),
        ((32, 32, 16), 4, (-1,)),
        ((31, 24), 2, None),
        ((16, 16, 8), (1, 2), (0, 1)),
    ],
)
def test_shapes_spacing_and_meta(shape, zoom, axes):
    out = BlurDownsample(zoom, axes=axes)(meta_volume(shape))
    dims = len(shape)
    axes_n = list(range(dims)) if axes is None else [a % dims for a in axes]
    full = np.ones(dims)
    full[axes_n] = zoom
    assert tuple(out.shape[1:]) == tuple(n // int(f) for n, f in zip(shape, full))
    np.testing.assert_allclose(spacing_from_affine(out.affine)[:dims], SPACING[:dims] * full, atol=1e-12)
    record = out.meta["degradation"]
    assert record["method"] == "blur_downsample" and record["output_grid"] == "lr" and record["axes"] == axes_n
    assert record["zoom"] == full.tolist()
    assert record["fwhm_mm"] == pytest.approx([f * s if f > 1 else 0.0 for f, s in zip(full, SPACING)])
    assert record["noise"] == "none" and record["noise_sigma"] == 0.0


@pytest.mark.parametrize("factor", [3, 5])
def test_odd_factor_equals_scipy_gaussian_filter_then_decimation(factor):
    img = meta_volume((33, 30, 21))
    out = BlurDownsample(factor)(img)
    sigma = factor * FWHM_TO_SIGMA
    centre = (factor - 1) // 2
    ref = gaussian_filter(img.numpy()[0].astype(np.float64), sigma, mode="reflect", truncate=4.0)
    ref = ref[centre::factor, centre::factor, centre::factor][: out.shape[1], : out.shape[2], : out.shape[3]]
    np.testing.assert_allclose(out.numpy()[0], ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_samples_block_centres(factor):
    """A linear ramp is unchanged by a symmetric PSF: LR voxel j reads the ramp at f j + (f-1)/2."""
    n = 16 * factor
    ramp = torch.arange(n, dtype=torch.float64).view(1, n, 1, 1).expand(1, n, 4, 3)
    out = BlurDownsample(factor, axes=(0,))(ramp)
    expected = factor * torch.arange(16, dtype=torch.float64) + (factor - 1) / 2
    torch.testing.assert_close(out[0, 4:-4, 0, 0].as_tensor(), expected[4:-4])


def test_untouched_axes_and_constant():
    z_profile = torch.linspace(0, 1, 10).view(1, 1, 1, 10).expand(2, 12, 12, 10)
    out = BlurDownsample(2, axes=(0, 1))(z_profile)
    torch.testing.assert_close(out.as_tensor(), z_profile[:, :6, :6])
    constant = BlurDownsample(3)(torch.full((1, 9, 9, 9), 5.0)).as_tensor()
    torch.testing.assert_close(constant, torch.full((1, 3, 3, 3), 5.0))


@pytest.mark.parametrize("noise", ["gaussian", "rician"])
def test_noise_level_and_determinism(noise):
    img = torch.full((1, 64, 64, 16), 100.0)
    t = BlurDownsample(2, axes=(0, 1), noise=noise, noise_std=0.05)
    a = t.set_random_state(seed=7)(img)
    b = t.set_random_state(seed=7)(img)
    c = t.set_random_state(seed=8)(img)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert a.meta["degradation"]["noise"] == noise and a.meta["degradation"]["noise_sigma"] == pytest.approx(5.0)
    assert float(a.std()) == pytest.approx(5.0, rel=0.05)
    if noise == "rician":
        assert float(a.min()) >= 0.0
    torch.testing.assert_close(t(img, randomize=False), t(img, randomize=False))  # the last draw is reused


def test_dict_version_random_state_and_missing_keys():
    data = {"image": meta_volume((16, 16, 8)), "t2": meta_volume((16, 16, 8), seed=1), "keep": "x"}
    t = BlurDownsampled(["image", "t2", "mask"], 2, noise="gaussian", allow_missing_keys=True)
    a = t.set_random_state(seed=3)(data)
    b = t.set_random_state(seed=3)(data)
    c = t.set_random_state(seed=4)(data)
    assert a["image"].shape == (1, 8, 8, 4) and a["keep"] == "x" and "mask" not in a
    torch.testing.assert_close(a["image"], b["image"])
    assert not torch.allclose(a["image"], c["image"])
    noise_image = a["image"] - BlurDownsample(2)(data["image"])
    noise_t2 = a["t2"] - BlurDownsample(2)(data["t2"])
    assert not torch.allclose(noise_image, noise_t2)  # each key gets its own draw
    with pytest.raises(KeyError):
        BlurDownsampled("mask")(data)


@pytest.mark.parametrize("kind", ["numpy", "tensor"])
def test_plain_inputs(kind):
    arr = np.random.default_rng(0).random((1, 12, 10, 8))
    out = BlurDownsample(2)(arr if kind == "numpy" else torch.as_tensor(arr))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 6, 5, 4)
    assert out.meta["degradation"]["output_spacing_mm"] == [2.0, 2.0, 2.0]


def test_ill_arg():
    with pytest.raises(ValueError):
        BlurDownsample(1.5)
    with pytest.raises(ValueError):
        BlurDownsample(0)
    with pytest.raises(ValueError):
        BlurDownsample((2, 2), axes=(0, 1, 2))
    with pytest.raises(ValueError):
        BlurDownsample(2, noise="poisson")
    with pytest.raises(ValueError):
        BlurDownsample(2, noise="gaussian", noise_std=-0.1)
    with pytest.raises(ValueError):
        BlurDownsample(2, axes=(0, 0))
    with pytest.raises(ValueError):
        BlurDownsample(2, axes=(2,))(torch.rand(1, 8, 8))
    with pytest.raises(ValueError):
        BlurDownsample(16)(torch.rand(1, 8, 8, 8))
