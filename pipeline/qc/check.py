# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""The trust check written with every network output (``--qc``): data consistency, uncertainty, a figure.

For an SR output ``sr.nii.gz`` of input ``lr``:

- ``qc.data_consistency``: :func:`~pipeline.qc.data_consistency` inside the input's head mask;
- ``sr_uncertainty.nii.gz``: the voxel-wise standard deviation of the test-time-augmented predictions
  (:func:`~pipeline.qc.tta_members`, pooled locally by :func:`~pipeline.qc.uncertainty_map`), and
  ``qc.uncertainty_mean`` its mean inside the head mask (input units; ``qc.uncertainty_relative``
  divides it by the input's robust maximum);
- ``sr_qc.png``: three orthogonal views of cubic B-spline, the SR and the uncertainty.

The head mask comes from the project's own :class:`~pipeline.transforms.BrainMask` (``region="head"``,
which works for any contrast, with or without skull) on the input, and the sidecar says so. Values
beyond the bundle's limits (:func:`qc_limits`) are flagged; cohort runs list the flagged scans.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor

from pipeline.inference.baselines import make_baseline
from pipeline.inference.methods import method_bundle_metadata
from pipeline.scaling import robust_intensity_scale
from pipeline.io import save_nifti
from pipeline.io.atomic import split_name
from pipeline.qc.consistency import data_consistency, forward_model
from pipeline.qc.figure import plane_names, plot_qc_views
from pipeline.qc.uncertainty import tta_members, uncertainty_map
from pipeline.transforms.brain_mask import BrainMask
from pipeline.transforms.grid import as_numpy_affine, spacing_from_affine

__all__ = [
    "DATA_CONSISTENCY_LIMIT",
    "UNCERTAINTY_LIMIT",
    "QCMeasures",
    "qc_limits",
    "qc_measures",
    "qc_paths",
    "quality_check",
]

DATA_CONSISTENCY_LIMIT = 0.05
"""Relative residual above which an output is flagged, for bundles whose metadata sets no ``qc_limits``."""
UNCERTAINTY_LIMIT = 0.03
"""Mean uncertainty in the head mask, as a fraction of the input's robust maximum, above which an
output is flagged, for bundles whose metadata sets no ``qc_limits``."""
MASK_SOURCE = "head mask: pipeline.transforms.BrainMask(region='head') on the input"


def qc_paths(output_path: str | os.PathLike) -> tuple[Path, Path]:
    """``(<stem>_uncertainty.nii.gz, <stem>_qc.png)`` beside an output NIfTI ``<stem>.nii[.gz]``."""
    out = Path(output_path)
    stem, _ = split_name(out)
    return out.with_name(f"{stem}_uncertainty.nii.gz"), out.with_name(f"{stem}_qc.png")


def qc_limits(method: Any) -> dict[str, float]:
    """The flagging limits for ``method``'s outputs: its bundle's ``qc_limits`` (set from the ``val`` split
    by :mod:`pipeline.qc.limits`), else :data:`DATA_CONSISTENCY_LIMIT` and :data:`UNCERTAINTY_LIMIT`.

    The residual and the spread differ between degradations (a thick-slice model leaves more of the input
    unexplained than a bicubic one), so one limit cannot serve every bundle.
    """
    limits = {"data_consistency": DATA_CONSISTENCY_LIMIT, "uncertainty_relative": UNCERTAINTY_LIMIT}
    own = method_bundle_metadata(method).get("qc_limits") or {}  # an adapted method keeps its bundle's
    limits.update({key: float(own[key]) for key in limits if key in own})
    return limits


def _head_mask(lr: MetaTensor) -> np.ndarray:
    return BrainMask(region="head")(lr)[0].numpy().astype(bool)


@dataclass
class QCMeasures:
    """What :func:`qc_measures` found for one output.

    Attributes:
        record: the sidecar's ``qc`` entries except the file names (see :func:`quality_check`).
        uncertainty: (1, X', Y', Z') voxel-wise standard deviation on the output grid, input units.
        mask: (X', Y', Z') boolean head mask on the output grid (nearest-neighbour from the input's).
    """

    record: dict[str, Any]
    uncertainty: MetaTensor
    mask: np.ndarray


