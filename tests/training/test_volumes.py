"""Per-scan preparation (LR synthesis, input grid, scaling, baseline) and the dataset builders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.inference import robust_intensity_scale
from pipeline.protocols import get_protocol
from pipeline.training import (
    BaselineSRd,
    LoadVolumed,
    SynthesizeLRd,
    input_zoom,
    scan_records,
    to_network_input,
    training_dataset,
    validation_dataset,
)
from tests.conftest import blob_volume


@pytest.fixture
def scan() -> dict[str, MetaTensor]:
    hr = MetaTensor(torch.from_numpy(blob_volume((25, 28, 20)))[None], affine=torch.eye(4))
    return {"hr": hr, "mask": MetaTensor((hr.as_tensor() > 50).to(torch.uint8), affine=torch.eye(4))}


@pytest.mark.parametrize(
    "protocol,upsampling,lr_shape",
    [
        ("bicubic-x2", "network", (12, 14, 20)),
        ("bicubic-x2", "cubic", (24, 28, 20)),
        ("bicubic-x2", "linear", (24, 28, 20)),
        ("kspace-2x2", "kspace", (25, 28, 20)),
        ("thick-4mm", "network", (25, 28, 5)),
    ],
)
def test_synthesize_shapes_and_intensity_divisor(scan, protocol, upsampling, lr_shape):
    out = SynthesizeLRd(get_protocol(protocol), upsampling)(scan)
    hr_shape = tuple(n - n % int(z) for n, z in zip((25, 28, 20), get_protocol(protocol).zoom))
    assert tuple(out["lr"].shape[1:]) == lr_shape
    assert tuple(out["hr"].shape[1:]) == hr_shape
    assert out["mask"].dtype == torch.bool and tuple(out["mask"].shape[1:]) == hr_shape
    # the HR comes back in its units divided by the intensity divisor, the LR's robust maximum
    cropped = scan["hr"][(slice(None), *(slice(0, n) for n in hr_shape))].as_tensor().float()
    torch.testing.assert_close(out["hr"].as_tensor() * out["intensity_divisor"], cropped)
    lr_grid = get_protocol(protocol).degrade(scan["hr"])
    assert out["intensity_divisor"] == pytest.approx(robust_intensity_scale(lr_grid))


def test_scale_reference_hr(scan):
    out = SynthesizeLRd(get_protocol("bicubic-x2"), "cubic", scale_reference="hr")(scan)
    assert out["intensity_divisor"] == pytest.approx(robust_intensity_scale(scan["hr"][:, :24]))
    assert float(np.percentile(out["hr"][out["hr"] > 0].numpy(), 99.5)) == pytest.approx(1.0, rel=1e-5)


def test_network_input_matches_networksr_rule(scan):
    lr = get_protocol("bicubic-x2").degrade(scan["hr"])
    assert to_network_input(lr, (2, 2, 1), "network") is lr
    cubic = to_network_input(lr, (2, 2, 1), "cubic")
    assert tuple(cubic.shape[1:]) == (24, 28, 20)
    np.testing.assert_allclose(cubic.affine.numpy(), np.eye(4), atol=1e-12)  # back on the HR grid


def test_input_zoom():
    assert input_zoom((2.0, 2.0, 1.0), "network") == (2, 2, 1)
    assert input_zoom((2.0, 2.0, 1.0), "cubic") == (1, 1, 1)
    with pytest.raises(ValueError):
        input_zoom((1.5, 1.0, 1.0), "network")


def test_baseline(scan):
    out = BaselineSRd((2, 2, 1), "cubic")(SynthesizeLRd(get_protocol("bicubic-x2"), "network")(scan))
    assert tuple(out["baseline"].shape[1:]) == tuple(out["hr"].shape[1:])


def test_ill_arg(scan):
    with pytest.raises(ValueError):
        SynthesizeLRd(get_protocol("bicubic-x2"), "bilinear")
    with pytest.raises(ValueError):
        SynthesizeLRd(get_protocol("bicubic-x2"), "cubic", scale_reference="max")
    bad = dict(scan, mask=scan["mask"][:, :-1])
    with pytest.raises(ValueError, match="shapes differ"):
        SynthesizeLRd(get_protocol("bicubic-x2"), "cubic")(bad)


def test_training_dataset(synthetic_manifest):
    ds = training_dataset(synthetic_manifest, "bicubic-x2", "cubic", 2, (8, 8), num_samples=3, seed=0)
    assert len(ds) == 3
    samples = ds[0]
    assert len(samples) == 3
    assert samples[0]["lr"].shape == (1, 8, 8) and samples[0]["hr"].shape == (1, 8, 8)
    ds3 = training_dataset(synthetic_manifest, "bicubic-x2", "network", 3, (4, 4, 4), num_samples=2, max_scans=1)
    assert len(ds3) == 1
    assert ds3[0][0]["lr"].shape == (1, 4, 4, 4) and ds3[0][0]["hr"].shape == (1, 8, 8, 4)


def test_training_dataset_is_deterministic(synthetic_manifest):
    def centres(seed: int) -> list[list[int]]:
        ds = training_dataset(synthetic_manifest, "bicubic-x2", "cubic", 2, (8, 8), num_samples=4, seed=seed)
        return [s["patch_centre"].tolist() for i in range(len(ds)) for s in ds[i]]

    assert centres(0) == centres(0)
    assert centres(0) != centres(1)


def test_validation_dataset(synthetic_manifest):
    whole = validation_dataset(synthetic_manifest, "bicubic-x2", crop_to_mask=False)
    assert len(whole) == 1  # the val split; test scans are never used in training
    assert [item["scan_id"] for item in validation_dataset(synthetic_manifest, "bicubic-x2", split="test")] == ["sub4"]
    item = whole[0]
    assert tuple(item["lr"].shape[1:]) == (12, 14, 12)
    assert item["hr"].shape == item["baseline"].shape == item["mask"].shape
    assert item["scan_id"] == "sub3"
    cropped = validation_dataset(synthetic_manifest, "bicubic-x2")[0]  # default: the brain's box
    assert cropped["mask"].sum() == item["mask"].sum()
    assert all(c <= w for c, w in zip(cropped["hr"].shape, item["hr"].shape))
    assert [2 * n for n in cropped["lr"].shape[1:3]] == list(cropped["hr"].shape[1:3])


def test_validation_dataset_adds_each_scan_under_extra_protocols(synthetic_manifest):
    both = validation_dataset(synthetic_manifest, "bicubic-x2", extra_protocols=["bicubic-x2+rician3"])
    clean, noisy = both[0], both[1]
    assert [clean["scan_id"], noisy["scan_id"]] == ["sub3", "sub3@bicubic-x2+rician3"]
    assert torch.equal(clean["hr"], noisy["hr"]) and not torch.equal(clean["lr"], noisy["lr"])
    with pytest.raises(ValueError, match="zoom"):
        validation_dataset(synthetic_manifest, "bicubic-x2", extra_protocols=["bicubic-x4"])


def test_scan_records(synthetic_manifest):
    records = scan_records(synthetic_manifest, "train", max_scans=2)
    assert [r["scan_id"] for r in records] == ["sub0", "sub1"]
    assert all(r["hr"].endswith(".nii.gz") and r["mask"].endswith(".nii.gz") for r in records)
    with pytest.raises(ValueError):
        scan_records(synthetic_manifest, "train", max_scans=0)


def test_load_volumed_checks_the_mask_against_its_image(tmp_path):
    import nibabel as nib

    image = blob_volume((8, 9, 10), seed=0)
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(tmp_path / "hr.nii.gz"))
    nib.save(nib.Nifti1Image(np.ones((8, 9, 10), np.uint8), np.eye(4)), str(tmp_path / "ones.nii.gz"))
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    nib.save(nib.Nifti1Image(np.ones((8, 9, 10), np.uint8), shifted), str(tmp_path / "shifted.nii.gz"))
    loaded = LoadVolumed(["hr", "mask"])({"hr": str(tmp_path / "hr.nii.gz"), "mask": str(tmp_path / "ones.nii.gz")})
    assert loaded["mask"].dtype == torch.float32 and bool((loaded["mask"] == 1).all())  # all-ones is a valid mask
    with pytest.raises(ValueError, match="shifted.nii.gz"):
        LoadVolumed(["hr", "mask"])({"hr": str(tmp_path / "hr.nii.gz"), "mask": str(tmp_path / "shifted.nii.gz")})


def test_domain_randomised_dataset_makes_the_lr_from_the_augmented_hr(synthetic_manifest):
    """Every access augments anew; the LR is always the degradation of the augmented HR."""
    recipe = {"gamma": 1.0, "bias": 1.0, "background": 1.0, "noise": 0.0}

    def augmented(patch_size, num_samples, seed):
        return training_dataset(
            synthetic_manifest,
            "bicubic-x2",
            "network",
            3,
            patch_size,
            num_samples=num_samples,
            seed=seed,
            domain=recipe,
            box=[16, 16, -1],
        )

    ds = augmented((6, 6, 6), num_samples=2, seed=0)
    first, second = ds[0], ds[0]
    assert first[0]["lr"].shape == (1, 6, 6, 6) and first[0]["hr"].shape == (1, 12, 12, 6)
    assert not torch.equal(first[0]["hr"], second[0]["hr"])  # a new draw per access
    assert "labels" not in first[0]
    # the whole-volume check: with patches as large as the (cropped) volume, LR == degrade(HR)
    whole = augmented((8, 8, 12), num_samples=1, seed=2)[0][0]
    hr = MetaTensor(torch.as_tensor(whole["hr"]), affine=torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(
        get_protocol("bicubic-x2").degrade(hr).as_tensor(), torch.as_tensor(whole["lr"]), atol=1e-4, rtol=1e-4
    )


def test_lr_noise_lands_on_the_lr_only(synthetic_manifest):
    noise_only = {
        name: 0.0 for name in ("label_contrast", "invert", "gamma", "curve", "bias", "scale", "offset", "background")
    }
    clean = training_dataset(
        synthetic_manifest, "bicubic-x2", "cubic", 2, (8, 8), num_samples=2, seed=0, domain={**noise_only, "noise": 0.0}
    )
    noisy = training_dataset(
        synthetic_manifest, "bicubic-x2", "cubic", 2, (8, 8), num_samples=2, seed=0, domain={**noise_only, "noise": 1.0}
    )
    a, b = clean[0][0], noisy[0][0]
    torch.testing.assert_close(a["hr"], b["hr"])
    assert not torch.equal(a["lr"], b["lr"])
