# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""The downstream table of the README and docs/results.md, from ``mrisr evaluate --downstream tissue`` runs.

Reads ``<runs>/<protocol>/per_scan_metrics.csv`` for each protocol run, copies the tissue and structure
columns per scan to ``docs/results/downstream/<protocol>_per_scan.csv`` (committed, so the table can be
re-derived), and prints one markdown table: per protocol and method, GM and WM Dice against the HR's
segmentation and GM and WM volume error (mean ± sd over scans), the number of scans on which a network's
GM and WM Dice are above cubic's, and whether the issue 25 targets hold.

Usage::

    python benchmarks/downstream_table.py results/downstream thick-4mm blur-x2 bicubic-x2 bicubic-x4 kspace-2x2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pipeline.evaluation.downstream import downstream_column_names
from pipeline.inference import BASELINE_NAMES
from pipeline.io import atomic_write_text

KEEP = ["scan_id", "method", "psnr", "data_range", *downstream_column_names()]
GM_VOLUME_TARGET_PCT = 2.0


def _cell(values: pd.Series, spec: str) -> str:
    return f"{values.mean():{spec}} ± {values.std(ddof=1):{spec.lstrip('+')}}"


def protocol_rows(protocol: str, per_scan: pd.DataFrame) -> list[str]:
    """Markdown rows of one protocol's run: cubic first, then each method."""
    cubic = per_scan[per_scan["method"] == "cubic"].set_index("scan_id")
    rows = []
    for method, group in per_scan.groupby("method", sort=False):
        group = group.set_index("scan_id")
        above = "—"
        if method not in BASELINE_NAMES:
            better = (group["dice_gm"] > cubic["dice_gm"]) & (group["dice_wm"] > cubic["dice_wm"])
            above = f"{int(better.sum())} of {len(group)}"
        rows.append(
            f"| `{protocol}` | {method} | {_cell(group['dice_gm'], '.4f')} "
            f"| {_cell(group['volume_error_gm_pct'], '+.2f')} "
            f"| {_cell(group['dice_wm'], '.4f')} | {_cell(group['volume_error_wm_pct'], '+.2f')} | {above} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="folder holding one evaluate run per protocol")
    parser.add_argument("protocols", nargs="+")
    parser.add_argument("--csv-dir", type=Path, default=Path("docs/results/downstream"))
    args = parser.parse_args()
    lines = [
        "| protocol | method | GM Dice vs HR | GM volume error (%) | WM Dice vs HR | WM volume error (%) "
        "| GM and WM Dice above cubic |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for protocol in args.protocols:
        per_scan = pd.read_csv(args.runs / protocol / "per_scan_metrics.csv", dtype={"scan_id": str})
        kept = per_scan[[c for c in KEEP if c in per_scan]]
        args.csv_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.csv_dir / f"{protocol}_per_scan.csv", kept.to_csv(index=False, float_format="%.6g"))
        lines += protocol_rows(protocol, per_scan)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
