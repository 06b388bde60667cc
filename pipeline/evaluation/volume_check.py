# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Tissue volumes of an SR output beside those of cubic B-spline of the same input: the downstream check for
scans without ground truth (``mrisr infer --downstream tissue``).

Both volumes are on one grid; the brain mask is the project's ``BrainMask`` of the cubic output (so that a
head with skull works and both are measured in the same mask), and both are segmented with the same
Atropos settings (:func:`~pipeline.evaluation.tissue.segment_tissues`). A method whose GM or WM volume
differs from cubic's by more than :data:`VOLUME_TOLERANCE_PCT` is flagged: it may shift what a volumetric
pipeline measures (cubic is not the truth either, but it does not invent or move edges).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.evaluation.tissue import ATROPOS, TISSUES, segment_tissues, tissue_volumes_ml
from pipeline.inference import make_baseline, read_sidecar, with_zoom_key
from pipeline.io import atomic_write_json, load_volume
from pipeline.io.outputs import sidecar_path
from pipeline.transforms.brain_mask import BrainMask
from pipeline.transforms.grid import as_numpy_affine, spacing_from_affine

__all__ = ["VOLUME_TOLERANCE_PCT", "tissue_check_path", "tissue_volume_check", "write_tissue_volume_check"]

VOLUME_TOLERANCE_PCT = 2.0
"""|GM or WM volume difference from cubic| (%) above which an output is flagged (issue 25's target)."""

_AFFINE_TOLERANCE_MM = 1e-3


def tissue_check_path(output_path: str | os.PathLike) -> Path:
    """``<stem>.nii.gz`` → ``<stem>_tissue.json``, where :func:`write_tissue_volume_check` writes its record."""
    sidecar = sidecar_path(output_path)
    return sidecar.with_name(sidecar.stem + "_tissue.json")


def tissue_volume_check(output_path: str | os.PathLike, contrast: str = "t1") -> dict[str, Any]:
    """Segment an SR output and the cubic B-spline of its input; compare their tissue volumes.

    Args:
        output_path: an output of ``mrisr infer`` (its sidecar names the input and the zoom; ``"scale"`` in
            a sidecar of an older version).
        contrast: the scan's contrast ("t1", "t2" or "flair"), which tissue is darkest.

    Returns:
        ``method``, ``input``, ``contrast``, ``segmenter``, ``<tissue>_ml`` and ``cubic_<tissue>_ml``
        (millilitres), ``<tissue>_difference_pct`` (100 · (SR − cubic) / cubic) and ``flags`` (GM or WM
        beyond :data:`VOLUME_TOLERANCE_PCT`).

    Raises:
        ValueError: the output has no readable sidecar, or cubic lands on another grid.
    """
    sidecar = with_zoom_key(read_sidecar(output_path))
    if not sidecar or "input" not in sidecar or "zoom" not in sidecar:
        raise ValueError(f"{output_path}: no sidecar naming its input and zoom; run mrisr infer first")
    sr = load_volume(output_path)
    cubic = make_baseline("cubic")(load_volume(sidecar["input"]), list(sidecar["zoom"]))
    if tuple(cubic.shape) != tuple(sr.shape) or not np.allclose(
        as_numpy_affine(cubic.affine), as_numpy_affine(sr.affine), atol=_AFFINE_TOLERANCE_MM
    ):
        raise ValueError(f"{output_path}: cubic B-spline of {sidecar['input']} is not on the output's grid")
    mask = BrainMask(dtype=torch.bool)(cubic)[0].numpy()
    spacing = spacing_from_affine(as_numpy_affine(sr.affine))
    volumes = tissue_volumes_ml(segment_tissues(sr[0].numpy(), mask, spacing, contrast), spacing)
    reference = tissue_volumes_ml(segment_tissues(cubic[0].numpy(), mask, spacing, contrast), spacing)
    record: dict[str, Any] = {
        "method": sidecar.get("method"),
        "input": sidecar["input"],
        "contrast": contrast,
        "segmenter": ATROPOS.describe(),
        "mask": "BrainMask of the cubic B-spline output",
    }
    flags = []
    for tissue in TISSUES:
        ml, cubic_ml = volumes[f"volume_{tissue}_ml"], reference[f"volume_{tissue}_ml"]
        difference = 100.0 * (ml - cubic_ml) / cubic_ml if cubic_ml else float("nan")
        record.update({f"{tissue}_ml": ml, f"cubic_{tissue}_ml": cubic_ml, f"{tissue}_difference_pct": difference})
        if tissue in ("gm", "wm") and not abs(difference) <= VOLUME_TOLERANCE_PCT:
            flags.append(f"{tissue.upper()} volume {difference:+.1f} % vs cubic (limit ±{VOLUME_TOLERANCE_PCT:g} %)")
    record["flags"] = flags
    return record


def write_tissue_volume_check(output_path: str | os.PathLike, contrast: str = "t1") -> Path:
    """:func:`tissue_volume_check` written atomically to :func:`tissue_check_path`."""
    return atomic_write_json(tissue_check_path(output_path), tissue_volume_check(output_path, contrast))
