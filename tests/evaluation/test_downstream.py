# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Downstream checks: tissue segmentation (ANTs Atropos) and structure agreement on synthetic volumes whose
answer is known, then end to end through evaluate_cohort and its report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluation import evaluate_cohort, merge_evaluation_shards
from pipeline.evaluation.downstream import check_downstream, downstream_reference
from pipeline.evaluation.structures import NAMED_STRUCTURES, structure_agreement
from pipeline.evaluation.tissue import (
    dice,
    segment_tissues,
    tissue_agreement,
    tissue_volumes_ml,
)
from pipeline.sharding import Shard
from tests.utils import write_manifest

SHAPE = (36, 40, 32)
INTENSITY = {1: 250.0, 2: 600.0, 3: 900.0}  # T1: CSF < GM < WM


def tissue_phantom(seed: int = 0, noise: float = 20.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 'brain' of three nested tissues: WM core, GM shell, CSF rim and ventricles.

    Returns:
        The (X, Y, Z) T1-like image, the brain mask and the true labels (1 CSF, 2 GM, 3 WM).
    """
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij"))
    r = np.sqrt((grid**2).sum(0))
    labels = np.zeros(SHAPE, np.uint8)
    labels[r < 0.9] = 1
    labels[r < 0.8] = 2
    labels[r < 0.55] = 3
    labels[(np.abs(grid[0]) < 0.1) & (np.abs(grid[1]) < 0.25) & (np.abs(grid[2]) < 0.2)] = 1
    image = np.zeros(SHAPE, np.float32)
    for label, value in INTENSITY.items():
        image[labels == label] = value
    image += np.random.default_rng(seed).normal(0, noise, SHAPE).astype(np.float32)
    return image, labels > 0, labels


def test_segment_tissues_recovers_three_known_tissues():
    image, mask, truth = tissue_phantom()
    labels = segment_tissues(image, mask, (1.0, 1.0, 1.0))
    assert labels.dtype == np.uint8 and labels.shape == SHAPE
    assert not labels[~mask].any(), "labels outside the mask"
    for k in (1, 2, 3):
        assert dice(labels == k, truth == k) > 0.97, k


def test_segment_tissues_names_classes_by_contrast():
    """A T2-like image (CSF brightest, WM darkest) gives the same CSF/GM/WM labels with contrast='t2'."""
    image, mask, truth = tissue_phantom()
    t2 = np.where(mask, 1200.0 - image, 0.0).astype(np.float32)
    labels = segment_tissues(t2, mask, (1.0, 1.0, 1.0), contrast="t2")
    for k in (1, 2, 3):
        assert dice(labels == k, truth == k) > 0.97, k
    with pytest.raises(ValueError, match="unknown contrast"):
        segment_tissues(image, mask, (1.0, 1.0, 1.0), contrast="pd")
    with pytest.raises(ValueError, match="empty"):
        segment_tissues(image, np.zeros_like(mask), (1.0, 1.0, 1.0))


def test_tissue_agreement_known_values():
    reference = np.zeros((10, 10, 10), np.uint8)
    reference[:5] = 2  # 500 GM voxels
    reference[5:] = 3  # 500 WM voxels
    grown = reference.copy()
    grown[5] = 2  # 100 WM voxels become GM
    columns = tissue_agreement(grown, reference)
    assert columns["volume_error_gm_pct"] == pytest.approx(20.0)
    assert columns["volume_error_wm_pct"] == pytest.approx(-20.0)
    assert columns["dice_gm"] == pytest.approx(2 * 500 / (600 + 500))
    assert columns["dice_wm"] == pytest.approx(2 * 400 / (400 + 500))
    assert np.isnan(columns["dice_csf"]) and np.isnan(columns["volume_error_csf_pct"])  # no CSF anywhere
    manual = tissue_agreement(reference, reference, suffix="_manual")
    assert manual == {"dice_csf_manual": manual["dice_csf_manual"], "dice_gm_manual": 1.0, "dice_wm_manual": 1.0}
    assert tissue_volumes_ml(reference, (2.0, 1.0, 1.0))["volume_gm_ml"] == pytest.approx(1.0)


def test_structure_agreement_known_values():
    hr = np.full((20, 20, 20), 100.0)
    labels = np.zeros(hr.shape, np.int32)
    labels[5:10, 5:10, 5:10] = NAMED_STRUCTURES["hippocampus"][0]
    labels[12:16, 12:16, 12:16] = NAMED_STRUCTURES["thalamus"][1]
    hr[labels > 0] = 50.0
    same = structure_agreement(hr, hr, labels)
    assert same["intensity_error_hippocampus_pct"] == 0.0 and same["volume_error_thalamus_pct"] == 0.0
    assert np.isnan(same["intensity_error_putamen_pct"])  # not in this label map
    brighter = structure_agreement(np.where(labels > 0, 55.0, hr), hr, labels)
    assert brighter["intensity_error_hippocampus_pct"] == pytest.approx(10.0)
    assert brighter["volume_error_hippocampus_pct"] == pytest.approx(-100.0)  # out of the HR's intensity window


def test_downstream_reference_checks_its_inputs():
    image, mask, _ = tissue_phantom()
    with pytest.raises(ValueError, match="unknown downstream"):
        check_downstream(["volumes"])
    with pytest.raises(ValueError, match="labels"):
        downstream_reference(["labels"], image, mask, (1.0, 1.0, 1.0))


@pytest.mark.slow
def test_evaluate_cohort_downstream_tissue_and_labels(tmp_path: Path):
    rows = []
    for i in range(2):
        image, mask, truth = tissue_phantom(seed=i, noise=10.0)
        anatomy = np.where(truth == 3, NAMED_STRUCTURES["thalamus"][0], 0).astype(np.int16)
        rows.append(
            {
                "subject_id": f"sub-{i}",
                "scan_id": f"s{i}",
                "split": "test",
                "hr": (f"s{i}.nii.gz", image),
                "mask": (f"s{i}_mask.nii.gz", mask.astype(np.uint8)),
                "labels": (f"s{i}_labels.nii.gz", anatomy),
                "tissue_labels": (f"s{i}_tissues.nii.gz", truth),
            }
        )
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    out = tmp_path / "eval"
    result = evaluate_cohort(
        manifest, "bicubic-x2", ["nearest", "cubic"], out, progress=False, downstream=["tissue", "labels"]
    )
    table = pd.read_csv(out / "per_scan_metrics.csv")
    for column in (
        "dice_gm",
        "dice_wm",
        "volume_error_gm_pct",
        "dice_gm_manual",
        "segmentation_s",
        "intensity_error_thalamus_pct",
        "volume_error_thalamus_pct",
    ):
        assert column in table and table[column].notna().all(), column
    assert (table["dice_wm"] > 0.9).all() and (table["dice_wm_manual"] > 0.9).all()
    assert np.isnan(table["intensity_error_hippocampus_pct"]).all()  # absent from these label maps
    assert "p_dice_gm_vs_cubic" in result.summary
    report = (out / "report.md").read_text()
    assert "ANTs Atropos" in report and "-c [3,0]" in report and "GM Dice vs HR" in report
    for name in ("downstream_boxplots.png", "tissue_panel.png"):
        assert (out / name).stat().st_size > 0, name

    plain = evaluate_cohort(manifest, "bicubic-x2", ["cubic"], tmp_path / "plain", progress=False)
    assert "dice_gm" not in plain.per_scan and not (tmp_path / "plain" / "tissue_panel.png").exists()

    sharded = tmp_path / "sharded"
    for index in range(2):
        evaluate_cohort(
            manifest,
            "bicubic-x2",
            ["nearest", "cubic"],
            sharded,
            progress=False,
            downstream=["tissue", "labels"],
            shard=Shard(index, 2),
        )
    merged = merge_evaluation_shards(sharded, Shard(0, 2))
    timings = ["runtime_s", "segmentation_s"]
    pd.testing.assert_frame_equal(merged.per_scan.drop(columns=timings), table.drop(columns=timings), check_dtype=False)
    assert (sharded / "tissue_panel.png").is_file() and "GM Dice vs HR" in (sharded / "report.md").read_text()


@pytest.mark.slow
def test_infer_manifest_downstream_tissue_compares_with_cubic(tmp_path: Path, capsys: pytest.CaptureFixture):
    """No ground truth: each output's tissue volumes beside cubic's, on a head with skull; a bad row is reported."""
    from pipeline.cli.main import main
    from tests.conftest import head_volume

    rows = [{"subject_id": "sub-1", "lr": ("head.nii.gz", head_volume((40, 44, 18)))}]
    rows.append({"subject_id": "sub-2", "lr": "missing.nii.gz"})
    write_manifest(tmp_path / "manifest.csv", rows, np.diag([1.0, 1.0, 2.0, 1.0]))
    out = tmp_path / "out"
    args = ["infer", "--manifest", str(tmp_path / "manifest.csv"), "--output-dir", str(out), "--method", "linear"]
    args += ["--zoom", "1", "1", "2", "--no-qc", "--downstream", "tissue", "--no-progress"]
    assert main(args) == 1  # the missing row fails, the other is done
    record = json.loads((out / "sub-1_sr-linear_tissue.json").read_text())
    assert record["method"] == "linear" and "ANTs Atropos" in record["segmenter"]
    assert all(record[f"{t}_ml"] > 0 and record[f"cubic_{t}_ml"] > 0 for t in ("csf", "gm", "wm"))
    table = pd.read_csv(out / "tissue_volumes.csv")
    assert list(table["scan_id"]) == ["sub-1"] and "gm_difference_pct" in table
    assert "sub-2" in (out / "failures.csv").read_text()
    assert "tissue volumes: " in capsys.readouterr().out
