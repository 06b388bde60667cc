"""Full-volume inference: grid/affine correctness, sliding-window exactness, baselines, file runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.inference import (
    NetworkSR,
    interpolate_array,
    choose_slice_axis,
    make_baseline,
    output_is_complete,
    super_resolve_file,
    zero_fill_array,
)
from pipeline.inference.tiling import balanced_patch_size, patch_starts
from pipeline.io import load_volume
from pipeline.transforms.grid import spacing_from_affine, voxel_to_world


def oblique_lps_affine(spacing=(1.2, 0.9, 3.0)) -> np.ndarray:
    """An oblique affine whose first two axes point left/posterior (LPS-like), with an offset origin."""
    a, b = 0.35, -0.2
    rot_z = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rot_x = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ rot_z @ rot_x @ np.diag(spacing)
    affine[:3, 3] = [40.0, -12.5, 7.0]
    return affine


def blob(shape, centre, sigma) -> np.ndarray:
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"))
    d2 = sum(((g - c) / s) ** 2 for g, c, s in zip(grid, centre, sigma))
    return (100.0 * np.exp(-0.5 * d2) + 1.0).astype(np.float32)


def world_centre_of_mass(img: MetaTensor) -> np.ndarray:
    data = img[0].numpy().astype(float)
    data = np.clip(data - np.percentile(data, 50), 0, None)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in data.shape], indexing="ij")).reshape(3, -1)
    com = (grid * data.reshape(-1)).sum(1) / data.sum()
    return voxel_to_world(img.affine, com[None])[0]


class Identity2D(torch.nn.Module):
    """A 'network' that returns its input: isolates the plumbing from learning."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0


