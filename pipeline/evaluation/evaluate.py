# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Evaluate SR methods over a cohort: synthesise LR from HR with a protocol, super-resolve, score.

For each manifest row: load HR (and its brain mask), crop both to a multiple of the protocol's
zoom, make LR with the protocol (seeded, deterministic), run every method, and compute masked
whole-volume and slice-wise PSNR/SSIM/NRMSE, relative sharpness and runtime. A failing scan or
method is recorded in ``failures.csv`` and the run goes on. A shard of a sharded run (see
:mod:`pipeline.sharding`) scores only its rows and writes them as partial outputs, which
:mod:`pipeline.evaluation.shards` merges into the same files.
"""

from __future__ import annotations

import os
import time
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.data import MetaTensor
from scipy.stats import spearmanr
from tqdm import tqdm

from pipeline.cohort import run_cohort
from pipeline.evaluation.downstream import (
    check_downstream,
    downstream_column_names,
    downstream_columns,
    downstream_reference,
)
from pipeline.evaluation.figures import PanelSlices
from pipeline.evaluation.metrics import data_range, nrmse, psnr, slicewise_metrics, ssim
from pipeline.evaluation.outputs import (
    FAILURE_COLUMNS,
    MIN_MASK_FRACTION,
    PER_SCAN_COLUMNS,
    EvaluationResult,
    EvaluationRun,
    write_evaluation_outputs,
    write_panels,
)
from pipeline.evaluation.sharpness import relative_sharpness
from pipeline.evaluation.shards import (
    RUN_RECORD,
    read_completed_run,
    read_evaluation_shard,
    shard_is_reusable,
    write_evaluation_shard,
    write_run_record,
)
from pipeline.inference import make_baseline
from pipeline.inference.bundle_catalog import file_sha256
from pipeline.io import check_output_folder, load_volume, save_nifti
from pipeline.manifests import read_manifest, row_path, scan_id
from pipeline.pairs import brain_mask, degraded_pair
from pipeline.protocols import Protocol, get_protocol
from pipeline.qc import qc_measures
from pipeline.qc.figure import plane_names
from pipeline.sharding import Shard, start_shard
from pipeline.training.adaptation import load_adaptable_method
from pipeline.transforms.grid import as_numpy_affine, spacing_from_affine

__all__ = ["PER_SCAN_COLUMNS", "EvaluationResult", "evaluate_cohort"]

_AFFINE_TOLERANCE_MM = 1e-3
_SPEARMAN_VOXELS = 500_000


@dataclass
class _ScanOutcome:
    records: list[dict[str, Any]]
    failures: list[dict[str, str]]
    panel: PanelSlices | None


def _load_methods(
    methods: Sequence[Any], device: str | torch.device | None, precision: str | None = None, progress: bool = False
) -> list[Any]:
    """Methods as callables (strings through :func:`~pipeline.inference.load_method`), names unique.

    Networks loaded by name show their own progress bars when ``progress`` is on.
    """
    if not methods:
        raise ValueError("no methods to evaluate")
    loaded = [
        load_adaptable_method(m, device=device, precision=precision) if isinstance(m, str) else m for m in methods
    ]
    for spec, method in zip(methods, loaded):
        if isinstance(spec, str) and hasattr(method, "progress"):
            method.progress = progress
    names = [m.name for m in loaded]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"method names must be unique, got {duplicated} more than once")
    return loaded


def _slice(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    return np.take(volume, index, axis=axis).astype(np.float32)


def _panel_for(
    hr: torch.Tensor, lr: torch.Tensor, mask: np.ndarray, protocol: Protocol, zoom: Sequence[float], sid: str
) -> PanelSlices:
    """HR, nearest-upsampled LR and mask slices across ``protocol.slice_axis`` nearest the mask's centroid."""
    axis = protocol.slice_axis
    occupied = np.flatnonzero(mask.sum(axis=tuple(a for a in range(3) if a != axis)))
    index = int(occupied[np.argmin(np.abs(occupied - np.nonzero(mask)[axis].mean()))])
    affine = as_numpy_affine(hr.affine)
    spacing = spacing_from_affine(affine)
    first, second = (a for a in range(3) if a != axis)
    lr_display = make_baseline("nearest")(lr, list(zoom))
    return PanelSlices(
        scan_id=sid,
        slice_axis=axis,
        index=index,
        plane=plane_names(affine)[axis],
        aspect=float(spacing[second] / spacing[first]),
        hr=_slice(hr[0].numpy(), axis, index),
        lr=_slice(lr_display[0].numpy(), axis, index),
        mask=np.take(mask, index, axis=axis),
    )


