"""Through-plane SR: the thick axis from the header, planes presented thick-axis-last, training = inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.inference import ThroughPlaneSR, input_acquisition, isotropic_zoom, make_baseline, thick_axis
from pipeline.inference.through_plane import simulate_thick_slices
from pipeline.transforms import ThickSlice
from pipeline.transforms.grid import zoomed_affine
from tests.conftest import blob_volume


class ShapeRecorder(torch.nn.Module):
    """Returns its input and records the (H, W) of every batch of planes it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.shapes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape[-2:]))
        return x + self.weight


@pytest.mark.parametrize(
    "spacing, axis, zoom",
    [
        ((0.9, 0.9, 4.5), 2, [1.0, 1.0, 5.0]),
        ((1.0, 1.0, 4.0), 2, [1.0, 1.0, 4.0]),
        ((5.0, 0.5, 0.5), 0, [10.0, 1.0, 1.0]),
        ((1.0, 1.0, 4.4), 2, [1.0, 1.0, 4.0]),
    ],
)
def test_thick_axis_and_isotropic_zoom_from_the_spacing(spacing, axis, zoom) -> None:
    assert thick_axis(spacing) == axis
    assert isotropic_zoom(spacing) == zoom


def test_an_isotropic_scan_has_no_thick_axis() -> None:
    with pytest.raises(ValueError, match="no thick axis"):
        isotropic_zoom((1.0, 1.0, 1.2))


@pytest.mark.parametrize("thick, shape", [(2, (8, 10, 3)), (0, (3, 8, 10)), (1, (8, 3, 10))])
def test_planes_reach_the_network_thick_axis_last_and_fuse_to_the_cubic_input(thick: int, shape: tuple) -> None:
    recorder = ShapeRecorder()
    method = ThroughPlaneSR(recorder, device="cpu", precision="fp32", fast=False)
    spacing = [1.0, 1.0, 1.0]
    spacing[thick] = 4.0
    lr = MetaTensor(torch.from_numpy(blob_volume(shape))[None], affine=torch.as_tensor(np.diag([*spacing, 1.0])))
    zoom = method.zoom_for_input(spacing)
    sr = method(lr, zoom)
    assert {w for _, w in recorder.shapes} == {12}  # 3 slices x 4: the thick axis is always last
    assert len(method.last_members) == 2
    cubic = make_baseline("cubic")(lr, zoom)
    torch.testing.assert_close(sr.as_tensor(), cubic.as_tensor(), atol=1e-3, rtol=1e-4)  # identity network
    np.testing.assert_allclose(sr.affine.numpy(), zoomed_affine(lr.affine, zoom), atol=1e-6)


def test_through_plane_needs_exactly_one_upsampled_axis() -> None:
    method = ThroughPlaneSR(ShapeRecorder(), device="cpu", precision="fp32", fast=False)
    lr = MetaTensor(torch.rand(1, 6, 6, 3))
    with pytest.raises(ValueError, match="exactly one"):
        method(lr, [2.0, 2.0, 1.0])


def test_training_pairs_match_what_inference_feeds_the_network() -> None:
    """simulate_thick_slices (training, adaptation) = ThickSlice + the inference's cubic B-spline."""
    hr = torch.from_numpy(blob_volume((6, 7, 40)))[None]
    slices, upsampled = simulate_thick_slices(hr, thickness=4.0, step=4.0, profile="gaussian")
    lr = ThickSlice(4.0, axis=2)(MetaTensor(hr, affine=torch.eye(4, dtype=torch.float64)))
    torch.testing.assert_close(slices, lr.as_tensor())
    cubic = make_baseline("cubic")(lr, [1.0, 1.0, 4.0])
    torch.testing.assert_close(upsampled, cubic.as_tensor(), atol=1e-3, rtol=1e-4)


def test_non_integer_slice_spacing_lands_on_the_hr_grid() -> None:
    hr = torch.from_numpy(blob_volume((4, 5, 47)))[None]
    slices, upsampled = simulate_thick_slices(hr, thickness=4.5, step=4.5, profile="boxcar", offset=2)
    assert slices.shape[-1] == 10 and upsampled.shape[-1] == 45  # 45 / 4.5 slices; 2 voxels dropped first


def test_input_acquisition_defaults_to_contiguous_gaussian_slices() -> None:
    lr = MetaTensor(torch.rand(1, 4, 4, 3), affine=torch.diag(torch.tensor([1.0, 1.0, 6.0, 1.0], dtype=torch.float64)))
    default = input_acquisition(lr, 2)
    assert (default.thickness_mm, default.gap_mm, default.profile) == (6.0, 0.0, "gaussian")
    recorded = input_acquisition(
        lr, 2, degradation={"method": "thick_slice", "thickness_mm": 5.0, "gap_mm": 1.0, "profile": "boxcar"}
    )
    assert (recorded.thickness_mm, recorded.gap_mm, recorded.profile) == (5.0, 1.0, "boxcar")
    assert input_acquisition(lr, 2, gap_mm=1.5).thickness_mm == 4.5
    with pytest.raises(ValueError, match="at most the slice spacing"):
        input_acquisition(lr, 2, thickness_mm=7.0)


def test_self_ensemble_averages_the_runs_on_flipped_inputs_mapped_back() -> None:
    torch.manual_seed(0)
    network = torch.nn.Conv2d(1, 1, 3, padding=1)  # not flip-equivariant: the members differ
    plain = ThroughPlaneSR(network, device="cpu", precision="fp32", fast=False)
    ensemble = ThroughPlaneSR(network, device="cpu", precision="fp32", fast=False, self_ensemble=True)
    lr = MetaTensor(
        torch.from_numpy(blob_volume((8, 10, 5)))[None], affine=torch.as_tensor(np.diag([1.0, 1.0, 4.0, 1.0]))
    )
    zoom = [1.0, 1.0, 4.0]
    sr = ensemble(lr, zoom)
    assert len(ensemble.last_members) == 8
    expected = []
    for dims in [(), (3,), (1, 2), (1, 2, 3)]:  # identity, then through_plane_flips(2) as tensor dims
        flipped = MetaTensor(lr.as_tensor().flip(dims), affine=lr.affine)
        expected.append(plain(flipped, zoom).as_tensor().flip(dims))
    torch.testing.assert_close(sr.as_tensor(), torch.stack(expected).mean(0), atol=1e-3, rtol=1e-3)
    assert not torch.allclose(expected[0], expected[1], atol=1e-3)
