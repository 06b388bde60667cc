"""The input-noise estimate reads the noise it is given, and a noise-free-trained bundle warns on a noisy input."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from monai.data import MetaTensor

from pipeline.cli.main import main
from pipeline.inference import load_bundle_method, make_baseline, super_resolve_file
from pipeline.qc import NOISE_WARNING_LEVEL, estimate_noise_fraction, input_noise_record
from tests.conftest import untrained_thick_slice_bundle
from tests.utils import write_manifest, write_nifti

THICK_AFFINE = np.diag([1.0, 1.0, 4.0, 1.0])


def smooth_phantom(shape=(40, 44, 36)) -> np.ndarray:
    """Slowly varying intensities (about 200-1000) inside an ellipsoid, zero outside."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    inside = (grid**2).sum(axis=0) < 0.8
    return np.where(inside, 600 + 400 * np.cos(1.5 * grid[0]) * np.cos(1.5 * grid[1]), 0.0)


def test_the_estimate_reads_the_noise_added() -> None:
    clean = smooth_phantom()
    mask = clean > 0
    reference = float(np.percentile(clean[clean > 0], 99.5))
    rng = np.random.default_rng(0)
    for fraction in (0.01, 0.03, 0.06):
        noisy = clean + rng.normal(0, fraction * reference, clean.shape)
        assert estimate_noise_fraction(noisy, mask) == pytest.approx(fraction, rel=0.1)
    assert estimate_noise_fraction(clean, mask) < 0.002


def test_the_kernel_runs_in_the_plane_of_the_two_finest_axes() -> None:
    """A texture that varies over axes 0 and 2 only is seen in their plane and not in the plane of axes 0 and 1."""
    clean = smooth_phantom()
    texture = np.random.default_rng(0).normal(0, 30.0, (clean.shape[0], 1, clean.shape[2]))
    volume, mask = clean + texture, clean > 0
    assert estimate_noise_fraction(volume, mask, spacing=(1.0, 1.0, 5.0)) < 0.002
    assert estimate_noise_fraction(volume, mask, spacing=(1.0, 5.0, 1.0)) > 0.02


def test_a_mask_of_another_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="mask of its shape"):
        estimate_noise_fraction(np.zeros((1, 8, 8, 8)), np.ones((8, 8, 4), bool))


def noise_free_bundle(root: Path, trained_on_noisy_inputs: bool | None) -> Path:
    """An untrained thick_slice bundle whose metadata says what its weights were trained on."""
    bundle = untrained_thick_slice_bundle(root)
    path = bundle / "configs" / "metadata.json"
    meta = json.loads(path.read_text())
    meta.pop("trained_on_noisy_inputs", None)
    if trained_on_noisy_inputs is not None:
        meta["trained_on_noisy_inputs"] = trained_on_noisy_inputs
    path.write_text(json.dumps(meta))
    return bundle


def thick_input(noise_fraction: float, seed: int = 0) -> MetaTensor:
    """A (1, 40, 44, 12) smooth phantom on 1 x 1 x 4 mm voxels with Gaussian noise of ``noise_fraction``."""
    phantom = smooth_phantom((40, 44, 12))
    noisy = phantom + np.random.default_rng(seed).normal(0, noise_fraction * 1000.0, phantom.shape)
    return MetaTensor(torch.from_numpy(noisy.astype(np.float32))[None], affine=torch.from_numpy(THICK_AFFINE))


def test_only_a_noisy_input_to_a_noise_free_bundle_is_warned_about(tmp_path: Path) -> None:
    clean_trained = load_bundle_method(noise_free_bundle(tmp_path / "a", False), device="cpu", precision="fp32")
    noise_trained = load_bundle_method(noise_free_bundle(tmp_path / "b", True), device="cpu", precision="fp32")
    unknown = load_bundle_method(noise_free_bundle(tmp_path / "c", None), device="cpu", precision="fp32")
    noisy, quiet = thick_input(0.06), thick_input(0.0)
    record = input_noise_record(clean_trained, noisy)
    assert record["estimate"] > NOISE_WARNING_LEVEL and record["bundle_trained_on_noisy_inputs"] is False
    assert "thick_slice was trained on noise-free inputs only" in record["warning"]
    assert input_noise_record(clean_trained, quiet)["warning"] is None
    assert input_noise_record(clean_trained, quiet)["estimate"] < NOISE_WARNING_LEVEL
    assert input_noise_record(noise_trained, noisy)["warning"] is None
    assert input_noise_record(unknown, noisy)["bundle_trained_on_noisy_inputs"] is None
    assert input_noise_record(make_baseline("cubic"), noisy) is None


def test_infer_warns_and_records_the_noise_in_the_sidecar(tmp_path: Path) -> None:
    method = load_bundle_method(noise_free_bundle(tmp_path / "b", False), device="cpu", precision="fp32")
    noisy = thick_input(0.06)
    source = write_nifti(tmp_path / "noisy.nii.gz", noisy[0].numpy(), THICK_AFFINE)
    with pytest.warns(UserWarning, match=r"noisy\.nii\.gz: estimated noise"):
        sidecar = super_resolve_file(method, source, tmp_path / "sr.nii.gz")
    assert sidecar["input_noise"]["warning"] and sidecar["input_noise"]["estimate"] > NOISE_WARNING_LEVEL
    quiet = write_nifti(tmp_path / "quiet.nii.gz", thick_input(0.0)[0].numpy(), THICK_AFFINE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        sidecar = super_resolve_file(method, quiet, tmp_path / "sr_quiet.nii.gz")
    assert sidecar["input_noise"]["warning"] is None


def test_the_cohort_qc_report_flags_noisy_inputs(tmp_path: Path) -> None:
    bundle = noise_free_bundle(tmp_path / "b", False)
    rows = [
        {"subject_id": "quiet", "lr": ("quiet.nii.gz", thick_input(0.0)[0].numpy())},
        {"subject_id": "noisy", "lr": ("noisy.nii.gz", thick_input(0.06, seed=1)[0].numpy())},
    ]
    write_manifest(tmp_path / "m.csv", rows, THICK_AFFINE)
    args = ["infer", "--manifest", str(tmp_path / "m.csv"), "--output-dir", str(tmp_path / "out")]
    with pytest.warns(UserWarning, match="noisy.nii.gz"):
        assert main([*args, "--method", str(bundle), "--no-progress"]) == 0
    report = pd.read_csv(tmp_path / "out" / "qc_report.csv").set_index("scan_id")
    assert report.loc["noisy", "input_noise"] > NOISE_WARNING_LEVEL > report.loc["quiet", "input_noise"]
    assert not report.loc["noisy", "in_range"] and "estimated noise" in report.loc["noisy", "flags"]
