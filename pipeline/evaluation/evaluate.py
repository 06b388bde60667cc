# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Evaluate SR methods over a cohort: synthesise LR from HR with a protocol, super-resolve, score.

For each manifest row: load HR (and its brain mask), crop both to a multiple of the protocol's
zoom, make LR with the protocol (seeded, deterministic), run every method, and compute masked
whole-volume and slice-wise PSNR/SSIM/NRMSE, relative sharpness and runtime. A failing scan or
method is recorded in ``failures.csv`` and the run goes on.
"""

from __future__ import annotations

import os
import time
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from monai.data import MetaTensor
from monai.transforms import Compose
from tqdm import tqdm

from pipeline.cohort import run_cohort
from pipeline.evaluation.figures import PanelSlices, plot_boxplots, plot_panel
from pipeline.evaluation.metrics import data_range, nrmse, psnr, slicewise_metrics, ssim
from pipeline.evaluation.report import render_report
from pipeline.evaluation.sharpness import relative_sharpness
from pipeline.evaluation.summary import summarize, summary_markdown
from pipeline.inference import load_method, make_baseline, software_versions
from pipeline.io import atomic_write_text, load_mask, load_volume, save_nifti
from pipeline.manifests import read_manifest, row_path, scan_id
from pipeline.protocols import Protocol, crop_to_multiple, get_protocol
from pipeline.transforms.brain_crop import brain_crops
from pipeline.transforms.grid import as_numpy_affine, spacing_from_affine

__all__ = ["PER_SCAN_COLUMNS", "EvaluationResult", "evaluate_cohort"]

PER_SCAN_COLUMNS = (
    "scan_id",
    "subject_id",
    "method",
    "psnr",
    "ssim",
    "nrmse",
    "psnr_slice",
    "ssim_slice",
    "nrmse_slice",
    "sharpness_rel",
    "data_range",
    "runtime_s",
    "precision",
    "mask_source",
)
FAILURE_COLUMNS = ("scan_id", "method", "input", "error_type", "error", "where")
MIN_MASK_FRACTION = 0.05
_AFFINE_TOLERANCE_MM = 1e-3
_PLANES = {"L": "sagittal", "R": "sagittal", "A": "coronal", "P": "coronal", "S": "axial", "I": "axial"}


@dataclass
class EvaluationResult:
    """What :func:`evaluate_cohort` produced.

    Attributes:
        output_dir: the folder holding every output.
        per_scan: one row per (scan, method), columns :data:`PER_SCAN_COLUMNS`.
        summary: one row per method (see :func:`~pipeline.evaluation.summary.summarize`).
        failures: one row per failed scan (``method`` empty) or (scan, method).
        files: output name → path (``per_scan_metrics``, ``summary_csv``, ``summary_md``,
            ``boxplot``, ``panel``, ``report``, and ``failures`` / ``volumes`` when written).
    """

    output_dir: Path
    per_scan: pd.DataFrame
    summary: pd.DataFrame
    failures: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no scan or method failed."""
        return self.failures.empty


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
    loaded = [load_method(m, device=device, precision=precision) if isinstance(m, str) else m for m in methods]
    for spec, method in zip(methods, loaded):
        if isinstance(spec, str) and hasattr(method, "progress"):
            method.progress = progress
    names = [m.name for m in loaded]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"method names must be unique, got {duplicated} more than once")
    return loaded


def _load_mask(row: pd.Series, hr: torch.Tensor) -> tuple[np.ndarray, str]:
    """The (X, Y, Z) boolean brain mask of a row (checked against the HR grid) and where it came from."""
    path = row_path(row, "mask")
    if path is None:
        warnings.warn(f"{row['scan_id']}: no mask in the manifest; using HR > 0 as the brain mask", stacklevel=3)
        return hr[0].numpy() > 0, "hr>0"
    return load_mask(path, hr)[0].numpy(), "manifest"  # checked: shape, grid, not empty (all-ones is valid)


