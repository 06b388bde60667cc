# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Method × protocol results table (markdown) from ``mrisr evaluate`` output folders.

Usage: ``mrisr report results-table PROTOCOL=DIR [PROTOCOL=DIR ...]``, where each DIR holds the
``summary.csv`` written by ``mrisr evaluate`` for that protocol. A protocol may be given several
folders (networks scored in separate runs on the same scans, each with its own cubic reference): a
method's first occurrence is kept. Each cell is "PSNR ± sd (gain vs cubic of the same run)" in dB;
the results table of docs/results.md is generated this way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

__all__ = ["results_table"]


def results_table(summaries: Mapping[str, str | Path] | Sequence[tuple[str, str | Path]]) -> str:
    """Markdown table: one row per method, one column per protocol (from ``<dir>/summary.csv``).

    Args:
        summaries: protocol → folder, or (protocol, folder) pairs where a protocol may repeat.
    """
    pairs = list(summaries.items()) if isinstance(summaries, Mapping) else list(summaries)
    cells: dict[str, dict[str, str]] = {}
    for protocol, folder in pairs:
        table = pd.read_csv(Path(folder) / "summary.csv")
        for row in table.itertuples():
            gain = (
                "" if row.method == "cubic" or pd.isna(row.psnr_gain_vs_cubic) else f" ({row.psnr_gain_vs_cubic:+.2f})"
            )
            cells.setdefault(row.method, {}).setdefault(protocol, f"{row.psnr_mean:.2f} ± {row.psnr_sd:.2f}{gain}")
    protocols = list(dict.fromkeys(protocol for protocol, _ in pairs))
    lines = ["| method | " + " | ".join(protocols) + " |", "|---|" + "---:|" * len(protocols)]
    for method, by_protocol in cells.items():
        lines.append(f"| {method} | " + " | ".join(by_protocol.get(p, "—") for p in protocols) + " |")
    return "\n".join(lines)

