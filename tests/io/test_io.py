"""Reading NIfTI/MHA/NRRD/DICOM into MetaTensor with the right affine; atomic NIfTI writing; bad input."""

from __future__ import annotations

import gzip
import locale
import math
from pathlib import Path

import itk
import nibabel as nib
import numpy as np
import pytest
import torch

from pipeline.io import ImageFileError, InvalidVolumeError, atomic_path, load_volume, save_nifti
from tests.conftest import blob_volume

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.array(
        [[1.0, 0.0, 0.0], [0.0, math.cos(0.2), -math.sin(0.2)], [0.0, math.sin(0.2), math.cos(0.2)]]
    )


def _itk_image(arr_xyz: np.ndarray, spacing, origin_lps, direction_lps) -> itk.Image:
    img = itk.image_from_array(np.ascontiguousarray(arr_xyz.transpose(2, 1, 0)))
    img.SetSpacing([float(s) for s in spacing])
    img.SetOrigin([float(o) for o in origin_lps])
    img.SetDirection(itk.matrix_from_array(np.ascontiguousarray(direction_lps)))
    return img


def _expected_ras_affine(spacing, origin_lps, direction_lps) -> np.ndarray:
    aff = np.eye(4)
    aff[:3, :3] = LPS_TO_RAS @ direction_lps @ np.diag(spacing)
    aff[:3, 3] = LPS_TO_RAS @ np.asarray(origin_lps)
    return aff


def test_nifti_roundtrip_keeps_affine_and_codes(nifti_file: Path, tmp_path: Path) -> None:
    img = load_volume(nifti_file)
    assert img.shape == (1, 24, 28, 20)
    assert img.meta["qform_code"] == 1 and img.meta["sform_code"] == 2
    np.testing.assert_allclose(img.affine.numpy(), nib.load(str(nifti_file)).affine)
    out = save_nifti(img, tmp_path / "copy.nii.gz")
    back = nib.load(str(out))
    assert int(back.header["qform_code"]) == 1 and int(back.header["sform_code"]) == 2
    np.testing.assert_allclose(back.affine, img.affine.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asanyarray(back.dataobj), img[0].numpy())


@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
def test_itk_formats_oblique_lps(tmp_path: Path, suffix: str) -> None:
    arr = blob_volume((12, 10, 8))
    spacing, origin, direction = (0.9, 1.1, 2.5), (10.0, -5.0, 3.0), _rotation(0.3)
    path = tmp_path / f"vol{suffix}"
    itk.imwrite(_itk_image(arr, spacing, origin, direction), str(path))
    img = load_volume(path)
    np.testing.assert_allclose(img[0].numpy(), arr, atol=1e-5)
    np.testing.assert_allclose(img.affine.numpy(), _expected_ras_affine(spacing, origin, direction), atol=1e-5)


def test_dicom_series_folder(tmp_path: Path) -> None:
    arr = (blob_volume((12, 10, 6)) * 10).astype(np.int16)
    spacing, origin, direction = np.array([0.9, 1.1, 2.5]), np.array([10.0, -5.0, 3.0]), _rotation(0.0)
    folder = tmp_path / "series"
    folder.mkdir()
    for k in range(arr.shape[2]):
        slice_img = itk.image_from_array(np.ascontiguousarray(arr[:, :, k : k + 1].transpose(2, 1, 0)))
        slice_img.SetSpacing(spacing.tolist())
        position = origin + direction[:, 2] * spacing[2] * k
        tags = itk.MetaDataDictionary()
        tags["0020|0032"] = "\\".join(f"{x:.6f}" for x in position)
        tags["0020|0037"] = "\\".join(f"{x:.6f}" for x in [*direction[:, 0], *direction[:, 1]])
        tags["0028|0030"] = f"{spacing[1]:.6f}\\{spacing[0]:.6f}"
        tags["0018|0050"] = f"{spacing[2]}"
        tags["0020|0013"] = str(k + 1)
        tags["0008|0060"] = "MR"
        tags["0020|000e"] = "1.2.826.0.1.3680043.2.1125.1.99"
        tags["0020|000d"] = "1.2.826.0.1.3680043.2.1125.1.98"
        tags["0008|0018"] = f"1.2.826.0.1.3680043.2.1125.1.97.{k + 1}"
        dicom_io = itk.GDCMImageIO.New()
        dicom_io.KeepOriginalUIDOn()
        dicom_io.SetMetaDataDictionary(tags)
        slice_img.SetMetaDataDictionary(tags)
        saved_locale = locale.setlocale(locale.LC_ALL)
        itk.imwrite(slice_img, str(folder / f"IM{k:04d}.dcm"), imageio=dicom_io)
        locale.setlocale(locale.LC_ALL, saved_locale)  # GDCM's writer leaves the process in the "C" locale
    img = load_volume(folder)
    np.testing.assert_allclose(img[0].numpy(), arr)
    np.testing.assert_allclose(img.affine.numpy(), _expected_ras_affine(spacing, origin, direction), atol=1e-4)


