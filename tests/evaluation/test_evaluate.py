# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""End to end: evaluate_cohort on a manifest of tiny synthetic NIfTI volumes."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter

from pipeline.evaluation import PER_SCAN_COLUMNS, evaluate_cohort
from pipeline.protocols import get_protocol
from tests.conftest import blob_volume
from tests.utils import write_manifest

SHAPE = (25, 28, 21)  # odd sizes: the protocols crop to a multiple of their zoom
AFFINE = np.diag([1.0, 1.0, 1.2, 1.0])
BASELINES = ["nearest", "linear", "cubic", "kspace_zero_filled"]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """Three val rows: s1 with a mask, s2 without (BrainMask of the HR is used), s3 whose HR file is missing."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij"))
    brain = (grid**2).sum(0) < 0.7
    rows = []
    for i, name in enumerate(("s1", "s2")):
        hr = gaussian_filter(blob_volume(SHAPE, seed=i) * brain, 1.0)  # skull-stripped, edges not too hard
        rows.append(
            {
                "subject_id": f"sub-{i}",
                "scan_id": name,
                "split": "test",
                "hr": (f"{name}.nii.gz", hr.astype(np.float32)),
                "mask": (f"{name}_mask.nii.gz", brain.astype(np.uint8)) if i == 0 else "",
            }
        )
    rows.append({"subject_id": "sub-2", "scan_id": "s3", "split": "test", "hr": "missing.nii.gz", "mask": ""})
    rows.append({"subject_id": "sub-3", "scan_id": "t1", "split": "train", "hr": "missing.nii.gz", "mask": ""})
    return write_manifest(tmp_path / "manifest.csv", rows, AFFINE, qform_code=1, sform_code=1)


class Broken:
    """An SR method that always fails."""

    name = "broken"
    last_runtime_s = None

    def __call__(self, lr, zoom):
        raise RuntimeError("out of memory (simulated)")


@pytest.mark.parametrize("protocol", ["bicubic-x2", "kspace-2x2"])
def test_evaluate_cohort(manifest: Path, tmp_path: Path, protocol: str):
    out = tmp_path / f"eval_{protocol}"
    methods = [*BASELINES, Broken()]
    with pytest.warns(UserWarning) as caught:
        result = evaluate_cohort(
            manifest, protocol, methods, out, progress=False, save_volumes=protocol == "kspace-2x2"
        )
    messages = [str(w.message) for w in caught]
    assert any("s2: no mask in the manifest; computing the brain mask" in m for m in messages)
    assert sum("method broken failed" in m for m in messages) == 2

    outputs = ("per_scan_metrics.csv", "summary.csv", "summary.md", "boxplot_psnr_ssim.png", "panel.png", "report.md")
    for name in outputs:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*tmp*")), "temporary files left behind"

    per_scan = pd.read_csv(out / "per_scan_metrics.csv", dtype={"scan_id": str})
    assert list(per_scan.columns) == list(PER_SCAN_COLUMNS)
    assert sorted(per_scan["scan_id"].unique()) == ["s1", "s2"]
    assert sorted(per_scan["method"].unique()) == sorted(BASELINES)
    assert per_scan.set_index(["scan_id", "method"])["mask_source"].xs("s2", level=0).eq("BrainMask").all()
    metrics = per_scan[["psnr", "ssim", "nrmse", "psnr_slice", "ssim_slice", "nrmse_slice", "sharpness_rel"]]
    assert np.isfinite(metrics.to_numpy()).all()
    assert ((per_scan["ssim"] > 0) & (per_scan["ssim"] <= 1)).all()
    assert (per_scan["psnr"] > 15).all() and (per_scan["sharpness_rel"] < 1.1).all()

    failures = pd.read_csv(out / "failures.csv", dtype=str, keep_default_na=False)
    assert list(failures.columns) == ["scan_id", "method", "input", "error_type", "error", "where"]
    missing = failures[failures["scan_id"] == "s3"]
    assert len(missing) == 1 and missing["error_type"].item() == "FileNotFoundError" and missing["method"].item() == ""
    broken = failures[failures["method"] == "broken"]
    assert sorted(broken["scan_id"]) == ["s1", "s2"]
    assert not result.ok and len(result.failures) == 3

    summary = pd.read_csv(out / "summary.csv")
    assert summary["method"].tolist() == BASELINES
    for column in ("psnr_mean", "psnr_sd", "ssim_mean", "p_psnr_vs_cubic", "p_ssim_vs_cubic", "psnr_gain_vs_cubic"):
        assert column in summary.columns
    assert summary.set_index("method").loc["cubic", "n"] == 2

    report = (out / "report.md").read_text(encoding="utf-8")
    for text in (protocol, get_protocol(protocol).description, "max − min", *outputs[3:5], "monai"):
        assert text in report
    assert "missing.nii.gz" in report and "broken" in report

    if protocol == "kspace-2x2":
        saved = sorted(p.relative_to(out).as_posix() for p in (out / "volumes").rglob("*.nii.gz"))
        assert saved == sorted(f"volumes/{m}/{s}.nii.gz" for m in BASELINES for s in ("s1", "s2"))
        assert nib.load(str(out / "volumes" / "cubic" / "s1.nii.gz")).shape == (25, 28, 20)
        # Zero-filling is the natural inverse of k-space truncation; nearest is worst.
        psnr = result.summary.set_index("method")["psnr_mean"]
        assert psnr["kspace_zero_filled"] > psnr["cubic"] > psnr["linear"] > psnr["nearest"]


def test_rerun_without_failures_removes_stale_failures(manifest: Path, tmp_path: Path):
    out = tmp_path / "eval"
    (out).mkdir()
    (out / "failures.csv").write_text("stale\n", encoding="utf-8")
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    table = table[table["scan_id"] == "s1"]
    table.to_csv(manifest, index=False)
    result = evaluate_cohort(manifest, "bicubic-x2", ["nearest", "cubic"], out, progress=False)
    assert result.ok and not (out / "failures.csv").exists()
    assert "failures" not in result.files and "None." in (out / "report.md").read_text(encoding="utf-8")


def test_ill_arg(manifest: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate_cohort(manifest, "nope", ["cubic"], tmp_path / "o", progress=False)
    with pytest.raises(ValueError, match="unknown method"):
        evaluate_cohort(manifest, "bicubic-x2", ["cubic", "no-such-method"], tmp_path / "o", progress=False)
    with pytest.raises(ValueError, match="unique"):
        evaluate_cohort(manifest, "bicubic-x2", ["cubic", "cubic"], tmp_path / "o", progress=False)
    with pytest.raises(RuntimeError, match="no scan could be evaluated"):
        evaluate_cohort(manifest, "bicubic-x2", ["cubic"], tmp_path / "o", split="train", progress=False)


def test_crop_to_mask_keeps_metrics(manifest: Path, tmp_path: Path):
    """For a skull-stripped scan inside its field of view, cropping to the brain's box leaves the
    masked metrics (nearly) unchanged; the CLI exits 0."""
    from pipeline.cli.main import main

    shape = (40, 44, 36)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    brain = (grid**2).sum(0) < 0.3
    hr = gaussian_filter(blob_volume(shape, seed=3), 1.0) * brain
    row = {"subject_id": "sub-0", "scan_id": "s1", "split": "test"}
    row["hr"] = ("stripped.nii.gz", hr.astype(np.float32))
    row["mask"] = ("stripped_mask.nii.gz", brain.astype(np.uint8))
    write_manifest(manifest, [row], AFFINE, qform_code=1, sform_code=1)
    whole = evaluate_cohort(manifest, "kspace-2x2", ["cubic"], tmp_path / "whole", progress=False)
    args = ["evaluate", "--manifest", str(manifest), "--protocol", "kspace-2x2", "--methods", "cubic"]
    options = ["--output-dir", str(tmp_path / "crop"), "--crop-to-mask", "--save-volumes", "--no-progress"]
    assert main([*args, *options]) == 0
    cropped = pd.read_csv(tmp_path / "crop" / "per_scan_metrics.csv")
    assert cropped["psnr"].iloc[0] == pytest.approx(whole.per_scan["psnr"].iloc[0], abs=0.05)
    assert cropped["data_range"].iloc[0] == pytest.approx(whole.per_scan["data_range"].iloc[0])
    saved = nib.load(str(tmp_path / "crop" / "volumes" / "cubic" / "s1.nii.gz"))
    assert all(n % d == 0 for n, d in zip(saved.shape, get_protocol("kspace-2x2").zoom))


def test_thick_slice_evaluation_with_qc_and_adaptation(tmp_path: Path) -> None:
    """Through-plane protocol, an adapted bundle and the trust-check columns, with uncertainty in the panel."""
    from pipeline.inference import load_bundle_method
    from pipeline.training.adaptation import AdaptationBudget, AdaptedSR
    from tests.conftest import head_volume, untrained_thick_slice_bundle

    rows = []
    for i in range(2):
        hr = head_volume((20, 22, 24), seed=i)
        mask = (hr > 300).astype(np.uint8)
        rows.append(
            {"subject_id": f"s{i}", "split": "test", "hr": (f"hr{i}.nii.gz", hr), "mask": (f"mask{i}.nii.gz", mask)}
        )
    write_manifest(tmp_path / "m.csv", rows)
    thick = load_bundle_method(untrained_thick_slice_bundle(tmp_path / "bundle"), device="cpu", precision="fp32")
    adapted = AdaptedSR(thick, AdaptationBudget(max_steps=2, batch_size=2, patch_size=8))
    result = evaluate_cohort(
        tmp_path / "m.csv",
        "thick-5mm-gap1mm",
        ["cubic", thick, adapted],
        tmp_path / "out",
        qc=True,
        save_volumes=True,
        progress=False,
    )
    assert result.ok
    table = result.per_scan.set_index(["scan_id", "method"])
    assert np.isnan(table.loc[("s0", "cubic"), "data_consistency"])  # baselines: no trust check
    for name in ("thick_slice", "thick_slice+adapt"):
        row = table.loc[("s0", name)]
        assert 0 <= row["data_consistency"] < 1 and row["uncertainty_mean"] >= 0  # untrained weights: any value
        assert -1 <= row["uncertainty_error_spearman"] <= 1
    assert (tmp_path / "out" / "volumes" / "thick_slice" / "s0_uncertainty.nii.gz").is_file()
    assert (tmp_path / "out" / "panel.png").is_file()


def test_a_complete_run_is_reused_and_overwrite_recomputes(manifest: Path, tmp_path: Path) -> None:
    """--overwrite means the same as in infer: an earlier run with the same settings is reused, unless asked;
    a run with failures (the fixture's missing s3) is always redone."""
    out = tmp_path / "eval"
    assert not evaluate_cohort(manifest, "bicubic-x2", ["cubic"], out, progress=False).ok
    assert not evaluate_cohort(manifest, "bicubic-x2", ["cubic"], out, progress=False).reused
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(line for line in lines if ",s3," not in line) + "\n")
    first = evaluate_cohort(manifest, "bicubic-x2", ["cubic", "linear"], out, progress=False)
    assert not first.reused and (out / "evaluation.json").is_file()
    again = evaluate_cohort(manifest, "bicubic-x2", ["cubic", "linear"], out, progress=False)
    assert again.reused
    pd.testing.assert_frame_equal(again.per_scan, first.per_scan, check_dtype=False)
    assert not evaluate_cohort(manifest, "bicubic-x2", ["cubic", "nearest"], out, progress=False).reused
    assert not evaluate_cohort(manifest, "bicubic-x2", ["cubic", "nearest"], out, progress=False, resume=False).reused


def test_a_bundle_retrained_in_place_is_not_reused(manifest: Path, tmp_path: Path) -> None:
    """A run folder keeps its version while it trains: the weights' checksum decides whether a run is reused."""
    import shutil

    import torch

    from tests.conftest import REPO_ROOT

    bundle = tmp_path / "srcnn_run"
    shutil.copytree(REPO_ROOT / "bundles" / "srcnn" / "configs", bundle / "configs")
    (bundle / "models").mkdir()
    shutil.copyfile(REPO_ROOT / "bundles" / "srcnn" / "models" / "model.pt", bundle / "models" / "model.pt")
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(line for line in lines if ",s3," not in line) + "\n")
    out = tmp_path / "eval"
    assert not evaluate_cohort(manifest, "bicubic-x2", ["cubic", str(bundle)], out, progress=False).reused
    assert evaluate_cohort(manifest, "bicubic-x2", ["cubic", str(bundle)], out, progress=False).reused
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    torch.save({k: v * 1.01 for k, v in state.items()}, bundle / "models" / "model.pt")
    assert not evaluate_cohort(manifest, "bicubic-x2", ["cubic", str(bundle)], out, progress=False).reused
