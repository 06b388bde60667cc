"""Training-log curves: logs joined across stages and resumes, and the figure written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.analysis.curves import join_logs, plot_training_curves


def write_log(path: Path, iterations: list[int], gains: list[float | None]) -> Path:
    pd.DataFrame(
        {
            "epoch": range(1, len(iterations) + 1),
            "iteration": iterations,
            "train_loss": [0.1] * len(iterations),
            "psnr_gain": gains,
        }
    ).to_csv(path, index=False)
    return path


def test_join_shifts_a_restarted_stage_and_keeps_a_resumed_one(tmp_path: Path):
    first = write_log(tmp_path / "a.csv", [100, 200], [1.0, 1.5])
    resumed = write_log(tmp_path / "b.csv", [300, 400], [None, 1.7])
    restarted = write_log(tmp_path / "c.csv", [50, 100], [1.8, 1.9])
    log = join_logs([first, resumed, restarted])
    assert list(log["iteration"]) == [100, 200, 300, 400, 450, 500]
    assert list(log["stage"]) == [0, 0, 1, 1, 2, 2]
    from_shipped = join_logs([tmp_path / "c.csv"], start_iteration=600)  # a run started from 600-iteration weights
    assert list(from_shipped["iteration"]) == [650, 700]
    (tmp_path / "empty.csv").write_text("epoch\n")
    with pytest.raises(ValueError, match="empty.csv"):
        join_logs([tmp_path / "empty.csv"])


def test_plot_writes_png(tmp_path: Path):
    log = write_log(tmp_path / "a.csv", [10, 20, 30], [0.5, None, 0.9])
    assert plot_training_curves(join_logs([log]), tmp_path / "curve.png", title="srcnn") == tmp_path / "curve.png"
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    no_validation = join_logs([write_log(tmp_path / "b.csv", [10], [None])])
    with pytest.raises(ValueError, match="psnr_gain"):
        plot_training_curves(no_validation, tmp_path / "x.png")