class Upsample2D(torch.nn.Module):
    """A ×2 upsampling 'network' (bilinear), like MRLNet/RRLSRN's interface."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def conv_net(spatial_dims: int, layers: int = 3, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    conv = torch.nn.Conv3d if spatial_dims == 3 else torch.nn.Conv2d
    mods: list[torch.nn.Module] = []
    for i in range(layers):
        mods += [conv(1 if i == 0 else 4, 1 if i == layers - 1 else 4, 3, padding=1)]
        if i < layers - 1:
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods).eval()


METHODS = {
    "nearest": lambda: make_baseline("nearest"),
    "linear": lambda: make_baseline("linear"),
    "cubic": lambda: make_baseline("cubic"),
    "kspace_zero_filled": lambda: make_baseline("kspace_zero_filled"),
    "net2d_cubic": lambda: NetworkSR(Identity2D(), spatial_dims=2, upsampling="cubic", device="cpu", name="id"),
    "net2d_upsampling": lambda: NetworkSR(Upsample2D(), spatial_dims=2, upsampling="network", device="cpu", name="up"),
    "net3d_linear": lambda: NetworkSR(
        torch.nn.Identity(), spatial_dims=3, upsampling="linear", roi_size=16, device="cpu", name="id3"
    ),
}


@pytest.mark.parametrize("method_name", sorted(METHODS))
@pytest.mark.parametrize("affine_kind", ["ras", "oblique_lps"])
def test_x2_keeps_world_position_of_a_blob(method_name: str, affine_kind: str) -> None:
    spacing = (1.2, 0.9, 3.0)
    affine = np.diag([*spacing, 1.0]) if affine_kind == "ras" else oblique_lps_affine(spacing)
    lr = MetaTensor(
        torch.from_numpy(blob((20, 24, 10), (8.3, 13.6, 4.4), (2.5, 3.0, 1.5)))[None], affine=torch.as_tensor(affine)
    )
    zoom = [2.0, 2.0, 1.0]
    sr = METHODS[method_name]()(lr, zoom)
    assert tuple(sr.shape[1:]) == (40, 48, 10)
    np.testing.assert_allclose(spacing_from_affine(sr.affine), [0.6, 0.45, 3.0], atol=1e-9)
    # the grid: SR voxel i sits at LR coordinate (i + 0.5) / 2 - 0.5
    np.testing.assert_allclose(
        voxel_to_world(sr.affine, [[0, 0, 0], [3, 5, 2]]),
        voxel_to_world(lr.affine, [[-0.25, -0.25, 0], [1.25, 2.25, 2]]),
    )
    out_voxel = float(spacing_from_affine(sr.affine).min())
    assert np.linalg.norm(world_centre_of_mass(sr) - world_centre_of_mass(lr)) < 0.5 * out_voxel
    assert abs(float(sr.max()) - float(lr.max())) < 0.2 * float(lr.max())  # intensities stay in input units


def test_choose_slice_axis() -> None:
    assert choose_slice_axis([2, 2, 1]) == 2
    assert choose_slice_axis([1, 1, 4]) == 1
    assert choose_slice_axis([4, 1, 1]) == 2
    with pytest.raises(ValueError, match="3D network"):
        choose_slice_axis([2, 2, 2])


@pytest.mark.parametrize("overlap", [0.5, 0.6])
def test_sliding_window_equals_whole_volume_3d(overlap: float) -> None:
    net = conv_net(3)
    volume = torch.rand(1, 30, 34, 26) * 100
    image = MetaTensor(volume, affine=torch.eye(4))
    method = NetworkSR(
        net,
        spatial_dims=3,
        upsampling="nearest",
        roi_size=16,
        overlap=overlap,
        margin=3,
        device="cpu",
        batch_size=3,
        precision="fp32",
    )
    out = method(image, [1.0, 1.0, 1.0])
    scale = float(np.percentile(volume[volume > 0].numpy(), 99.5))
    with torch.no_grad():
        whole = net(volume[None] / scale)[0] * scale
    assert float((out.as_tensor() - whole).abs().max()) < 1e-4 * scale


def test_slice_wise_equals_whole_slices_2d_tiled() -> None:
    net = conv_net(2)
    volume = torch.rand(1, 40, 36, 5) * 50
    method = NetworkSR(
        net,
        spatial_dims=2,
        upsampling="linear",
        roi_size=20,
        overlap=0.5,
        margin=3,
        device="cpu",
        batch_size=2,
        precision="fp32",
    )
    out = method(MetaTensor(volume, affine=torch.eye(4)), [1.0, 1.0, 1.0])
    scale = float(np.percentile(volume[volume > 0].numpy(), 99.5))
    with torch.no_grad():
        whole = net(volume[0].permute(2, 0, 1)[:, None] / scale)[:, 0].permute(1, 2, 0)[None] * scale
    assert float((out.as_tensor() - whole).abs().max()) < 1e-4 * scale


def test_network_sr_ill_args() -> None:
    with pytest.raises(ValueError, match="spatial_dims"):
        NetworkSR(torch.nn.Identity(), spatial_dims=4, upsampling="cubic")
    with pytest.raises(ValueError, match="roi_size"):
        NetworkSR(torch.nn.Identity(), spatial_dims=3, upsampling="cubic")
    with pytest.raises(ValueError, match="upsampling"):
        NetworkSR(torch.nn.Identity(), spatial_dims=2, upsampling="lanczos")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="margin"):
        NetworkSR(torch.nn.Identity(), spatial_dims=2, upsampling="cubic", margin=-1)


def test_zero_fill_recovers_band_limited_signal() -> None:
    n, f = 30, 3
    hr_pos = np.arange(n)
    lr_pos = np.arange(n // f) * f + (f - 1) / 2  # LR voxel centres at HR block centres
    signal = lambda t: 10 + np.cos(2 * np.pi * 2 * t / n) + 0.3 * np.sin(2 * np.pi * 4 * t / n)  # noqa: E731
    up = zero_fill_array(torch.tensor(signal(lr_pos))[:, None, None], [f, 1, 1])[:, 0, 0].numpy()
    np.testing.assert_allclose(up, signal(hr_pos), atol=1e-5)


def test_super_resolve_file_writes_nifti_and_sidecar(nifti_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "sr.nii.gz"
    record = super_resolve_file(make_baseline("cubic"), nifti_file, out, zoom=[2, 2, 1])
    img = nib.load(str(out))
    assert img.shape == (48, 56, 20)
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 2
    np.testing.assert_allclose(spacing_from_affine(img.affine), [0.6, 0.45, 3.0], atol=1e-6)
    sidecar = json.loads((tmp_path / "out" / "sr.json").read_text())
    assert sidecar == json.loads(json.dumps(record))
    assert sidecar["method"] == "cubic" and sidecar["zoom"] == [2.0, 2.0, 1.0] and "monai" in sidecar["software"]
    assert output_is_complete(out)
    lr = load_volume(nifti_file)
    assert abs(float(np.asanyarray(img.dataobj).mean()) - float(lr.mean())) < 0.05 * float(lr.mean())


def test_rerun_removes_temporaries_of_a_killed_run(nifti_file: Path, tmp_path: Path) -> None:
    """A SIGKILL mid-write leaves hidden temporaries; writing the same output again sweeps them."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    stale = [out_dir / ".sr.0123abcd.tmp.nii.gz", out_dir / ".sr.89abcdef.tmp.json"]
    others = [out_dir / ".sr2.0123abcd.tmp.nii.gz", out_dir / "notes.tmp.nii.gz"]  # not this output's
    for path in stale + others:
        path.write_bytes(b"partial")
    super_resolve_file(make_baseline("cubic"), nifti_file, out_dir / "sr.nii.gz", zoom=[2, 2, 1])
    assert not any(p.exists() for p in stale) and all(p.exists() for p in others)
    assert output_is_complete(out_dir / "sr.nii.gz")


