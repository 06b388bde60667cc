"""The README's method × protocol table is generated from evaluation summaries."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.evaluation.results_table import results_table


def _summary(folder: Path, rows: list[tuple[str, float, float, float]]) -> Path:
    folder.mkdir()
    pd.DataFrame(rows, columns=["method", "psnr_mean", "psnr_sd", "psnr_gain_vs_cubic"]).to_csv(
        folder / "summary.csv", index=False
    )
    return folder


def test_table_has_a_row_per_method_and_a_column_per_protocol(tmp_path: Path) -> None:
    a = _summary(tmp_path / "a", [("cubic", 30.0, 0.5, float("nan")), ("net", 31.234, 0.4, 1.234)])
    b = _summary(tmp_path / "b", [("cubic", 28.0, 0.3, float("nan"))])
    text = results_table({"bicubic-x2": a, "blur-x2": b})
    lines = text.splitlines()
    assert lines[0] == "| method | bicubic-x2 | blur-x2 |"
    assert "| cubic | 30.00 ± 0.50 | 28.00 ± 0.30 |" in lines
    assert "| net | 31.23 ± 0.40 (+1.23) | — |" in lines


def test_a_protocol_may_repeat_and_the_first_occurrence_wins(tmp_path: Path) -> None:
    a = _summary(tmp_path / "a", [("cubic", 30.0, 0.5, float("nan")), ("net", 31.0, 0.4, 1.0)])
    b = _summary(tmp_path / "b", [("cubic", 30.01, 0.5, float("nan")), ("other", 32.0, 0.4, 1.99)])
    lines = results_table([("bicubic-x2", a), ("bicubic-x2", b)]).splitlines()
    assert lines[0] == "| method | bicubic-x2 |"
    assert "| cubic | 30.00 ± 0.50 |" in lines and "| other | 32.00 ± 0.40 (+1.99) |" in lines