def qc_measures(
    method: Any,
    lr: MetaTensor,
    sr: MetaTensor,
    zoom: Sequence[float],
    *,
    acquisition_overrides: dict[str, Any] | None = None,
) -> QCMeasures:
    """Data consistency and uncertainty of ``sr = method(lr, zoom)`` (no files written)."""
    mask = _head_mask(lr)
    model = forward_model(method, lr, zoom, acquisition_overrides)
    consistency = data_consistency(sr, lr, model[0], mask) if model is not None else None
    members, how = tta_members(method, lr, zoom, sr)
    spread = uncertainty_map(members)
    uncertainty = MetaTensor(spread, affine=sr.affine, meta={k: v for k, v in sr.meta.items() if k != "affine"})
    mask_lr = MetaTensor(torch.from_numpy(mask[None].astype(np.float32)), affine=lr.affine)
    mask_sr = make_baseline("nearest")(mask_lr, list(zoom))[0].numpy() > 0.5
    spread_np = spread[0].numpy()
    mean = float(spread_np[mask_sr].mean()) if mask_sr.any() else float(spread_np.mean())
    relative = mean / robust_intensity_scale(lr)
    limits = qc_limits(method)
    flags = []
    if consistency is not None and consistency > limits["data_consistency"]:
        flags.append(f"data_consistency {consistency:.5g} > {limits['data_consistency']:.5g}")
    if relative > limits["uncertainty_relative"]:
        flags.append(f"uncertainty_relative {relative:.5g} > {limits['uncertainty_relative']:.5g}")
    record = {
        "data_consistency": consistency,
        "forward_model": model[1] if model is not None else None,
        "uncertainty_mean": mean,
        "uncertainty_relative": relative,
        "augmentation": how,
        "mask": MASK_SOURCE,
        "limits": limits,
        "flags": flags,
        "in_range": not flags,
    }
    return QCMeasures(record, uncertainty, mask_sr)


def quality_check(
    method: Any,
    lr: MetaTensor,
    sr: MetaTensor,
    zoom: Sequence[float],
    output_path: str | os.PathLike,
    *,
    acquisition_overrides: dict[str, Any] | None = None,
    inputs: Sequence[str | os.PathLike] = (),
) -> dict[str, Any]:
    """Check ``sr = method(lr, zoom)``; write its uncertainty map and QC figure beside ``output_path``.

    Args:
        method: the method that made ``sr`` (called again for test-time augmentation where needed).
        lr: the input (1, X, Y, Z); sr: the output on the zoomed grid.
        output_path: the output NIfTI the QC files go beside (:func:`qc_paths`).
        acquisition_overrides: through-plane: ``thickness_mm``, ``gap_mm``, ``profile`` assumed.
        inputs: files the QC files must not overwrite.

    Returns:
        The sidecar's ``qc`` record: ``data_consistency`` (``None`` without a forward model),
        ``forward_model``, ``uncertainty_mean``, ``uncertainty_relative``, ``augmentation``, ``mask``,
        ``limits``, ``flags`` (limits exceeded), ``in_range`` and the two file names.
    """
    uncertainty_path, figure_path = qc_paths(output_path)
    measures = qc_measures(method, lr, sr, zoom, acquisition_overrides=acquisition_overrides)
    save_nifti(measures.uncertainty, uncertainty_path, inputs=inputs)
    cubic = make_baseline("cubic")(lr, list(zoom))[0].numpy()
    record = measures.record
    consistency = "n/a" if record["data_consistency"] is None else f"{record['data_consistency']:.4f}"
    title = (
        f"{Path(output_path).name}: {method.name}; data consistency {consistency}, "
        f"uncertainty {record['uncertainty_relative']:.4f} of the robust max"
    )
    spacing = tuple(float(s) for s in spacing_from_affine(sr.affine))
    uncertainty = measures.uncertainty[0].numpy()
    planes = plane_names(as_numpy_affine(sr.affine))
    plot_qc_views(cubic, sr[0].float().numpy(), uncertainty, measures.mask, spacing, figure_path, title, planes)  # type: ignore[arg-type]
    return {**record, "uncertainty_map": uncertainty_path.name, "figure": figure_path.name}