def _label_maps(row: pd.Series, hr: MetaTensor, checks: Sequence[str]) -> dict[str, torch.Tensor]:
    """The (1, X, Y, Z) int32 label maps the downstream checks need: ``labels`` and ``tissue_labels`` (when present)."""
    wanted = (["labels"] if "labels" in checks else []) + (["tissue_labels"] if "tissue" in checks else [])
    maps = {}
    for column in wanted:
        path = row_path(row, column) if column in row.index else None
        if path is None:
            continue
        volume = load_volume(path)
        if tuple(volume.shape) != tuple(hr.shape):
            raise ValueError(
                f"{path}: {column} shape {tuple(volume.shape[1:])} differs from the HR's {tuple(hr.shape[1:])}"
            )
        if not np.allclose(as_numpy_affine(volume.affine), as_numpy_affine(hr.affine), atol=_AFFINE_TOLERANCE_MM):
            raise ValueError(f"{path}: {column} is not on the HR grid (affines differ)")
        maps[column] = torch.from_numpy(np.rint(volume.numpy()).astype(np.int32))
    return maps


def _qc_columns(
    method: Any, lr: MetaTensor, sr: MetaTensor, zoom: Sequence[float], hr: np.ndarray, mask: np.ndarray
) -> tuple[dict[str, float], np.ndarray]:
    """Trust-check figures of one network output, how well its uncertainty predicts its error, and the map.

    ``uncertainty_error_spearman`` is the Spearman rank correlation between the uncertainty map and
    ``|sr - hr|`` over the brain mask's voxels (every voxel up to :data:`_SPEARMAN_VOXELS`, else an
    evenly spaced subset); ``uncertainty_mean`` is the map's mean over the same voxels;
    ``data_consistency`` and ``uncertainty_relative`` are the sidecar's (head mask of the input).

    Returns:
        The columns and the (X, Y, Z) uncertainty map.
    """
    measures = qc_measures(method, lr, sr, zoom)
    error = np.abs(sr[0].detach().cpu().float().numpy() - hr)[mask]
    volume = measures.uncertainty[0].numpy()
    uncertainty = volume[mask]
    step = max(1, error.size // _SPEARMAN_VOXELS)
    columns = {
        "data_consistency": measures.record["data_consistency"],
        "uncertainty_relative": measures.record["uncertainty_relative"],
        "uncertainty_mean": float(uncertainty.mean()),
        "uncertainty_error_spearman": float(spearmanr(uncertainty[::step], error[::step]).statistic),
    }
    return columns, volume


def _evaluate_scan(
    row: pd.Series,
    protocol: Protocol,
    methods: list[Any],
    volumes_dir: Path | None,
    want_panel: bool,
    crop_to_mask: bool = False,
    progress: bool = False,
    qc: bool = False,
    downstream: Sequence[str] = (),
    tissue_contrast: str = "t1",
) -> _ScanOutcome:
    """Score every method on one manifest row; a failing method is recorded, the others go on."""
    sid = scan_id(row)
    hr_full = load_volume(row["hr"])
    mask_full, mask_source = brain_mask(hr_full, row_path(row, "mask"), sid)
    try:
        pair = degraded_pair(
            protocol, hr_full, mask_full, crop_to_mask=crop_to_mask, extras=_label_maps(row, hr_full, downstream)
        )
    except ValueError as err:
        raise ValueError(f"{sid}: {err}") from None
    lr, hr, zoom = pair.lr, pair.hr, list(pair.zoom)
    mask = pair.mask[0].numpy()
    maps = {k: v[0].numpy() for k, v in pair.extras.items()}
    hr_array = hr[0].numpy()
    value_range = data_range(hr_array, mask)
    panel = _panel_for(hr, lr, mask, protocol, zoom, sid) if want_panel else None
    reference = None
    if downstream:
        spacing = spacing_from_affine(as_numpy_affine(hr.affine))
        reference = downstream_reference(
            downstream, hr_array, mask, spacing, tissue_contrast, maps.get("labels"), maps.get("tissue_labels")
        )
        if panel is not None and reference.hr_tissues is not None:
            panel.tissues["HR"] = np.take(reference.hr_tissues, panel.index, axis=panel.slice_axis)
    records, failures = [], []
    bar = tqdm(methods, desc=f"{sid} {protocol.name}", unit="method", leave=False, disable=not progress)
    for method in bar:
        bar.set_postfix_str(method.name)
        try:
            start = time.perf_counter()
            sr = method(lr, zoom)
            elapsed = time.perf_counter() - start
            runtime = method.last_runtime_s if getattr(method, "last_runtime_s", None) is not None else elapsed
            if tuple(sr.shape) != tuple(hr.shape):
                raise ValueError(f"output shape {tuple(sr.shape)} differs from the HR shape {tuple(hr.shape)}")
            if not np.allclose(as_numpy_affine(sr.affine), as_numpy_affine(hr.affine), atol=_AFFINE_TOLERANCE_MM):
                raise ValueError("output affine differs from the HR affine (output not on the HR grid)")
            sr_array = sr[0].detach().cpu().float().numpy()
            slicewise = slicewise_metrics(sr_array, hr_array, mask, value_range, protocol.slice_axis, MIN_MASK_FRACTION)
            record = {
                "scan_id": str(row["scan_id"]),
                "subject_id": str(row["subject_id"]),
                "method": method.name,
                "psnr": psnr(sr_array, hr_array, mask, value_range),
                "ssim": ssim(sr_array, hr_array, mask, value_range),
                "nrmse": nrmse(sr_array, hr_array, mask),
                "psnr_slice": slicewise["psnr_slice"],
                "ssim_slice": slicewise["ssim_slice"],
                "nrmse_slice": slicewise["nrmse_slice"],
                "sharpness_rel": relative_sharpness(sr_array, hr_array, mask),
                "data_range": value_range,
                "runtime_s": runtime,
                "precision": getattr(method, "precision", None) or "fp32",
                "mask_source": mask_source,
            }
            uncertainty = None
            if qc and getattr(method, "network", None) is not None:  # baselines have no trust check
                columns, uncertainty = _qc_columns(method, lr, sr, zoom, hr_array, mask)
                record.update(columns)
            if reference is not None:
                columns, tissues = downstream_columns(reference, sr_array)
                record.update(columns)
                if panel is not None and tissues is not None:
                    panel.tissues[method.name] = np.take(tissues, panel.index, axis=panel.slice_axis)
            if volumes_dir is not None:
                save_nifti(sr, volumes_dir / method.name / f"{sid}.nii.gz", inputs=[row["hr"]])
                if uncertainty is not None:
                    uncertainty_volume = MetaTensor(torch.from_numpy(uncertainty)[None], affine=sr.affine)
                    save_nifti(
                        uncertainty_volume, volumes_dir / method.name / f"{sid}_uncertainty.nii.gz", inputs=[row["hr"]]
                    )
            if panel is not None:
                panel.sr[method.name] = _slice(sr_array, panel.slice_axis, panel.index)
                panel.psnr[method.name] = record["psnr"]
                if uncertainty is not None:
                    panel.uncertainty[method.name] = _slice(uncertainty, panel.slice_axis, panel.index)
            records.append(record)
        except Exception as err:  # one failing method must not stop the others
            failures.append(
                {
                    "scan_id": str(row["scan_id"]),
                    "method": method.name,
                    "input": str(row["hr"]),
                    "error_type": type(err).__name__,
                    "error": str(err),
                    "where": traceback.extract_tb(err.__traceback__)[-1].name if err.__traceback__ else "",
                }
            )
            warnings.warn(f"{sid}: method {method.name} failed: {type(err).__name__}: {err}", stacklevel=2)
    return _ScanOutcome(records, failures, panel if panel is not None and panel.sr else None)


def _score_rows(
    rows: pd.DataFrame,
    protocol: Protocol,
    methods: list[Any],
    volumes_dir: Path | None,
    crop_to_mask: bool,
    progress: bool,
    qc: bool = False,
    downstream: Sequence[str] = (),
    tissue_contrast: str = "t1",
) -> tuple[pd.DataFrame, pd.DataFrame, PanelSlices | None]:
    """Score every method on ``rows``: the per-scan table, the failures and the first scan's panel.

    Rows of the per-scan table (:data:`PER_SCAN_COLUMNS`, then the downstream columns any row has)
    follow ``rows``, methods in order within a scan; failures (:data:`FAILURE_COLUMNS`) list failed
    scans first, then failed (scan, method) pairs, each in row order.
    """
    method_failures: list[dict[str, str]] = []
    panels: list[PanelSlices] = []

    def job(row: pd.Series) -> list[dict[str, Any]]:
        outcome = _evaluate_scan(
            row,
            protocol,
            methods,
            volumes_dir,
            want_panel=not panels,
            crop_to_mask=crop_to_mask,
            progress=progress,
            qc=qc,
            downstream=downstream,
            tissue_contrast=tissue_contrast,
        )
        method_failures.extend(outcome.failures)
        if outcome.panel is not None:
            panels.append(outcome.panel)
        return outcome.records

    items = [(scan_id(row), str(row["hr"]), lambda row=row: job(row)) for _, row in rows.iterrows()]
    cohort = run_cohort(items, description=f"evaluate {protocol.name}", progress=progress)
    failures = [{key: f.get(key, "") for key in FAILURE_COLUMNS} for f in cohort.failures + method_failures]
    records = [r for scan in cohort.done for r in cohort.results[scan]]
    extra = [c for c in downstream_column_names() if any(c in r for r in records)]
    return (
        pd.DataFrame(records, columns=list(PER_SCAN_COLUMNS) + extra),
        pd.DataFrame(failures, columns=list(FAILURE_COLUMNS)),
        panels[0] if panels else None,
    )


def _bundle_identity(info: dict[str, Any]) -> dict[str, Any]:
    """Name, version and weights checksum of a bundle: a run folder retrained in place keeps its version."""
    weights = Path(info["path"]) / "models" / "model.pt" if info.get("path") else None
    checksum = file_sha256(weights) if weights is not None and weights.is_file() else None
    return {"name": info.get("name"), "version": info.get("version"), "model_sha256": checksum}


def _settings(
    manifest: str | os.PathLike,
    split: str | None,
    data_root: str | os.PathLike | None,
    protocol: Protocol,
    methods: list[Any],
    n_rows: int,
    crop_to_mask: bool,
    save_volumes: bool,
    qc: bool = False,
    downstream: Sequence[str] = (),
    tissue_contrast: str = "t1",
) -> dict[str, Any]:
    """What a shard's outputs depend on: shards merge (and a complete shard is reused) only when these agree."""
    bundles = [getattr(m, "bundle_info", None) or {} for m in methods]
    return {
        "command": "evaluate",
        "manifest": str(Path(manifest).expanduser().resolve()),
        "split": split,
        "data_root": None if data_root is None else str(Path(data_root).expanduser().resolve()),
        "protocol": protocol.name,
        "methods": [
            {"name": m.name, "bundle": _bundle_identity(b) if b else None}
            for m, b in zip(methods, bundles)
        ],
        "n_rows": n_rows,
        "crop_to_mask": crop_to_mask,
        "save_volumes": save_volumes,
        "qc": qc,
        "downstream": list(downstream),
        "tissue_contrast": tissue_contrast,
    }


def evaluate_cohort(
    manifest: str | os.PathLike,
    protocol: str,
    methods: Sequence[str | Any],
    output_dir: str | os.PathLike,
    *,
    split: str | None = "test",
    data_root: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    precision: str | None = None,
    save_volumes: bool = False,
    crop_to_mask: bool = False,
    progress: bool = True,
    shard: Shard | None = None,
    resume: bool = True,
    qc: bool = False,
    downstream: Sequence[str] = (),
    tissue_contrast: str = "t1",
) -> EvaluationResult:
    """Evaluate SR methods on the HR scans of a manifest degraded by a named protocol.

    Args:
        manifest: CSV manifest (``hr`` required; ``mask`` used when present, else the project's
            ``BrainMask`` of the HR, with a warning: skull-stripped or not).
        protocol: a protocol name (see :func:`pipeline.protocols.get_protocol`), resolved here once.
        methods: baseline names, bundle names/folders, or SR callables
            ``sr = method(lr, zoom)`` with ``.name`` (and ``.last_runtime_s``); each loaded once.
        output_dir: folder for the outputs (created; files in it are replaced).
        split: manifest split to evaluate (default ``test``: scans that chose nothing; ``None``: every row).
        data_root: folder that the manifest's relative paths resolve against.
        device: device for network methods (default: each bundle's own choice).
        precision: "auto", "fp32", "bf16" or "fp16" for network methods (default: each bundle's own
            choice, "auto"); the precision used is in the ``precision`` column of the metrics.
        save_volumes: also write each SR volume to ``volumes/<method>/<scan_id>.nii.gz`` (with ``qc``, its
            uncertainty map beside it as ``<scan_id>_uncertainty.nii.gz``).
        crop_to_mask: crop HR and mask to the mask's bounding box plus 8 voxels before the LR is
            made (:func:`pipeline.transforms.brain_crops`): metrics in the mask stay comparable
            and networks run on fewer voxels (saved volumes then cover the box only).
        progress: show a progress bar.
        shard: evaluate only this shard's rows (:class:`~pipeline.sharding.Shard`: rows ``i`` with
            ``i mod count == index``) and write its partial outputs under
            ``output_dir/shards/<k>-of-<n>/`` (:func:`~pipeline.evaluation.shards.write_evaluation_shard`);
            :func:`~pipeline.evaluation.merge_evaluation_shards` makes the run's outputs from them.
        resume: reuse the outputs of an earlier run (or, with ``shard``, of the shard) that completed without
            failures with the same settings and rows instead of recomputing them (``result.reused``);
            ``False`` recomputes (``--overwrite``).
        qc: also score the trust check of every network output (:func:`pipeline.qc.qc_measures`):
            ``data_consistency``, ``uncertainty_mean`` and ``uncertainty_error_spearman`` columns.
        downstream: downstream checks (:data:`~pipeline.evaluation.downstream.DOWNSTREAM_CHECKS`):
            ``"tissue"`` segments HR and every output into CSF/GM/WM with ANTs Atropos and adds Dice and
            volume-error columns (``dice_*_manual`` too when the manifest has ``tissue_labels``);
            ``"labels"`` adds intensity and volume agreement in named structures of the ``labels`` map.
        tissue_contrast: the scans' contrast for ``tissue`` ("t1", "t2" or "flair": which tissue is darkest).

    Returns:
        :class:`EvaluationResult`. Outputs in ``output_dir``, each written atomically:
        ``per_scan_metrics.csv``, ``summary.csv``, ``summary.md``, ``boxplot_psnr_ssim.png``,
        ``panel.png`` (first evaluated scan), ``report.md``, with ``tissue`` ``downstream_boxplots.png``
        and ``tissue_panel.png``, and ``failures.csv`` when anything
        failed (a stale one is removed otherwise). With ``shard``: the shard's partial outputs.

    Raises:
        ValueError: unknown protocol or method, duplicate method names.
        OutputPathError: ``output_dir`` cannot be created or written (checked before any work).
        ManifestError: the manifest is invalid (see :func:`~pipeline.manifests.read_manifest`).
        RuntimeError: no (scan, method) pair could be evaluated (``failures.csv`` says why); not
            raised for a shard (other shards may have evaluated some).

    Example::

        >>> result = evaluate_cohort("data_manifests/malf_dev.csv", "kspace-2x2",
        ...                          ["linear", "cubic", "kspace_zero_filled"], "eval/kspace")
        >>> result.summary[["method", "psnr_mean", "p_psnr_vs_cubic"]]
    """
    proto = get_protocol(protocol)
    check_downstream(downstream, tissue_contrast)
    check_output_folder(output_dir)  # an unwritable folder fails now, not after every scan is scored
    table = read_manifest(manifest, data_root=data_root, split=split, require=("hr",))
    sr_methods = _load_methods(methods, device, precision, progress)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    volumes_dir = out / "volumes" if save_volumes else None
    run = EvaluationRun(proto, str(manifest), split, [m.name for m in sr_methods], len(table))
    settings = _settings(
        manifest,
        split,
        data_root,
        proto,
        sr_methods,
        len(table),
        crop_to_mask,
        save_volumes,
        qc,
        downstream,
        tissue_contrast,
    )
    if shard is None:
        all_rows = [(p, str(sid)) for p, sid in enumerate(table["scan_id"])]
        reused = read_completed_run(out, settings, all_rows) if resume else None
        if reused is not None:
            return reused
        (out / RUN_RECORD).unlink(missing_ok=True)  # the outputs are being replaced: not complete until rewritten
        per_scan, failures, panel = _score_rows(
            table, proto, sr_methods, volumes_dir, crop_to_mask, progress, qc, downstream, tissue_contrast
        )
        write_panels(panel, out, proto.name)
        result = write_evaluation_outputs(out, run, per_scan, failures, panel.scan_id if panel is not None else None)
        if volumes_dir is not None:
            result.files["volumes"] = volumes_dir
        write_run_record(out, settings, all_rows, len(failures))
        return result

    positions = list(shard.positions(len(table)))
    rows = table.iloc[positions]
    row_ids = [(p, str(sid)) for p, sid in zip(positions, rows["scan_id"])]
    if resume and shard_is_reusable(out, shard, settings, row_ids):
        return read_evaluation_shard(out, shard)
    start_shard(out, shard)
    per_scan, failures, panel = _score_rows(
        rows, proto, sr_methods, volumes_dir, crop_to_mask, progress, qc, downstream, tissue_contrast
    )
    return write_evaluation_shard(out, shard, run, settings, row_ids, per_scan, failures, panel)