def test_missing_path() -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.nii.gz"):
        load_volume("/nonexistent/nowhere.nii.gz")


def test_truncated_gzip(nifti_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "truncated.nii.gz"
    bad.write_bytes(nifti_file.read_bytes()[:2000])
    with pytest.raises(ImageFileError, match="truncated.nii.gz"):
        load_volume(bad)


def test_not_gzip_at_all(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.nii.gz"
    bad.write_bytes(gzip.compress(b"not a nifti header") + b"")
    with pytest.raises(ImageFileError, match="garbage.nii.gz"):
        load_volume(bad)


def test_unknown_suffix(tmp_path: Path) -> None:
    bad = tmp_path / "volume.png"
    bad.write_bytes(b"\x89PNG")
    with pytest.raises(ImageFileError, match="unknown image format"):
        load_volume(bad)


@pytest.mark.parametrize(
    "data, message",
    [
        (np.ones((16, 16), np.float32), "2D image"),
        (np.random.default_rng(0).random((16, 16, 1), dtype=np.float32), "2D image"),
        (np.random.default_rng(0).random((8, 8, 8, 3), dtype=np.float32), "4D image with 3 volumes"),
        (np.full((8, 8, 8), np.nan, np.float32), "no finite values"),
        (np.zeros((8, 8, 8), np.float32), "constant"),
    ],
)
def test_bad_volumes(tmp_path: Path, data: np.ndarray, message: str) -> None:
    path = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    with pytest.raises(InvalidVolumeError, match=message) as err:
        load_volume(path)
    assert "bad.nii.gz" in str(err.value)


def test_single_volume_4d_is_squeezed(tmp_path: Path) -> None:
    path = tmp_path / "one.nii.gz"
    nib.save(nib.Nifti1Image(blob_volume((8, 9, 10))[..., None], np.eye(4)), str(path))
    assert load_volume(path).shape == (1, 8, 9, 10)


def test_partial_nan_warns_and_zeroes(tmp_path: Path) -> None:
    data = blob_volume((8, 9, 10))
    data[0, 0, 0] = np.nan
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    with pytest.warns(UserWarning, match="NaN"):
        img = load_volume(path)
    assert float(img[0, 0, 0, 0]) == 0.0


def test_save_refuses_to_overwrite_input(nifti_file: Path) -> None:
    img = load_volume(nifti_file)
    before = nifti_file.read_bytes()
    with pytest.raises(FileExistsError, match="input file"):
        save_nifti(img, nifti_file)
    assert nifti_file.read_bytes() == before


def test_save_plain_tensor_needs_affine(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="affine"):
        save_nifti(torch.zeros(1, 4, 4, 4), tmp_path / "x.nii.gz")
    out = save_nifti(torch.ones(1, 4, 4, 4), tmp_path / "x.nii.gz", affine=np.eye(4))
    assert nib.load(str(out)).shape == (4, 4, 4)


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "out.nii.gz"
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("killed while writing")
    assert list(tmp_path.iterdir()) == []


def test_atomic_torch_save_gives_the_same_bytes_for_the_same_tensors(tmp_path: Path) -> None:
    """A weights file's SHA-256 (recorded in bundle metadata) depends on the tensors, not the temporary name."""
    import torch

    from pipeline.inference.bundle_catalog import file_sha256
    from pipeline.io import atomic_torch_save

    state = {"weight": torch.arange(6.0).reshape(2, 3), "steps": torch.tensor(3)}
    atomic_torch_save(state, tmp_path / "a.pt")
    atomic_torch_save(dict(state), tmp_path / "sub_b.pt")
    assert file_sha256(tmp_path / "a.pt") == file_sha256(tmp_path / "sub_b.pt")
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["weight"], state["weight"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "sub_b.pt"]