def _slice(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    return np.take(volume, index, axis=axis).astype(np.float32)


def _panel_for(hr: torch.Tensor, lr: torch.Tensor, mask: np.ndarray, protocol: Protocol, sid: str) -> PanelSlices:
    """HR, nearest-upsampled LR and mask slices across ``protocol.slice_axis`` nearest the mask's centroid."""
    axis = protocol.slice_axis
    occupied = np.flatnonzero(mask.sum(axis=tuple(a for a in range(3) if a != axis)))
    index = int(occupied[np.argmin(np.abs(occupied - np.nonzero(mask)[axis].mean()))])
    affine = as_numpy_affine(hr.affine)
    spacing = spacing_from_affine(affine)
    first, second = (a for a in range(3) if a != axis)
    normal = nib.orientations.aff2axcodes(affine)[axis]
    lr_display = make_baseline("nearest")(lr, list(protocol.zoom))
    return PanelSlices(
        scan_id=sid,
        slice_axis=axis,
        index=index,
        plane=_PLANES.get(normal, "oblique"),
        aspect=float(spacing[second] / spacing[first]),
        hr=_slice(hr[0].numpy(), axis, index),
        lr=_slice(lr_display[0].numpy(), axis, index),
        mask=np.take(mask, index, axis=axis),
    )


def _crop_hr_and_mask(
    hr_full: MetaTensor, mask_full: np.ndarray, protocol: Protocol, crop_to_mask: bool
) -> tuple[MetaTensor, np.ndarray]:
    """HR (1, X, Y, Z) and (X, Y, Z) mask cropped to multiples of the zoom (and to the brain if asked)."""
    if not crop_to_mask:
        hr = crop_to_multiple(hr_full, protocol.zoom)
        return hr, crop_to_multiple(torch.from_numpy(mask_full)[None], protocol.zoom)[0].numpy()
    mask = MetaTensor(torch.from_numpy(mask_full.astype(np.uint8))[None], affine=hr_full.affine)
    cropped = Compose(brain_crops(protocol.zoom, crop_to_mask=True))({"hr": hr_full, "mask": mask})
    return cropped["hr"], cropped["mask"][0].numpy() > 0


def _evaluate_scan(
    row: pd.Series,
    protocol: Protocol,
    methods: list[Any],
    volumes_dir: Path | None,
    want_panel: bool,
    crop_to_mask: bool = False,
    progress: bool = False,
) -> _ScanOutcome:
    """Score every method on one manifest row; a failing method is recorded, the others go on."""
    sid = scan_id(row)
    hr_full = load_volume(row["hr"])
    mask_full, mask_source = _load_mask(row, hr_full)
    hr, mask = _crop_hr_and_mask(hr_full, mask_full, protocol, crop_to_mask)
    if not mask.any():
        raise ValueError(f"{sid}: the brain mask is empty")
    lr = protocol.degrade(hr)
    hr_array = hr[0].numpy()
    value_range = data_range(hr_array, mask)
    panel = _panel_for(hr, lr, mask, protocol, sid) if want_panel else None
    records, failures = [], []
    bar = tqdm(methods, desc=f"{sid} {protocol.name}", unit="method", leave=False, disable=not progress)
    for method in bar:
        bar.set_postfix_str(method.name)
        try:
            start = time.perf_counter()
            sr = method(lr, list(protocol.zoom))
            elapsed = time.perf_counter() - start
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
                "runtime_s": method.last_runtime_s if getattr(method, "last_runtime_s", None) is not None else elapsed,
                "precision": getattr(method, "precision", None) or "fp32",
                "mask_source": mask_source,
            }
            if volumes_dir is not None:
                save_nifti(sr, volumes_dir / method.name / f"{sid}.nii.gz", inputs=[row["hr"]])
            if panel is not None:
                panel.sr[method.name] = _slice(sr_array, panel.slice_axis, panel.index)
                panel.psnr[method.name] = record["psnr"]
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


