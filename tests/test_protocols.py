"""Named degradation protocols: grids and zoom undo each other; unknown names are rejected."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.protocols import PROTOCOLS, crop_to_multiple, get_protocol, protocol_name, thick_slice_protocol
from pipeline.transforms.grid import spacing_from_affine, zoomed_affine
from tests.conftest import blob_volume


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_protocol_zoom_restores_the_hr_grid(name: str) -> None:
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    hr = MetaTensor(torch.from_numpy(blob_volume((26, 30, 22)))[None], affine=torch.as_tensor(affine))
    protocol = get_protocol(name)
    lr = protocol.degrade(hr)
    cropped = crop_to_multiple(hr, protocol.zoom)
    expected = [round(s / z) for s, z in zip(cropped.shape[1:], protocol.zoom)]
    assert list(lr.shape[1:]) == expected
    np.testing.assert_allclose(spacing_from_affine(lr.affine), protocol.zoom, atol=1e-9)
    np.testing.assert_allclose(zoomed_affine(lr.affine, protocol.zoom), affine, atol=1e-9)
    assert lr.meta["degradation"]["zoom"] == pytest.approx(list(protocol.zoom))
    assert 0 <= protocol.slice_axis <= 2 and np.isclose(protocol.zoom[protocol.slice_axis], 1.0)


def test_degradation_is_deterministic() -> None:
    hr = MetaTensor(torch.from_numpy(blob_volume())[None], affine=torch.eye(4))
    protocol = get_protocol("blur-x2")
    assert torch.equal(protocol.degrade(hr, seed=3).as_tensor(), protocol.degrade(hr, seed=3).as_tensor())


def test_unknown_protocol() -> None:
    with pytest.raises(ValueError, match="kspace-2x2"):
        get_protocol("nope")


@pytest.mark.parametrize(
    "name, thickness, gap, profile, axis",
    [
        ("thick-4mm", 4.0, 0.0, "gaussian", 2),
        ("thick-5mm-gap1mm", 5.0, 1.0, "gaussian", 2),
        ("thick-4.5mm-boxcar-axis0", 4.5, 0.0, "boxcar", 0),
        ("thick-3mm-gap0.5mm-axis1", 3.0, 0.5, "gaussian", 1),
    ],
)
def test_thick_slice_family_names_round_trip(name: str, thickness: float, gap: float, profile: str, axis: int) -> None:
    protocol = get_protocol(name)
    acq = protocol.acquisition
    assert (acq.thickness_mm, acq.gap_mm, acq.profile, acq.axis) == (thickness, gap, profile, axis)
    assert protocol.name == name
    assert thick_slice_protocol(thickness, gap, profile, axis).name == name
    assert protocol.slice_axis != axis  # slices for metrics contain the thick axis


@pytest.mark.parametrize(
    "name, spacing, zoom, size, slices",
    [
        ("thick-4.5mm", (0.9, 0.9, 0.9), 5.0, 47, 9),  # 0.9 x 0.9 x 4.5 mm -> 0.9 mm isotropic: 45 of 47 voxels kept
        ("thick-4.5mm", (1.0, 1.0, 1.0), 4.5, 47, 10),  # non-integer ratio: 9 HR voxels per 2 slices, 45 kept
        ("thick-5mm-gap1mm", (1.0, 1.0, 1.0), 6.0, 47, 7),
    ],
)
def test_thick_slice_zoom_follows_the_hr_spacing(
    name: str, spacing: tuple, zoom: float, size: int, slices: int
) -> None:
    affine = np.diag([*spacing, 1.0])
    hr = MetaTensor(torch.from_numpy(blob_volume((12, 10, size)))[None], affine=torch.as_tensor(affine))
    protocol = get_protocol(name)
    assert protocol.zoom_for(spacing) == pytest.approx((1.0, 1.0, zoom))
    lr = protocol.degrade(hr)
    assert lr.shape[-1] == slices
    cropped = crop_to_multiple(hr, protocol.zoom_for(spacing))
    assert cropped.shape[-1] == pytest.approx(slices * zoom)
    # the LR grid zoomed back is the cropped HR grid: slice k covers the HR voxels it was averaged from
    np.testing.assert_allclose(zoomed_affine(lr.affine, protocol.zoom_for(spacing)), affine, atol=1e-9)


def test_thick_slice_family_rejects_bad_names_and_values() -> None:
    for name in ("thick-mm", "thick-4mm-gap", "thick-4mm-axis3", "thick-4mm-sinc"):
        with pytest.raises(ValueError, match="thick-<T>mm"):
            get_protocol(name)
    with pytest.raises(ValueError, match="gap"):
        thick_slice_protocol(4.0, gap_mm=-1.0)
    with pytest.raises(argparse.ArgumentTypeError, match="unknown protocol"):
        protocol_name("thick-slice-x4")


def test_rician_suffix_adds_seeded_noise_at_a_fraction_of_the_robust_maximum() -> None:
    hr = MetaTensor(torch.rand(1, 32, 32, 8) * 100 + 50, affine=torch.eye(4, dtype=torch.float64))
    clean, noisy = get_protocol("bicubic-x2"), get_protocol("bicubic-x2+rician3")
    assert noisy.name == "bicubic-x2+rician3" and noisy.zoom == clean.zoom
    a, b = noisy.degrade(hr), clean.degrade(hr)
    assert torch.equal(a, noisy.degrade(hr))  # seeded: the same LR every time
    assert 0.02 < float((a - b).std()) / float(np.percentile(b.numpy(), 99.5)) < 0.04
    assert a.meta["degradation"]["noise"] == {"kind": "rician", "sd_fraction_of_robust_max": 0.03}
    assert get_protocol("thick-5mm-gap1mm+rician2").zoom_for([1.0, 1.0, 1.0]) == (1.0, 1.0, 6.0)
    with pytest.raises(ValueError, match="> 0 %"):
        get_protocol("bicubic-x2+rician0")
    with pytest.raises(ValueError, match="rician"):
        get_protocol("bicubic-x2+gauss3")
