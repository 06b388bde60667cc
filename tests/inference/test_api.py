"""``from pipeline import super_resolve``: paths, nibabel images and MetaTensors in, the same kind out, right affine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline import super_resolve
from pipeline.inference import load_method, super_resolve_file
from pipeline.transforms.grid import zoomed_affine
from tests.conftest import blob_volume

ZOOM = (1.0, 1.0, 2.0)


def _as_array(image: nib.Nifti1Image | MetaTensor) -> np.ndarray:
    return np.asarray(image.dataobj) if isinstance(image, nib.Nifti1Image) else image.squeeze(0).numpy()


def _inputs(nifti_file: Path, ras_affine: np.ndarray) -> dict[str, object]:
    """The same volume as each kind of input ``super_resolve`` takes."""
    tensor = MetaTensor(torch.from_numpy(blob_volume())[None], affine=torch.as_tensor(ras_affine))
    return {
        "path": nifti_file,
        "str": str(nifti_file),
        "nibabel": nib.load(str(nifti_file)),
        "metatensor": tensor,
        "metatensor_3d": tensor[0],
    }


def test_linear_on_every_input_kind(nifti_file: Path, ras_affine: np.ndarray, tmp_path: Path) -> None:
    reference = tmp_path / "infer.nii.gz"
    super_resolve_file(load_method("linear"), nifti_file, reference, zoom=ZOOM)  # what mrisr infer writes
    expected = nib.load(str(reference))
    for kind, image in _inputs(nifti_file, ras_affine).items():
        out = super_resolve(image, "linear", zoom=ZOOM)
        if kind.startswith("metatensor"):
            assert isinstance(out, MetaTensor) and out.ndim == image.ndim, kind
            affine = out.affine.numpy()
        else:
            assert isinstance(out, nib.Nifti1Image), kind
            affine = out.affine
            assert (int(out.header["qform_code"]), int(out.header["sform_code"])) == (1, 2), kind  # kept
        np.testing.assert_allclose(affine, zoomed_affine(ras_affine, ZOOM), atol=1e-5, err_msg=kind)
        np.testing.assert_allclose(affine, expected.affine, atol=1e-5, err_msg=kind)
        np.testing.assert_allclose(_as_array(out), expected.get_fdata(), rtol=1e-5, atol=1e-4, err_msg=kind)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["infer.json", "infer.nii.gz", "vol.nii.gz"]  # no more


def test_the_input_is_left_unchanged(ras_affine: np.ndarray) -> None:
    tensor = MetaTensor(torch.from_numpy(blob_volume())[None], affine=torch.as_tensor(ras_affine))
    before = tensor.clone()
    super_resolve(tensor, "linear", target_spacing=(1.2, 0.9, 1.5))
    assert torch.equal(tensor.as_tensor(), before.as_tensor()) and torch.equal(tensor.affine, before.affine)


def test_a_bundle_round_trip(ras_affine: np.ndarray, tmp_path: Path) -> None:
    """srcnn (in-plane x2) on a small volume: a path and a loaded method; nib.save and load back."""
    path = tmp_path / "lr.nii.gz"
    nib.save(nib.Nifti1Image(blob_volume((16, 20, 6)), ras_affine), str(path))
    out = super_resolve(path, "srcnn", device="cpu", zoom=(2, 2, 1))
    assert out.shape == (32, 40, 6)
    np.testing.assert_allclose(out.affine, zoomed_affine(ras_affine, (2, 2, 1)), atol=1e-5)
    nib.save(out, str(tmp_path / "sr.nii.gz"))
    back = nib.load(str(tmp_path / "sr.nii.gz"))
    np.testing.assert_allclose(back.affine, out.affine, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(back.dataobj), np.asarray(out.dataobj))

    srcnn = load_method("srcnn", device="cpu")
    tensor = MetaTensor(torch.from_numpy(blob_volume((16, 20, 6)))[None], affine=torch.as_tensor(ras_affine))
    sr = super_resolve(tensor, srcnn, zoom=(2, 2, 1))
    assert isinstance(sr, MetaTensor) and tuple(sr.shape) == (1, 32, 40, 6)
    np.testing.assert_allclose(sr.affine.numpy(), out.affine, atol=1e-5)
    np.testing.assert_allclose(sr[0].numpy(), np.asarray(out.dataobj), rtol=1e-4, atol=1e-3)
    assert abs(float(sr.mean()) - float(tensor.mean())) < 0.05 * float(tensor.mean())  # the input's units


def test_errors_name_the_problem(ras_affine: np.ndarray) -> None:
    tensor = MetaTensor(torch.from_numpy(blob_volume())[None], affine=torch.as_tensor(ras_affine))
    with pytest.raises(ValueError, match="image: no zoom given"):
        super_resolve(tensor, "linear")
    with pytest.raises(ValueError, match=r"shape \(1, X, Y, Z\) or \(X, Y, Z\)"):
        super_resolve(torch.cat([tensor, tensor]), "linear", zoom=ZOOM)
    with pytest.raises(ValueError, match="singular affine"):
        super_resolve(MetaTensor(tensor.as_tensor(), affine=torch.zeros(4, 4)), "linear", zoom=ZOOM)
    with pytest.raises(TypeError, match="a path, a nibabel image or a MetaTensor"):
        super_resolve(blob_volume(), "linear", zoom=ZOOM)
    with pytest.raises(ValueError, match="unknown method"):
        super_resolve(tensor, "no_such_method", zoom=ZOOM)


def test_import_pipeline_stays_light() -> None:
    """``super_resolve`` is imported on first use: ``import pipeline`` loads neither torch nor MONAI."""
    code = "import sys, pipeline; print(sorted({'torch', 'monai', 'pipeline.api'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
