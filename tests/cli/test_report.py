"""``mrisr report <tool>``: every research tool has a subcommand; the cheap ones run on tiny synthetic inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline.analysis.gan_selection import snapshot_path
from pipeline.cli.main import main

TOOLS = ("results-table", "bundle-scores", "qc-limits", "complexity", "curves", "gan-selection", "critic-separation")


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_has_help(tool: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", tool, "--help"])
    assert exit_.value.code == 0
    assert f"mrisr report {tool}" in capsys.readouterr().out


def test_report_lists_its_tools(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and all(tool in out for tool in TOOLS)


def _summary(folder: Path, rows: list[tuple[str, float, float, float]]) -> Path:
    folder.mkdir()
    columns = ["method", "psnr_mean", "psnr_sd", "psnr_gain_vs_cubic"]
    pd.DataFrame(rows, columns=columns).to_csv(folder / "summary.csv", index=False)
    return folder


def test_results_table_prints_markdown(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _summary(tmp_path / "a", [("cubic", 30.0, 0.5, float("nan")), ("net", 31.234, 0.4, 1.234)])
    b = _summary(tmp_path / "b", [("cubic", 28.0, 0.3, float("nan"))])
    assert main(["report", "results-table", f"bicubic-x2={a}", f"blur-x2={b}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| method | bicubic-x2 | blur-x2 |"
    assert "| net | 31.23 ± 0.40 (+1.23) | — |" in lines


def test_results_table_usage_and_input_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", "results-table", "no-equals-sign"])
    assert exit_.value.code == 2 and "PROTOCOL=DIR" in capsys.readouterr().err
    assert main(["report", "results-table", f"bicubic-x2={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrisr: error: ") and "summary.csv" in err and len(err.splitlines()) == 1


def test_curves_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    log = tmp_path / "metrics.csv"
    table = {
        "epoch": [1, 2, 3],
        "iteration": [10, 20, 30],
        "train_loss": [0.3, 0.2, 0.1],
        "psnr_gain": [0.5, None, 0.9],
    }
    pd.DataFrame(table).to_csv(log, index=False)
    png = tmp_path / "curve.png"
    assert main(["report", "curves", str(log), "-o", str(png), "--title", "srcnn"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(png) in capsys.readouterr().out


def test_bundle_scores_writes_eval_metrics(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "results"
    results.mkdir()
    rows = [
        {"scan_id": scan, "method": method, "psnr": psnr, "ssim": 0.97, "sharpness_rel": 0.95}
        for scan, cubic, net in (("1004", 34.0, 37.0), ("1005", 35.0, 34.5))
        for method, psnr in (("cubic", cubic), ("srcnn", net))
    ]
    pd.DataFrame(rows).to_csv(results / "per_scan_metrics.csv", index=False)
    configs = tmp_path / "srcnn" / "configs"
    configs.mkdir(parents=True)
    (configs / "metadata.json").write_text(json.dumps({"name": "srcnn", "eval_metrics": {}}))
    assert main(["report", "bundle-scores", str(tmp_path / "srcnn"), str(results)]) == 0
    written = json.loads((configs / "metadata.json").read_text())["eval_metrics"]
    assert written["scans_above_cubic"] == 1 and json.loads(capsys.readouterr().out) == written


def test_gan_selection_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "logs").mkdir()
    rows = [
        {"epoch": 1, "iteration": 300, "val_psnr": 38.0, "psnr_gain": 3.0, "val_sharpness": 0.970},
        {"epoch": 2, "iteration": 600, "val_psnr": 37.8, "psnr_gain": 2.8, "val_sharpness": 0.991},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "logs" / "metrics.csv", index=False)
    for epoch in (1, 2):
        snapshot_path(tmp_path, epoch).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"w": torch.tensor([float(epoch)])}, snapshot_path(tmp_path, epoch))
    assert main(["report", "gan-selection", str(tmp_path), "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("epoch 2 ") and not (tmp_path / "models" / "model.pt").exists()
    assert main(["report", "gan-selection", str(tmp_path), "--min-sharpness", "0.95"]) == 0
    assert torch.load(tmp_path / "models" / "model.pt")["w"].item() == 1.0
    assert main(["report", "gan-selection", str(tmp_path), "--min-sharpness", "1.5"]) == 1
    assert "sharpest is epoch 2" in capsys.readouterr().err
