# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""World geometry of every grid-changing LR synthesis: LR voxel centres sit at the centres of
the HR blocks / slabs they came from (the half-voxel shift of ``zoomed_affine``), for a RAS
diagonal affine and an oblique LPS-style affine, and image content does not move."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.transforms.grid import spacing_from_affine, voxel_to_world
from pipeline.transforms.lr_blur import BlurDownsample
from pipeline.transforms.lr_kspace import KSpaceTruncation
from pipeline.transforms.lr_resize import AntialiasedResize
from pipeline.transforms.lr_thick_slice import ThickSlice

SHAPE = (32, 30, 28)
SPACING = np.array([1.2, 0.9, 3.0])


def _rotation(axis: int, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = [a for a in range(3) if a != axis]
    rot = np.eye(3)
    rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
    return rot


def _affine(kind: str) -> np.ndarray:
    affine = np.eye(4)
    if kind == "ras":
        affine[:3, :3] = np.diag(SPACING)
        affine[:3, 3] = [-10.0, 5.0, 2.0]
    else:  # oblique, LPS-style: rotated about z and x, first two columns negative
        direction = _rotation(2, 25.0) @ _rotation(0, 15.0) @ np.diag([-1.0, -1.0, 1.0])
        affine[:3, :3] = direction @ np.diag(SPACING)
        affine[:3, 3] = [90.5, 126.2, -72.3]
    return affine


# (transform, LR spacing / HR spacing along each spatial axis)
CASES = [
    (KSpaceTruncation((2, 2), axes=(1, 2), output_grid="lr"), (1, 2, 2)),
    (KSpaceTruncation(3, axes=(0,), output_grid="lr"), (3, 1, 1)),
    (BlurDownsample(2), (2, 2, 2)),
    (BlurDownsample((3, 2), axes=(0, 2)), (3, 1, 2)),
    (AntialiasedResize(2), (2, 2, 1)),
    (AntialiasedResize(2.5, axes=(1,)), (1, 2.5, 1)),
    (ThickSlice(6.0, axis=2, gap_mm=1.5), (1, 1, 2.5)),
    (ThickSlice(3.0, axis=0, gap_mm=0.6, profile="boxcar"), (3, 1, 1)),
]
IDS = ["kspace-2x2", "kspace-3", "blur-2", "blur-3x2", "resize-2", "resize-2.5", "thick-gauss", "thick-boxcar"]


def _blob(affine: np.ndarray) -> MetaTensor:
    idx = np.indices(SHAPE).astype(np.float64)
    centre, sigma = np.array([14.3, 13.6, 12.2]), np.array([3.0, 3.5, 2.5])
    blob = 100.0 * np.exp(-0.5 * (((idx - centre[:, None, None, None]) / sigma[:, None, None, None]) ** 2).sum(0))
    return MetaTensor(torch.as_tensor(blob, dtype=torch.float32)[None], affine=torch.as_tensor(affine))


def _world_com(img: MetaTensor) -> np.ndarray:
    w = img.numpy()[0].astype(np.float64)
    com = (np.indices(w.shape) * w).reshape(3, -1).sum(1) / w.sum()
    return voxel_to_world(img.affine, com)[0]


@pytest.mark.parametrize("kind", ["ras", "oblique"])
@pytest.mark.parametrize("transform, zoom", CASES, ids=IDS)
def test_lr_voxel_centres_are_hr_block_centres(transform, zoom, kind):
    hr_affine = _affine(kind)
    out = transform(_blob(hr_affine))
    zoom = np.asarray(zoom, dtype=np.float64)
    lr_shape = out.shape[1:]
    assert tuple(lr_shape) == tuple(int(np.floor(n / f + 1e-6)) for n, f in zip(SHAPE, zoom))
    np.testing.assert_allclose(spacing_from_affine(out.affine), SPACING * zoom, rtol=0, atol=1e-9)
    directions = np.asarray(out.affine)[:3, :3] / (SPACING * zoom)
    np.testing.assert_allclose(directions, hr_affine[:3, :3] / SPACING, atol=1e-12)
    for lr_idx in itertools.product(*[(0, 1, m // 2, m - 1) for m in lr_shape]):
        j = np.asarray(lr_idx, dtype=np.float64)
        # LR voxel j spans HR voxel coordinates [j f - 1/2, (j + 1) f - 1/2]; its centre:
        lo, hi = j * zoom - 0.5, (j + 1) * zoom - 0.5
        lr_world = voxel_to_world(out.affine, j)[0]
        np.testing.assert_allclose(lr_world, voxel_to_world(hr_affine, (lo + hi) / 2)[0], rtol=0, atol=1e-6)
        if np.all(zoom == np.round(zoom)):  # integer blocks: the mean of the HR voxel centres
            block = itertools.product(*[range(int(a * f), int(a * f + f)) for a, f in zip(lr_idx, zoom)])
            np.testing.assert_allclose(lr_world, voxel_to_world(hr_affine, list(block)).mean(0), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["ras", "oblique"])
@pytest.mark.parametrize("transform, zoom", CASES, ids=IDS)
def test_blob_centre_of_mass_does_not_move(transform, zoom, kind):
    hr = _blob(_affine(kind))
    out = transform(hr)
    shift_mm = _world_com(out) - _world_com(hr)
    shift_lr_voxels = np.linalg.solve(np.asarray(out.affine)[:3, :3], shift_mm)
    print(f"{type(transform).__name__} {zoom} {kind}: centre-of-mass shift {shift_lr_voxels} LR voxels")
    assert np.all(np.abs(shift_lr_voxels) < 0.5)  # within half an LR voxel (required)
    assert np.all(np.abs(shift_lr_voxels) < 0.01)  # measured <= 1.4e-3; a half-HR-voxel centring error is >= 0.1


def test_2d_image_with_oblique_affine():
    affine = _affine("oblique")
    out = AntialiasedResize(2)(MetaTensor(torch.rand(1, 32, 30), affine=torch.as_tensor(affine)))
    assert out.shape == (1, 16, 15)
    for j in [(0, 0), (15, 14), (7, 3)]:
        hr = [2 * j[0] + 0.5, 2 * j[1] + 0.5, 0.0]
        np.testing.assert_allclose(voxel_to_world(out.affine, [*j, 0]), voxel_to_world(affine, hr), rtol=0, atol=1e-6)
