# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Derived scans in contrasts the bundles never saw, with a manifest for ``mrisr evaluate``.

- ``t2``, ``flair``, ``random``: synthetic images from the manifest's anatomical ``labels``
  (:class:`~pipeline.transforms.label_contrast.LabelContrast`, as SynthSR makes them); unlabelled voxels
  inside the row's brain mask (sulcal fluid) are drawn as CSF;
- ``inverted``: the HR scan's intensities inverted inside its brain mask (``p99.5 - x``, clipped at
  0): the real texture of the scan with T2-like ordering (fluid bright, white matter dark);
- ``bias``: the HR scan times a smooth random bias field (MONAI ``RandBiasField``, degree 3,
  coefficients 0.2-0.3: intensities vary by a factor of about 1.5-2 across the head), the scan as an
  uncorrected receive field leaves it. Noise belongs on the LR: add it with a ``+rician<P>`` protocol.

Each derived scan keeps the source's grid, mask and labels, so its HR is the ground truth of its own
evaluation. The derived manifest lists the derived scans with the source rows' other columns.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from monai.data import MetaTensor
from monai.transforms import RandBiasField

from pipeline.inference.sidecar import write_with_sidecar
from pipeline.io import atomic_write_text, check_outputs, load_mask, load_volume
from pipeline.manifests import row_path
from pipeline.transforms.domain import invert_inside
from pipeline.transforms.label_contrast import CONTRASTS, LabelContrast

__all__ = ["DERIVED_CONTRASTS", "derived_manifest", "source_column", "synthesize_contrast_file"]

DERIVED_CONTRASTS = (*CONTRASTS, "inverted", "bias")
BIAS_COEFFICIENTS = (0.2, 0.3)
"""Range of the bias field's polynomial coefficients for the ``bias`` derivation."""


def source_column(contrast: str) -> str:
    """The manifest column a derived ``contrast`` is made from: ``hr`` (inverted, bias) or ``labels``."""
    return "hr" if contrast in ("inverted", "bias") else "labels"


def _inverted(hr: MetaTensor, mask: MetaTensor) -> MetaTensor:
    """``p99.5 - x`` inside the mask (p99.5 of the brain's intensities), 0 outside, clipped at 0."""
    inside = (mask.as_tensor() > 0).numpy()
    out = torch.from_numpy(invert_inside(hr.as_tensor().float().numpy(), inside) * inside)
    return MetaTensor(out, affine=hr.affine, meta={k: v for k, v in hr.meta.items() if k != "affine"})


def synthesize_contrast_file(
    row: pd.Series | dict[str, Any], contrast: str, output_path: str | os.PathLike, *, seed: int = 0
) -> dict[str, Any]:
    """Write the derived scan of one manifest row (``hr`` and ``mask``, or ``labels``) and its sidecar.

    The random draws of label contrasts are seeded by ``seed`` and the scan id, so a scan's derived
    image does not depend on which other rows are made. Returns the sidecar dict.
    """
    if contrast not in DERIVED_CONTRASTS:
        raise ValueError(f"contrast must be one of {DERIVED_CONTRASTS}, got {contrast!r}")
    source_key = source_column(contrast)
    source, mask = row_path(row, source_key), row_path(row, "mask")
    if not source:
        raise ValueError(f"{row.get('scan_id', '?')}: the {contrast!r} contrast needs a '{source_key}' column")
    uses_mask = contrast == "inverted" or (contrast in CONTRASTS and bool(mask))
    inputs = [source] + ([mask] if uses_mask else [])
    check_outputs([output_path], inputs)
    scan_seed = (seed * 1_000_003 + zlib.crc32(str(row.get("scan_id", "")).encode())) % 2**32
    if contrast == "inverted":
        hr = load_volume(source)
        image = _inverted(hr, load_mask(mask, hr))
    elif contrast == "bias":
        field = RandBiasField(degree=3, coeff_range=BIAS_COEFFICIENTS, prob=1.0)
        field.set_random_state(seed=scan_seed)
        image = field(load_volume(source).float())
    else:
        labels = load_volume(source)
        transform = LabelContrast(contrast)
        transform.set_random_state(seed=scan_seed)
        image = transform(labels, load_mask(mask, labels) if uses_mask else None)
    record = {"contrast": contrast, "source": str(Path(source).resolve()), "seed": seed}
    return write_with_sidecar(image, output_path, record, inputs=inputs)


def derived_manifest(table: pd.DataFrame, outputs: dict[str, Path], contrast: str, path: str | os.PathLike) -> Path:
    """Write the manifest of the derived scans that exist: the source rows with ``hr`` replaced.

    Paths are absolute (the derived scans and the source masks and labels live in different folders);
    ``note`` records the contrast.
    """
    rows = []
    for _, row in table.iterrows():
        derived = outputs.get(str(row["scan_id"]))
        if derived is None or not Path(derived).is_file():
            continue
        entry = row.to_dict()
        for column in ("mask", "labels", "lr"):
            if isinstance(entry.get(column), str) and entry[column]:
                entry[column] = str(Path(entry[column]).resolve())
        entry["hr"] = str(Path(derived).resolve())
        entry["note"] = f"{contrast} contrast derived from scan {row['scan_id']}"
        rows.append(entry)
    destination = Path(path)
    atomic_write_text(destination, pd.DataFrame(rows).to_csv(index=False))
    return destination
