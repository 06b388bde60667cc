"""A bundle's eval_metrics written from an ``mrisr evaluate`` folder: paired gain, scans above cubic, split."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.evaluation.bundle_scores import bundle_scores, write_bundle_scores


def write_results(folder: Path) -> Path:
    folder.mkdir()
    rows = []
    for scan, (cubic, net) in {"1004": (34.0, 37.0), "1005": (35.0, 34.5), "0007": (33.0, 36.5)}.items():
        rows.append({"scan_id": scan, "method": "cubic", "psnr": cubic, "ssim": 0.97, "sharpness_rel": 0.94})
        rows.append({"scan_id": scan, "method": "srcnn", "psnr": net, "ssim": 0.98, "sharpness_rel": 0.99})
    pd.DataFrame(rows).to_csv(folder / "per_scan_metrics.csv", index=False)
    return folder


def test_scores_are_paired_over_scans(tmp_path: Path):
    scores = bundle_scores(write_results(tmp_path / "res"), "srcnn")
    assert scores["split"] == "test" and scores["scans"] == 3 and scores["scans_above_cubic"] == 2
    assert scores["psnr_gain_db"] == pytest.approx(2.0)
    assert scores["mrisr_evaluate_psnr_db"] == 36.0 and scores["mrisr_evaluate_cubic_psnr_db"] == 34.0
    with pytest.raises(ValueError, match="no rows for method 'rrlsrn'"):
        bundle_scores(tmp_path / "res", "rrlsrn")
    with pytest.raises(ValueError, match="per_scan_metrics.csv: no such file"):
        bundle_scores(tmp_path, "srcnn")


def test_write_replaces_eval_metrics(tmp_path: Path):
    results = write_results(tmp_path / "res")
    configs = tmp_path / "srcnn" / "configs"
    configs.mkdir(parents=True)
    meta = {"name": "srcnn", "eval_metrics": {}, "eval_metrics_note": "not trained yet"}
    (configs / "metadata.json").write_text(json.dumps(meta))
    assert write_bundle_scores(tmp_path / "srcnn", results)["scans"] == 3
    written = json.loads((configs / "metadata.json").read_text())
    assert written["eval_metrics"]["psnr_gain_db"] == pytest.approx(2.0) and "eval_metrics_note" not in written
