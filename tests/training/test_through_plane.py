"""Through-plane training pairs: random acquisitions, thick axis last, aligned with the HR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor

from pipeline.training import RandThroughPlanePaird, through_plane_training_dataset
from tests.conftest import blob_volume


def volumes(shape=(20, 22, 40)) -> dict:
    hr = MetaTensor(torch.from_numpy(blob_volume(shape))[None], affine=torch.eye(4, dtype=torch.float64))
    return {"hr": hr, "mask": MetaTensor((hr.as_tensor() > 50).float(), affine=hr.affine)}


def test_random_acquisitions_cover_the_ranges_and_put_the_thick_axis_last() -> None:
    pairs = RandThroughPlanePaird(thickness_mm=(2.0, 6.0), gap_mm=(0.0, 1.0), axes=(0, 1, 2))
    pairs.set_random_state(seed=0)
    seen_axes, seen_profiles = set(), set()
    for _ in range(30):
        out = pairs(volumes())
        acq = out["acquisition"]
        assert 2.0 <= acq["thickness_mm"] <= 6.0 and 0.0 <= acq["gap_mm"] <= 1.0
        seen_axes.add(acq["axis"])
        seen_profiles.add(acq["profile"])
        shape = (20, 22, 40)
        thick_size = shape[acq["axis"]]
        assert out["lr"].shape == out["hr"].shape == out["mask"].shape
        assert out["lr"].shape[-1] <= thick_size and sorted(out["lr"].shape[1:3]) == sorted(
            s for a, s in enumerate(shape) if a != acq["axis"]
        )
        # the LR varies less along the thick axis than the HR: it is the blurred one
        assert out["lr"].diff(dim=-1).abs().mean() < out["hr"].diff(dim=-1).abs().mean()
    assert seen_axes == {0, 1, 2} and seen_profiles == {"gaussian", "boxcar"}


def test_fixed_acquisition_is_repeatable_and_scaled_like_inference() -> None:
    pairs = RandThroughPlanePaird(thickness_mm=(4.0, 4.0), gap_mm=(0.0, 0.0), profiles=("gaussian",), axes=(2,))
    a = pairs.set_random_state(seed=3)(volumes())
    b = pairs.set_random_state(seed=3)(volumes())
    torch.testing.assert_close(a["lr"], b["lr"])
    hr_scaled = a["hr"][a["mask"]]
    assert 0.5 < float(np.percentile(hr_scaled.numpy(), 99.5)) < 1.5  # divided by the LR's robust maximum


def test_dataset_gives_2d_patches_with_centres_in_the_mask(synthetic_manifest: Path) -> None:
    ds = through_plane_training_dataset(
        synthetic_manifest, [8, 8], num_samples=3, max_scans=2, seed=1, thickness_mm=(2.0, 3.0), gap_mm=(0.0, 0.0)
    )
    items = ds[0]
    assert len(items) == 3
    for item in items:
        assert item["lr"].shape == item["hr"].shape == (1, 8, 8)
        assert torch.isfinite(item["lr"]).all()


def test_domain_randomised_through_plane_pairs(synthetic_manifest: Path) -> None:
    """With a recipe, every access augments the HR anew and adds noise to the thick slices only."""
    kwargs = dict(num_samples=2, max_scans=1, seed=3, thickness_mm=(2.0, 3.0), gap_mm=(0.0, 0.0), box=[20, 20, -1])
    clean = through_plane_training_dataset(synthetic_manifest, [8, 8], domain={"noise": 0.0, "bias": 1.0}, **kwargs)
    noisy = through_plane_training_dataset(synthetic_manifest, [8, 8], domain={"noise": 1.0, "bias": 1.0}, **kwargs)
    a, b = clean[0][0], noisy[0][0]
    assert a["lr"].shape == a["hr"].shape == (1, 8, 8) and torch.isfinite(b["lr"]).all()
    torch.testing.assert_close(a["hr"], b["hr"], atol=0.05, rtol=0.05)  # same HR draw, scaled by a noisy LR
    assert not torch.allclose(a["lr"], b["lr"], atol=1e-3)
    assert not torch.equal(clean[0][0]["hr"], a["hr"])  # a new augmentation per access
