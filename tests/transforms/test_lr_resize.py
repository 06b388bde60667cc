# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Antialiased bicubic downsampling ("bicubic" LR of RRLSRN / MRLNet / MSRNTV)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.data import MetaTensor

from pipeline.transforms.grid import spacing_from_affine
from pipeline.transforms.lr_resize import AntialiasedResize, AntialiasedResized

SPACING = np.array([1.2, 0.9, 3.0])


def meta_volume(shape: tuple[int, ...]) -> MetaTensor:
    affine = np.eye(4)
    affine[: len(shape), : len(shape)] = np.diag(SPACING[: len(shape)])
    return MetaTensor(torch.rand(1, *shape), affine=torch.as_tensor(affine))


@pytest.mark.parametrize(
    "shape, zoom, axes",
    [
        ((32, 32, 16), 2, (0, 1)),
        ((33, 31, 8), 3, (0, 1)),
        ((30, 16, 20), (1.5, 2.5), (0, 2)),
        ((32, 30), 2, (0, 1)),
        ((16, 16, 16), 2, None),
    ],
)
def test_shapes_spacing_and_meta(shape, zoom, axes):
    out = AntialiasedResize(zoom, axes=axes)(meta_volume(shape))
    dims = len(shape)
    axes_n = list(range(dims)) if axes is None else list(axes)
    full = np.ones(dims)
    full[axes_n] = zoom
    assert tuple(out.shape[1:]) == tuple(int(np.floor(n / f + 1e-6)) for n, f in zip(shape, full))
    np.testing.assert_allclose(spacing_from_affine(out.affine)[:dims], SPACING[:dims] * full, atol=1e-12)
    record = out.meta["degradation"]
    assert record["method"] == "antialiased_resize" and record["antialias"] is True
    assert record["interpolation"] == "bicubic"
    assert record["zoom"] == full.tolist() and record["axes"] == axes_n


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_matches_torch_antialiased_bicubic_away_from_borders(factor):
    vol = torch.rand(1, 12 * factor, 10 * factor, 3, dtype=torch.float64)
    out = AntialiasedResize(factor, axes=(0, 1))(vol).as_tensor()
    slices = vol.permute(3, 0, 1, 2)  # (Z, C, X, Y): torch's 2D antialiased bicubic slice by slice
    ref = F.interpolate(slices, scale_factor=1 / factor, mode="bicubic", antialias=True, align_corners=False)
    torch.testing.assert_close(out[:, 2:-2, 2:-2], ref.permute(1, 2, 3, 0)[:, 2:-2, 2:-2])


def test_checkerboard_is_not_aliased():
    idx = np.indices((32, 32, 4))
    board = torch.as_tensor((-1.0) ** (idx[0] + idx[1]), dtype=torch.float32)[None]
    decimated = board[:, ::2, ::2]  # plain decimation: the Nyquist pattern aliases to a constant
    out = AntialiasedResize(2, axes=(0, 1))(board).as_tensor()
    residual, aliased = out.abs().mean().item(), decimated.abs().mean().item()
    print(f"checkerboard mean |residual|: antialiased {residual:.3g}, decimated {aliased:.3g}")
    assert aliased == 1.0
    assert residual < 0.1 * aliased
    assert out[:, 2:-2, 2:-2].abs().max() < 1e-5  # zero response at the HR Nyquist frequency


def test_constant_and_untouched_axis():
    img = torch.linspace(0, 1, 7).view(1, 1, 1, 7).expand(1, 10, 12, 7)
    torch.testing.assert_close(AntialiasedResize(2)(img).as_tensor(), img[:, :5, :6])


def test_dict_and_missing_keys():
    img = meta_volume((16, 16, 4))
    out = AntialiasedResized(["image", "seg"], 2, allow_missing_keys=True)({"image": img})
    torch.testing.assert_close(out["image"], AntialiasedResize(2)(img))
    with pytest.raises(KeyError):
        AntialiasedResized("seg")({"image": img})


@pytest.mark.parametrize("kind", ["numpy", "tensor"])
def test_plain_inputs(kind):
    arr = np.random.default_rng(0).random((2, 12, 10, 8)).astype(np.float32)
    out = AntialiasedResize(2)(arr if kind == "numpy" else torch.as_tensor(arr))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 6, 5, 8) and out.dtype == torch.float32


def test_ill_arg():
    with pytest.raises(ValueError):
        AntialiasedResize(0.5)
    with pytest.raises(ValueError):
        AntialiasedResize((2, 2, 2), axes=(0, 1))
    with pytest.raises(ValueError):
        AntialiasedResize(2, axes=(0, 0))
    with pytest.raises(ValueError):
        AntialiasedResize(2, axes=(0, 5))
    with pytest.raises(ValueError):
        AntialiasedResize(2, axes=(0, 2))(torch.rand(1, 8, 8))
    with pytest.raises(ValueError):
        AntialiasedResize(9)(torch.rand(1, 8, 8, 8))
