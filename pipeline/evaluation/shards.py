# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Sharded evaluation: each shard's partial outputs, and their merge into the outputs of one run.

A shard (see :mod:`pipeline.sharding`) writes into ``<output-dir>/shards/<k>-of-<n>/`` its rows of
``per_scan_metrics.csv``, its ``failures.csv`` (when any), ``panel.png`` (its first scan with a
panel) and, last, ``shard.json``. The merge concatenates the partial tables in manifest order,
takes the panel of the earliest scan that has one and writes everything else through
:func:`~pipeline.evaluation.outputs.write_evaluation_outputs`: summary, statistics, box plots and
report are recomputed from the merged per-scan table. The merged files equal those of a
single-process run (the report's time stamp and the runtime values aside): metrics are read back
with round-trip float precision, so the summary is computed from the same numbers.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.cohort import CohortReport
from pipeline.evaluation.figures import PanelSlices
from pipeline.evaluation.outputs import (
    FAILURE_COLUMNS,
    EvaluationResult,
    EvaluationRun,
    write_evaluation_outputs,
    write_panels,
)
from pipeline.evaluation.summary import summarize
from pipeline.io import atomic_path, atomic_write_text
from pipeline.manifests import clean_scan_id
from pipeline.protocols import Protocol, get_protocol
from pipeline.sharding import (
    Shard,
    complete_records,
    completed_record,
    matching_completion_record,
    row_positions,
    shard_folder,
    write_completion_record,
    write_shard_record,
)

__all__ = [
    "RUN_RECORD",
    "merge_evaluation_shards",
    "read_completed_run",
    "read_evaluation_shard",
    "shard_is_reusable",
    "write_evaluation_shard",
    "write_run_record",
]

RUN_RECORD = "evaluation.json"
"""Written last by an unsharded run: its settings, rows and failure count (a rerun reuses a complete one)."""

_TEXT_COLUMNS = ("scan_id", "subject_id", "method", "precision", "mask_source")


def _read_tables(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A shard's per-scan table (numbers exactly as computed) and its failures (empty when none)."""
    path = folder / "per_scan_metrics.csv"
    numbers = [c for c in pd.read_csv(path, nrows=0).columns if c not in _TEXT_COLUMNS]  # downstream columns too
    per_scan = pd.read_csv(
        path,
        dtype={**{c: str for c in _TEXT_COLUMNS}, **{c: float for c in numbers}},
        keep_default_na=False,
        na_values={c: [""] for c in numbers},
        float_precision="round_trip",
    )
    path = folder / "failures.csv"
    failures = pd.read_csv(path, dtype=str, keep_default_na=False) if path.is_file() else None
    return per_scan, failures if failures is not None else pd.DataFrame(columns=list(FAILURE_COLUMNS))


def _result(folder: Path, per_scan: pd.DataFrame, failures: pd.DataFrame) -> EvaluationResult:
    files = {"per_scan_metrics": folder / "per_scan_metrics.csv", "record": folder / "shard.json"}
    files.update({name: folder / f"{name}.{ext}" for name, ext in (("failures", "csv"), ("panel", "png"))})
    files = {name: path for name, path in files.items() if path.is_file()}
    summary = summarize(per_scan) if not per_scan.empty else pd.DataFrame()
    return EvaluationResult(folder, per_scan, summary, failures, files)


def write_evaluation_shard(
    output_dir: str | os.PathLike,
    shard: Shard,
    run: EvaluationRun,
    settings: dict[str, Any],
    rows: list[tuple[int, str]],
    per_scan: pd.DataFrame,
    failures: pd.DataFrame,
    panel: PanelSlices | None,
) -> EvaluationResult:
    """Write a shard's partial outputs, then its record; return them as an :class:`EvaluationResult`.

    Args:
        output_dir: the run's output folder (the shard writes in ``shards/<k>-of-<n>/`` below it).
        run: the run (its manifest as given goes into the record for the report).
        settings: what the outputs depend on (see :func:`pipeline.sharding.write_shard_record`).
        rows: ``(position, scan_id)`` of the shard's rows.
        per_scan, failures: the shard's tables (:data:`PER_SCAN_COLUMNS`, :data:`FAILURE_COLUMNS`).
        panel: the slices of the shard's first scan with a panel, if any.
    """
    folder = shard_folder(output_dir, shard)
    atomic_write_text(folder / "per_scan_metrics.csv", per_scan.to_csv(index=False))
    CohortReport(failures=failures.to_dict("records")).write_failures(folder / "failures.csv")
    write_panels(panel, folder, run.protocol.name)
    write_shard_record(
        output_dir,
        shard,
        settings,
        rows,
        manifest=run.manifest,
        panel=panel.scan_id if panel is not None else None,
        failures=len(failures),
    )
    return _result(folder, per_scan, failures)


def shard_is_reusable(
    output_dir: str | os.PathLike, shard: Shard, settings: dict[str, Any], rows: list[tuple[int, str]]
) -> bool:
    """True when the shard completed without failures, with these settings and rows (a resumed run skips it)."""
    record = completed_record(output_dir, shard, settings, rows)
    return record is not None and record.get("failures") == 0


def write_run_record(
    output_dir: str | os.PathLike, settings: dict[str, Any], rows: list[tuple[int, str]], failures: int
) -> Path:
    """Mark an unsharded run complete: ``evaluation.json`` after its outputs (the same fields as a shard record)."""
    return write_completion_record(Path(output_dir) / RUN_RECORD, settings, rows, failures=failures)


def read_completed_run(
    output_dir: str | os.PathLike, settings: dict[str, Any], rows: list[tuple[int, str]]
) -> EvaluationResult | None:
    """The outputs of an unsharded run that completed without failures with these settings and rows, else ``None``."""
    out = Path(output_dir)
    record = matching_completion_record(out / RUN_RECORD, settings, rows)
    if record is None or record.get("failures") != 0 or not (out / "per_scan_metrics.csv").is_file():
        return None
    per_scan, failures = _read_tables(out)
    names = {"summary_csv": "summary.csv", "summary_md": "summary.md", "report": "report.md", "panel": "panel.png"}
    files = {"per_scan_metrics": out / "per_scan_metrics.csv", **{k: out / v for k, v in names.items()}}
    files = {name: path for name, path in files.items() if path.is_file()}
    return EvaluationResult(out, per_scan, summarize(per_scan), failures, files, reused=True)


def read_evaluation_shard(output_dir: str | os.PathLike, shard: Shard) -> EvaluationResult:
    """A complete shard's partial outputs as an :class:`EvaluationResult`."""
    folder = shard_folder(output_dir, shard)
    return _result(folder, *_read_tables(folder))


def merge_evaluation_shards(
    output_dir: str | os.PathLike, shard: Shard, protocol: Protocol | None = None
) -> EvaluationResult:
    """Merge the shards of ``shard``'s run into the run's outputs in ``output_dir``.

    Args:
        output_dir: the run's output folder.
        shard: any shard of the run (its record names the settings every shard must share).
        protocol: the run's protocol (default: the registered protocol its records name).

    Returns:
        The run's :class:`EvaluationResult`, as :func:`evaluate_cohort` without a shard returns it.

    Raises:
        pipeline.sharding.ShardsIncomplete: a shard is missing or was made with other settings.
        RuntimeError: no shard evaluated any scan.
    """
    out = Path(output_dir)
    records = complete_records(out, shard)
    positions = row_positions(records)
    positions.update({clean_scan_id(s): p for s, p in list(positions.items())})  # a failed scan's id is the cleaned one
    tables = [_read_tables(shard_folder(out, Shard(k, shard.count))) for k in range(shard.count)]
    per_scan = pd.concat([t[0] for t in tables if not t[0].empty] or [tables[0][0]], ignore_index=True)
    per_scan = per_scan.iloc[np.argsort(per_scan["scan_id"].map(positions).to_numpy(), kind="stable")]
    failures = pd.concat([t[1] for t in tables], ignore_index=True)
    # as one process lists them: failed scans first, then failed (scan, method) pairs, each in manifest order
    n_rows = sum(len(r["rows"]) for r in records)
    order = (failures["method"] != "").to_numpy() * n_rows + failures["scan_id"].map(positions).to_numpy()
    failures = failures.iloc[np.argsort(order, kind="stable")]
    panels = [(positions[r["panel"]], k, r["panel"]) for k, r in enumerate(records) if r.get("panel") is not None]
    panel_scan = None
    if panels:
        _, k, panel_scan = min(panels)
        for name in ("panel.png", "tissue_panel.png"):
            source = shard_folder(out, Shard(k, shard.count)) / name
            if source.is_file():
                with atomic_path(out / name) as tmp:
                    shutil.copyfile(source, tmp)
            elif name == "tissue_panel.png":
                (out / name).unlink(missing_ok=True)
    settings = records[0]["settings"]
    run = EvaluationRun(
        protocol or get_protocol(settings["protocol"]),
        records[0]["manifest"],
        settings["split"],
        [m["name"] for m in settings["methods"]],
        n_rows,
    )
    return write_evaluation_outputs(
        out, run, per_scan.reset_index(drop=True), failures.reset_index(drop=True), panel_scan
    )
