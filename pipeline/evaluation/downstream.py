# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Downstream checks of an evaluation: does SR change what a pipeline would measure on the scan?

- ``tissue``: the HR and every method's output are segmented into CSF, GM and WM inside the brain mask
  (:func:`~pipeline.evaluation.tissue.segment_tissues`); each output is scored against the HR's
  segmentation (Dice, signed volume error) and, when the manifest has a ``tissue_labels`` column
  (manual labels 1 = CSF, 2 = GM, 3 = WM, as IBSR18 ships them), against those too.
- ``labels``: intensity and threshold-volume agreement inside named structures of the manifest's
  ``labels`` map (:func:`~pipeline.evaluation.structures.structure_agreement`); no segmenter.

The HR side is computed once per scan (:func:`downstream_reference`), then each output is scored with
:func:`downstream_columns`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.evaluation.structures import structure_agreement, structure_columns
from pipeline.evaluation.tissue import TISSUE_ORDER, TISSUES, segment_tissues, tissue_agreement

__all__ = [
    "DOWNSTREAM_CHECKS",
    "check_downstream",
    "DownstreamReference",
    "downstream_column_names",
    "downstream_columns",
    "downstream_reference",
]

DOWNSTREAM_CHECKS = ("tissue", "labels")


def check_downstream(checks: Sequence[str], contrast: str = "t1") -> None:
    """Raise ``ValueError`` for an unknown check or contrast (before any scan is read)."""
    unknown = sorted(set(checks) - set(DOWNSTREAM_CHECKS))
    if unknown:
        raise ValueError(f"unknown downstream check(s) {unknown}; choose from {list(DOWNSTREAM_CHECKS)}")
    if contrast not in TISSUE_ORDER:
        raise ValueError(f"unknown tissue contrast {contrast!r}; choose from {sorted(TISSUE_ORDER)}")


def downstream_column_names() -> list[str]:
    """Every per-scan column a downstream check may add, in table order."""
    tissue = [f"dice_{t}" for t in TISSUES] + [f"volume_error_{t}_pct" for t in TISSUES]
    return tissue + [f"dice_{t}_manual" for t in TISSUES] + ["segmentation_s"] + structure_columns()


@dataclass
class DownstreamReference:
    """The HR side of one scan's downstream checks.

    Attributes:
        checks: the checks to run (a subset of :data:`DOWNSTREAM_CHECKS`).
        hr: (X, Y, Z) HR volume.
        mask: (X, Y, Z) boolean brain mask.
        spacing_mm: voxel size per axis (mm).
        contrast: the scan's contrast (which tissue is darkest, see :data:`~pipeline.evaluation.tissue.TISSUE_ORDER`).
        hr_tissues: (X, Y, Z) tissue labels of the HR (``tissue`` check), else ``None``.
        manual_tissues: (X, Y, Z) manual tissue labels, or ``None``.
        labels: (X, Y, Z) anatomical label map (``labels`` check), else ``None``.
    """

    checks: tuple[str, ...]
    hr: np.ndarray
    mask: np.ndarray
    spacing_mm: tuple[float, ...]
    contrast: str
    hr_tissues: np.ndarray | None = None
    manual_tissues: np.ndarray | None = None
    labels: np.ndarray | None = None


def downstream_reference(
    checks: Sequence[str],
    hr: np.ndarray,
    mask: np.ndarray,
    spacing_mm: Sequence[float],
    contrast: str = "t1",
    labels: np.ndarray | None = None,
    manual_tissues: np.ndarray | None = None,
) -> DownstreamReference:
    """Segment the HR (``tissue``) and keep what the checks compare against.

    Args:
        checks: names from :data:`DOWNSTREAM_CHECKS`.
        hr, mask: (X, Y, Z) HR volume and boolean brain mask.
        spacing_mm: voxel size (mm).
        contrast: "t1", "t2" or "flair".
        labels: (X, Y, Z) anatomical labels of the HR; required by ``labels``.
        manual_tissues: (X, Y, Z) manual CSF/GM/WM labels (1, 2, 3), optional.

    Raises:
        ValueError: an unknown check or contrast, or ``labels`` asked without a label map.
    """
    check_downstream(checks, contrast)
    if "labels" in checks and labels is None:
        raise ValueError("the labels check needs a 'labels' column in the manifest (an anatomical label map)")
    reference = DownstreamReference(tuple(checks), hr, mask, tuple(float(s) for s in spacing_mm), contrast)
    if "tissue" in checks:
        reference.hr_tissues = segment_tissues(hr, mask, spacing_mm, contrast)
        if manual_tissues is not None:
            reference.manual_tissues = np.where(mask, np.rint(manual_tissues), 0).astype(np.uint8)
    if "labels" in checks:
        reference.labels = np.rint(labels).astype(np.int32)
    return reference


def downstream_columns(reference: DownstreamReference, sr: np.ndarray) -> tuple[dict[str, float], np.ndarray | None]:
    """The downstream columns of one output and, with ``tissue``, its (X, Y, Z) tissue labels.

    ``segmentation_s`` is the wall time of segmenting this output (s).
    """
    columns: dict[str, float] = {}
    tissues = None
    if reference.hr_tissues is not None:
        start = time.perf_counter()
        tissues = segment_tissues(sr, reference.mask, reference.spacing_mm, reference.contrast)
        columns["segmentation_s"] = time.perf_counter() - start
        columns.update(tissue_agreement(tissues, reference.hr_tissues))
        if reference.manual_tissues is not None:
            columns.update(tissue_agreement(tissues, reference.manual_tissues, suffix="_manual"))
    if reference.labels is not None:
        columns.update(structure_agreement(sr, reference.hr, reference.labels))
    return columns, tissues
