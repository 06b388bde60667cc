"""Inputs as a clinic has them (issue 23): thick slices of heads with skull and neck, FLAIR with a lesion,
int16 with scl_slope, z-scored and huge intensity ranges. Through-plane SR and the trust check must run,
keep the input's units and grid, and not drift from the interpolated input on any of them."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.cli.main import main
from pipeline.inference import make_baseline
from pipeline.protocols import get_protocol
from pipeline.transforms.grid import zoomed_affine
from tests.conftest import head_volume, untrained_thick_slice_bundle

SPACING = (0.9, 0.9, 4.5)  # 0.9 mm in-plane, 4.5 mm slices: 5 output voxels per slice


def thick_head(contrast: str) -> np.ndarray:
    """A (30, 32, 8) thick-slice head: 4.5 mm Gaussian slices of a 0.9 mm head."""
    hr = MetaTensor(
        torch.from_numpy(head_volume((30, 32, 40), contrast=contrast))[None],
        affine=torch.diag(torch.tensor([0.9, 0.9, 0.9, 1.0], dtype=torch.float64)),
    )
    return get_protocol("thick-4.5mm").degrade(hr)[0].numpy()


def save(path: Path, data: np.ndarray, *, dtype=np.float32, slope: float | None = None, inter: float = 0.0) -> Path:
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = [-12.0, 20.0, -30.0]
    if slope is None:
        image = nib.Nifti1Image(data.astype(dtype), affine)
    else:
        image = nib.Nifti1Image(np.rint((data - inter) / slope).astype(dtype), affine)
        image.header.set_slope_inter(slope, inter)
    nib.save(image, str(path))
    return path


CASES = {
    "t1 head with skull and neck": lambda: thick_head("t1"),
    "flair with a lesion, int16 with scl_slope": lambda: thick_head("flair"),
    "z-scored (negative values)": lambda: (thick_head("t1") - 400.0) / 250.0,
    "huge range": lambda: thick_head("flair") * 1e4,
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return untrained_thick_slice_bundle(tmp_path_factory.mktemp("bundle") / "thick_slice")


@pytest.mark.parametrize("case", sorted(CASES))
def test_thick_slice_runs_with_qc_in_the_inputs_units(case: str, bundle: Path, tmp_path: Path) -> None:
    data = CASES[case]()
    int16 = "int16" in case
    source = save(
        tmp_path / "in.nii.gz", data, dtype=np.int16 if int16 else np.float32, slope=2.0 if int16 else None, inter=10.0
    )
    stored = np.asarray(nib.load(str(source)).dataobj, dtype=np.float32)  # scl_slope applied: the input's units
    out = tmp_path / "sr.nii.gz"
    assert main(["infer", str(source), "-o", str(out), "--method", str(bundle), "--qc"]) == 0
    sr = nib.load(str(out))
    assert sr.shape == (30, 32, 40)
    np.testing.assert_allclose(
        sr.affine,
        zoomed_affine(
            np.diag([*SPACING, 1.0]) + np.pad(np.array([[-12.0], [20.0], [-30.0]]), ((0, 1), (3, 0))), [1, 1, 5]
        ),
        atol=1e-4,
    )
    values = np.asarray(sr.dataobj)
    cubic = make_baseline("cubic")(MetaTensor(torch.from_numpy(stored)[None]), [1.0, 1.0, 5.0])[0].numpy()
    assert np.isfinite(values).all()
    scale = np.percentile(np.abs(stored), 99.5)
    assert np.abs(values - cubic).mean() < 0.05 * scale  # in the input's units, near the interpolated input
    record = json.loads((tmp_path / "sr.json").read_text())
    assert record["output_spacing_mm"] == pytest.approx([0.9, 0.9, 0.9])
    assert record["qc"]["data_consistency"] < 0.2 and "BrainMask" in record["qc"]["mask"]
    assert (tmp_path / "sr_uncertainty.nii.gz").is_file() and (tmp_path / "sr_qc.png").is_file()


def test_bundle_run_reads_the_thick_axis_from_the_header(bundle: Path, tmp_path: Path) -> None:
    from monai.bundle import ConfigWorkflow

    source = save(tmp_path / "in.nii.gz", thick_head("flair"))
    out = tmp_path / "sr.nii.gz"
    workflow = ConfigWorkflow(
        config_file=str(bundle / "configs" / "inference.json"),
        meta_file=str(bundle / "configs" / "metadata.json"),
        logging_file=False,
        workflow_type=None,
        bundle_root=str(bundle),
        input_image=str(source),
        output_image=str(out),
        qc=True,
    )
    workflow.initialize()
    workflow.run()
    assert nib.load(str(out)).shape == (30, 32, 40)
    assert json.loads((tmp_path / "sr.json").read_text())["zoom"] == [1.0, 1.0, 5.0]