def evaluate_cohort(
    manifest: str | os.PathLike,
    protocol: str | Protocol,
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
) -> EvaluationResult:
    """Evaluate SR methods on the HR scans of a manifest degraded by a named protocol.

    Args:
        manifest: CSV manifest (``hr`` required; ``mask`` used when present, else HR > 0 with a
            warning).
        protocol: a protocol name (see :data:`pipeline.protocols.PROTOCOLS`) or a ``Protocol``.
        methods: baseline names, bundle names/folders, or SR callables
            ``sr = method(lr, zoom)`` with ``.name`` (and ``.last_runtime_s``); each loaded once.
        output_dir: folder for the outputs (created; files in it are replaced).
        split: manifest split to evaluate (default ``test``: scans that chose nothing; ``None``: every row).
        data_root: folder that the manifest's relative paths resolve against.
        device: device for network methods (default: each bundle's own choice).
        precision: "auto", "fp32", "bf16" or "fp16" for network methods (default: each bundle's own
            choice, "auto"); the precision used is in the ``precision`` column of the metrics.
        save_volumes: also write each SR volume to ``volumes/<method>/<scan_id>.nii.gz``.
        crop_to_mask: crop HR and mask to the mask's bounding box plus 8 voxels before the LR is
            made (:func:`pipeline.transforms.brain_crops`): metrics in the mask stay comparable
            and networks run on fewer voxels (saved volumes then cover the box only).
        progress: show a progress bar.

    Returns:
        :class:`EvaluationResult`. Outputs in ``output_dir``, each written atomically:
        ``per_scan_metrics.csv``, ``summary.csv``, ``summary.md``, ``boxplot_psnr_ssim.png``,
        ``panel.png`` (first evaluated scan), ``report.md``, and ``failures.csv`` when anything
        failed (a stale one is removed otherwise).

    Raises:
        ValueError: unknown protocol or method, duplicate method names.
        ManifestError: the manifest is invalid (see :func:`~pipeline.manifests.read_manifest`).
        RuntimeError: no (scan, method) pair could be evaluated (``failures.csv`` says why).

    Example::

        >>> result = evaluate_cohort("data_manifests/malf_dev.csv", "kspace-2x2",
        ...                          ["linear", "cubic", "kspace_zero_filled"], "eval/kspace")
        >>> result.summary[["method", "psnr_mean", "p_psnr_vs_cubic"]]
    """
    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    table = read_manifest(manifest, data_root=data_root, split=split, require=("hr",))
    sr_methods = _load_methods(methods, device, precision, progress)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    volumes_dir = out / "volumes" if save_volumes else None

    method_failures: list[dict[str, str]] = []
    panels: list[PanelSlices] = []

    def job(row: pd.Series) -> list[dict[str, Any]]:
        outcome = _evaluate_scan(
            row, proto, sr_methods, volumes_dir, want_panel=not panels, crop_to_mask=crop_to_mask, progress=progress
        )
        method_failures.extend(outcome.failures)
        if outcome.panel is not None:
            panels.append(outcome.panel)
        return outcome.records

    items = [(scan_id(row), str(row["hr"]), lambda row=row: job(row)) for _, row in table.iterrows()]
    cohort = run_cohort(items, description=f"evaluate {proto.name}", progress=progress)
    cohort.failures = [{key: f.get(key, "") for key in FAILURE_COLUMNS} for f in cohort.failures + method_failures]
    failures = pd.DataFrame(cohort.failures, columns=list(FAILURE_COLUMNS))
    files: dict[str, Path] = {}
    failures_path = cohort.write_failures(out / "failures.csv")
    if failures_path is not None:
        files["failures"] = failures_path

    records = [r for scan in cohort.done for r in cohort.results[scan]]
    if not records:
        raise RuntimeError(f"no scan could be evaluated; see {out / 'failures.csv'}")
    per_scan = pd.DataFrame(records, columns=list(PER_SCAN_COLUMNS))
    summary = summarize(per_scan)
    names = [m.name for m in sr_methods]
    files["per_scan_metrics"] = atomic_write_text(out / "per_scan_metrics.csv", per_scan.to_csv(index=False))
    files["summary_csv"] = atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    files["summary_md"] = atomic_write_text(out / "summary.md", summary_markdown(summary))
    title = f"{proto.name}, {per_scan['scan_id'].nunique()} scan(s)"
    scored = [name for name in names if name in set(per_scan["method"])]
    files["boxplot"] = plot_boxplots(per_scan, out / "boxplot_psnr_ssim.png", scored, title=title)
    figures = {"PSNR and SSIM per method (box plots)": files["boxplot"].name}
    if panels:
        files["panel"] = plot_panel(panels[0], out / "panel.png", title=proto.name)
        figures[f"Slices of scan {panels[0].scan_id} with |error| maps"] = files["panel"].name
    report = render_report(
        protocol=proto,
        manifest=str(manifest),
        split=split,
        methods=names,
        n_rows=len(table),
        per_scan=per_scan,
        summary=summary,
        failures=failures,
        figures=figures,
        min_mask_fraction=MIN_MASK_FRACTION,
        versions=software_versions(),
    )
    files["report"] = atomic_write_text(out / "report.md", report)
    if volumes_dir is not None:
        files["volumes"] = volumes_dir
    return EvaluationResult(out, per_scan, summary, failures, files)