def test_super_resolve_file_needs_a_zoom(nifti_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--zoom"):
        super_resolve_file(make_baseline("cubic"), nifti_file, tmp_path / "sr.nii.gz")
    assert not (tmp_path / "sr.nii.gz").exists()


def test_super_resolve_file_never_overwrites_input(nifti_file: Path) -> None:
    before = nifti_file.read_bytes()
    with pytest.raises(FileExistsError):
        super_resolve_file(make_baseline("cubic"), nifti_file, nifti_file, zoom=[2, 2, 1])
    assert nifti_file.read_bytes() == before


def test_incomplete_output_is_not_complete(tmp_path: Path) -> None:
    out = tmp_path / "sr.nii.gz"
    out.write_bytes(b"\x1f\x8b truncated")
    assert not output_is_complete(out)
    (tmp_path / "sr.json").write_text(json.dumps({"status": "complete", "output_shape": [2, 2, 2]}))
    assert not output_is_complete(out)


@pytest.mark.parametrize(
    "size, roi, margin, expected", [(161, 70, 3, 58), (198, 70, 3, 70), (40, 70, 3, 40), (71, 70, 3, 39)]
)
def test_balanced_patch_size(size: int, roi: int, margin: int, expected: int) -> None:
    patch = balanced_patch_size(size, roi, margin)
    assert patch == expected
    assert len(patch_starts(size, patch, margin)) == len(patch_starts(size, roi, margin))


def test_fast_and_plain_paths_agree_and_record_precision() -> None:
    net = conv_net(3)
    image = MetaTensor(torch.rand(1, 30, 34, 26) * 100, affine=torch.eye(4))
    kwargs = dict(spatial_dims=3, upsampling="nearest", roi_size=16, margin=3, device="cpu", precision="fp32")
    fast, plain = NetworkSR(net, fast=True, **kwargs), NetworkSR(net, fast=False, **kwargs)
    torch.testing.assert_close(
        fast(image, [1, 1, 1]).as_tensor(), plain(image, [1, 1, 1]).as_tensor(), rtol=1e-5, atol=1e-4
    )
    assert (fast.precision, fast.precision_reason) == ("fp32", "requested")


def test_fast_path_sees_the_latest_weights() -> None:
    """Validation during training calls one NetworkSR again and again while the weights change."""
    net = conv_net(2)
    method = NetworkSR(net, spatial_dims=2, upsampling="nearest", device="cpu", precision="fp32")
    image = MetaTensor(torch.rand(1, 12, 10, 3) * 10, affine=torch.eye(4))
    first = method(image, [1, 1, 1]).as_tensor().clone()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.5)
    assert not torch.allclose(method(image, [1, 1, 1]).as_tensor(), first)


def test_network_sr_rejects_bad_precision_and_missing_cuda() -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        NetworkSR(torch.nn.Identity(), spatial_dims=2, upsampling="cubic", precision="fp8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            NetworkSR(torch.nn.Identity(), spatial_dims=2, upsampling="cubic", device="cuda:0")


@pytest.mark.parametrize("order", [0, 1, 3])
@pytest.mark.parametrize("zoom", [(2, 2, 1), (1, 2, 2), (3, 3, 1), (1, 1, 4), (2, 3, 4)])
def test_integer_zoom_matches_scipy(order: int, zoom: tuple[int, int, int]) -> None:
    """The separable integer-zoom path equals ``scipy.ndimage.zoom`` (grid mode, reflect) to float32 rounding."""
    from scipy import ndimage

    volume = (np.random.default_rng(order).random((11, 7, 5)) * 100).astype(np.float32)
    expected = ndimage.zoom(volume, zoom, order=order, mode="reflect", grid_mode=True, prefilter=order > 1)
    np.testing.assert_allclose(interpolate_array(volume, zoom, order), expected, rtol=0, atol=1e-4)
