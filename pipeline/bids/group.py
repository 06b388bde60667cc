# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""The ``group`` level of ``mrisr bids``: one table of every super-resolved output in a derivatives folder.

A row per output whose sidecar says it is complete (QC maps and other files are left out): participant,
session, suffix, input (BIDS URI), output (path in the derivatives), method and bundle version, the QC
record (network methods) and, where ``--downstream tissue`` wrote ``<stem>_tissue.json``, the tissue
volumes beside cubic B-spline's. Written as ``mrisr_group.tsv`` (tab-separated, ``n/a`` where empty).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.bids.derivatives import GROUP_TABLE, has_bids_fields
from pipeline.bids.naming import RESOLUTION_LABEL, bare_label
from pipeline.evaluation.tissue import TISSUES
from pipeline.evaluation.volume_check import tissue_check_path
from pipeline.inference import read_sidecar
from pipeline.io import atomic_write_text, read_json

__all__ = ["GROUP_COLUMNS", "group_table", "write_group_table"]

GROUP_COLUMNS = (
    "participant",
    "session",
    "suffix",
    "input",
    "output",
    "method",
    "bundle_version",
    "qc_in_range",
    "qc_flags",
    "data_consistency",
    "uncertainty_relative",
)
"""The columns of every group table; the tissue-volume columns follow when some output has them."""

_TISSUE_COLUMNS = tuple(
    f"{prefix}{tissue}{unit}"
    for tissue in TISSUES
    for prefix, unit in (("", "_ml"), ("cubic_", "_ml"), ("", "_difference_pct"))
)


def _row(out_dir: Path, path: Path, entities: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The table row of one output: its entities, sidecar and tissue check (if any)."""
    qc = record.get("qc") or {}
    row: dict[str, Any] = {
        "participant": f"sub-{entities['subject']}",
        "session": f"ses-{entities['session']}" if "session" in entities else None,
        "suffix": entities["suffix"],
        "input": record["Sources"][0],
        "output": path.relative_to(out_dir).as_posix(),
        "method": record.get("method"),
        "bundle_version": (record.get("bundle") or {}).get("version"),
        "qc_in_range": qc.get("in_range"),
        "qc_flags": "; ".join(qc.get("flags") or []) if qc else None,
        "data_consistency": qc.get("data_consistency"),
        "uncertainty_relative": qc.get("uncertainty_relative"),
    }
    tissue_path = tissue_check_path(path)
    if tissue_path.is_file():
        tissue = read_json(tissue_path)
        row.update({column: tissue.get(column) for column in _TISSUE_COLUMNS})
        row.update({"tissue_contrast": tissue.get("contrast"), "tissue_flags": "; ".join(tissue.get("flags", []))})
    return row


def group_table(
    out_dir: str | os.PathLike,
    *,
    participants: Sequence[str] | None = None,
    sessions: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The cohort table of the outputs in the derivatives folder ``out_dir``, in path order.

    Args:
        participants, sessions: only these labels (with or without ``sub-``/``ses-``; ``None``: all).

    Raises:
        ValueError: ``out_dir`` holds no ``dataset_description.json`` or no complete output (naming it).
    """
    from bids import BIDSLayout  # slow to import: only when a dataset is read

    out = Path(out_dir).expanduser().resolve()
    if not (out / "dataset_description.json").is_file():
        raise ValueError(f"{out_dir}: no mrisr derivatives (no dataset_description.json); run the participant level")
    query = {
        "subject": [bare_label(p, "sub") for p in participants] if participants else None,
        "session": [bare_label(s, "ses") for s in sessions] if sessions else None,
    }
    layout = BIDSLayout(out, validate=False)
    files = layout.get(
        res=RESOLUTION_LABEL, extension=[".nii", ".nii.gz"], **{key: value for key, value in query.items() if value}
    )
    rows = []
    for bids_file in files:
        path = Path(bids_file.path)
        record = read_sidecar(path)
        if record and record.get("status") == "complete" and has_bids_fields(path):
            rows.append(_row(out, path, bids_file.get_entities(), record))
    if not rows:
        raise ValueError(f"{out_dir}: no complete super-resolved output (res-{RESOLUTION_LABEL}) found")
    table = pd.DataFrame(rows)
    columns = [*GROUP_COLUMNS, *(c for c in table.columns if c not in GROUP_COLUMNS)]
    return table.reindex(columns=columns).sort_values("output", ignore_index=True)


def write_group_table(table: pd.DataFrame, out_dir: str | os.PathLike) -> Path:
    """Write ``table`` to ``<out_dir>/mrisr_group.tsv`` atomically (tab-separated, ``n/a`` where empty, 6 digits)."""
    text = table.to_csv(sep="\t", index=False, na_rep="n/a", float_format="%.6g")
    return atomic_write_text(Path(out_dir) / GROUP_TABLE, text)
