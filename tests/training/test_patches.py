"""Aligned LR/HR patch sampling: pairing, centres inside the mask, determinism, argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.training import RandPairedPatchd, valid_patch_starts

INPUT_SHAPE = (10, 12, 8)


def make_pair(zoom: tuple[int, int, int], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random input volume (1, *INPUT_SHAPE), its HR = each voxel repeated ``zoom`` times, and a ball mask."""
    rng = np.random.default_rng(seed)
    lr = torch.from_numpy(rng.random((1, *INPUT_SHAPE), dtype=np.float32))
    hr = lr
    for axis, z in enumerate(zoom):
        hr = hr.repeat_interleave(z, dim=axis + 1)
    grid = np.stack(np.meshgrid(*[np.arange(n) - n / 2 + 0.5 for n in hr.shape[1:]], indexing="ij"))
    radius = 0.3 * min(hr.shape[1:])
    mask = torch.from_numpy((grid**2).sum(0) < radius**2)[None]
    return {"lr": lr, "hr": hr, "mask": mask, "scan_id": "s0"}


CASES_3D = [((1, 1, 1), (4, 4, 4)), ((2, 2, 1), (4, 5, 3)), ((1, 2, 3), (3, 3, 2))]
CASES_2D = [((2, 2, 1), (5, 4), 2), ((1, 1, 1), (6, 6), 0), ((1, 2, 2), (4, 4), 0)]


@pytest.mark.parametrize("zoom,patch", CASES_3D)
def test_3d_pairs_are_aligned(zoom, patch):
    data = make_pair(zoom)
    sampler = RandPairedPatchd(patch, zoom=zoom, num_samples=6)
    sampler.set_random_state(seed=1)
    for sample in sampler(data):
        assert sample["lr"].shape == (1, *patch)
        assert sample["hr"].shape == (1, *(p * z for p, z in zip(patch, zoom)))
        expected = sample["lr"]
        for axis, z in enumerate(zoom):
            expected = expected.repeat_interleave(z, dim=axis + 1)
        torch.testing.assert_close(sample["hr"], expected)
        assert sample["scan_id"] == "s0" and "mask" not in sample


@pytest.mark.parametrize("zoom,patch,slice_axis", CASES_2D)
def test_2d_pairs_are_aligned_slices(zoom, patch, slice_axis):
    data = make_pair(zoom)
    sampler = RandPairedPatchd(patch, zoom=zoom, num_samples=5, slice_axis=slice_axis)
    sampler.set_random_state(seed=2)
    in_plane = [z for axis, z in enumerate(zoom) if axis != slice_axis]
    for sample in sampler(data):
        assert sample["lr"].shape == (1, *patch)
        assert sample["hr"].shape == (1, patch[0] * in_plane[0], patch[1] * in_plane[1])
        expected = sample["lr"].repeat_interleave(in_plane[0], dim=1).repeat_interleave(in_plane[1], dim=2)
        torch.testing.assert_close(sample["hr"], expected)
        # the HR patch is the slice at the recorded centre, cropped around it
        hr_patch = list(patch)
        hr_patch.insert(slice_axis, 1)
        hr_patch = [p * z for p, z in zip(hr_patch, zoom)]
        start = [c - h // 2 for c, h in zip(sample["patch_centre"].tolist(), hr_patch)]
        crop = data["hr"][(slice(None), *(slice(s, s + h) for s, h in zip(start, hr_patch)))]
        torch.testing.assert_close(sample["hr"], crop.squeeze(1 + slice_axis))


@pytest.mark.parametrize("zoom,patch", CASES_3D)
def test_patch_centres_inside_mask_and_patches_inside_volume(zoom, patch):
    data = make_pair(zoom)
    sampler = RandPairedPatchd(patch, zoom=zoom, num_samples=50)
    sampler.set_random_state(seed=3)
    hr_patch = [p * z for p, z in zip(patch, zoom)]
    for sample in sampler(data):
        centre = sample["patch_centre"].tolist()
        assert bool(data["mask"][(0, *centre)])
        start = [c - h // 2 for c, h in zip(centre, hr_patch)]
        assert all(s >= 0 and s % z == 0 for s, z in zip(start, zoom))
        assert all(s + h <= n for s, h, n in zip(start, hr_patch, data["hr"].shape[1:]))
        crop = data["hr"][(slice(None), *(slice(s, s + h) for s, h in zip(start, hr_patch)))]
        torch.testing.assert_close(sample["hr"], crop)


def test_every_mask_voxel_that_fits_can_be_a_centre():
    mask = np.zeros((8, 8, 8), dtype=bool)
    mask[3, 4, 5] = True
    mask[0, 0, 0] = True  # too close to the border for a 4^3 patch
    starts = valid_patch_starts(mask, (8, 8, 8), (4, 4, 4), (1, 1, 1))
    np.testing.assert_array_equal(starts, [[1, 2, 3]])
    # on a zoom-2 grid only centres at start * 2 + 4 // 2 * 2 are reachable
    starts = valid_patch_starts(np.ones((8, 8, 2), dtype=bool), (4, 4, 2), (2, 2, 1), (2, 2, 1))
    assert len(starts) == 3 * 3 * 2


def test_deterministic_with_seed():
    data = make_pair((2, 2, 1))

    def centres(seed: int) -> list[list[int]]:
        sampler = RandPairedPatchd((4, 4), zoom=(2, 2, 1), num_samples=8, slice_axis=2)
        sampler.set_random_state(seed=seed)
        return [s["patch_centre"].tolist() for s in sampler(data)]

    assert centres(7) == centres(7)
    assert centres(7) != centres(8)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"patch_size": (4, 4)},  # 3D needs 3 sizes
        {"patch_size": (4, 4, 4), "slice_axis": 2},  # 2D needs 2 sizes
        {"patch_size": (4, 4), "zoom": (2, 2, 2), "slice_axis": 2},  # zoom across the slice axis
        {"patch_size": (4, 4, 4), "zoom": (1.5, 1, 1)},
        {"patch_size": (4, 4, 4), "num_samples": 0},
        {"patch_size": (0, 4, 4)},
        {"patch_size": (4, 4), "slice_axis": 3},
    ],
)
def test_ill_arg(kwargs):
    with pytest.raises(ValueError):
        RandPairedPatchd(**kwargs)


def test_ill_data():
    data = make_pair((1, 1, 1))
    with pytest.raises(ValueError, match="larger than"):
        RandPairedPatchd((20, 4, 4))(data)
    with pytest.raises(ValueError, match="zoom"):
        RandPairedPatchd((4, 4, 4), zoom=(2, 2, 1))(data)
    empty = dict(data, mask=torch.zeros_like(data["mask"]))
    with pytest.raises(ValueError, match="mask"):
        RandPairedPatchd((4, 4, 4))(empty)
