# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""The BIDS-derivatives metadata of ``mrisr bids``: ``dataset_description.json``, ``.bidsignore`` and the
BIDS fields of each output's JSON sidecar.

Each output's sidecar is the one :func:`~pipeline.inference.super_resolve_file` writes (method, bundle
version, zoom, QC...) with the fields BIDS asks of a derivative first: ``Description``, ``Sources`` (a
BIDS URI ``bids:raw:<path in the input dataset>``; ``DatasetLinks`` in ``dataset_description.json`` maps
``raw`` to the input dataset), ``SkullStripped`` and ``Resolution`` (what ``res-hi`` means).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pipeline
from pipeline.bids.inputs import BidsInput
from pipeline.bids.naming import RESOLUTION_LABEL
from pipeline.inference import read_sidecar, sidecar_path, with_zoom_key
from pipeline.io import atomic_write_json, atomic_write_text

__all__ = [
    "BIDS_FIELDS",
    "BIDS_VERSION",
    "GROUP_TABLE",
    "RAW_DATASET",
    "describe_method",
    "has_bids_fields",
    "source_uri",
    "write_bids_sidecar",
    "write_dataset_description",
]

BIDS_VERSION = "1.10.0"
"""The BIDS specification version the derivatives follow."""

RAW_DATASET = "raw"
"""The name BIDS URIs give the input dataset (a key of ``DatasetLinks``)."""

BIDS_FIELDS = ("Description", "Sources", "SkullStripped", "Resolution")
"""The BIDS fields :func:`write_bids_sidecar` puts first in each output's sidecar."""

GROUP_TABLE = "mrisr_group.tsv"
"""The cohort table of the ``group`` level, in the derivatives folder."""

_BIDSIGNORE = ("*_uncertainty.nii.gz", "*_qc.png", "*_tissue.json", "failures.csv", "shards/", GROUP_TABLE)
"""mrisr's files beside the derivatives that BIDS does not name (QC, downstream check, cohort tables)."""


def source_uri(item: BidsInput) -> str:
    """``bids:raw:sub-01/anat/sub-01_T1w.nii.gz``: the BIDS URI of an input in the input dataset."""
    return f"bids:{RAW_DATASET}:{item.relpath}"


def describe_method(name: str, bundle: Mapping[str, Any] | None) -> str:
    """``"rrlsrn (bundle rrlsrn 0.4.0)"``, or ``"linear"`` for a baseline (no ``bundle``)."""
    return f"{name} (bundle {bundle.get('name')} {bundle.get('version')})" if bundle else name


def write_bids_sidecar(output: str | os.PathLike, item: BidsInput) -> Path:
    """Put the BIDS fields (:data:`BIDS_FIELDS`) first in the sidecar of ``output``, written atomically.

    Raises:
        ValueError: ``output`` has no sidecar (:func:`~pipeline.inference.super_resolve_file` writes it).
    """
    record = read_sidecar(output)
    if not record:
        raise ValueError(f"{output}: no sidecar to add the BIDS fields to")
    spacing = " x ".join(f"{s:g}" for s in record["output_spacing_mm"])
    zoom = " x ".join(f"{z:g}" for z in with_zoom_key(record)["zoom"])  # "scale" in an older sidecar
    method = describe_method(record["method"], record.get("bundle"))
    fields = {
        "Description": f"{item.suffix} super-resolved by mrisr with {method}",
        "Sources": [source_uri(item)],
        "SkullStripped": item.skull_stripped,
        "Resolution": {
            RESOLUTION_LABEL: f"super-resolved: {spacing} mm voxels, the input's grid zoomed {zoom} "
            "(output voxels per input voxel) over the same field of view"
        },
    }
    return atomic_write_json(sidecar_path(output), {**fields, **{k: v for k, v in record.items() if k not in fields}})


def has_bids_fields(output: str | os.PathLike) -> bool:
    """True when the sidecar of ``output`` holds the BIDS fields (the last thing ``mrisr bids`` writes)."""
    return set(BIDS_FIELDS) <= set(read_sidecar(output) or {})


def write_dataset_description(out_dir: str | os.PathLike, bids_dir: str | os.PathLike, method: str) -> Path:
    """Write (or extend) ``dataset_description.json`` of the derivatives in ``out_dir``, and a ``.bidsignore``.

    The description says ``DatasetType: derivative``, the BIDS version, ``GeneratedBy`` (mrisr, its
    version and the method: one entry per method run into ``out_dir``) and links ``raw`` to ``bids_dir``
    (a path relative to ``out_dir``). ``.bidsignore``, unless there is one, lists mrisr's files that BIDS
    does not name (QC maps and figures, tissue checks, cohort tables), for the BIDS validator.

    Args:
        method: the method as ``GeneratedBy`` describes it (:func:`describe_method`).

    Raises:
        ValueError: ``out_dir`` holds a dataset that is not a derivative (a raw dataset), or derivatives of
            another input dataset.
    """
    out = Path(out_dir).expanduser()
    path = out / "dataset_description.json"
    link = os.path.relpath(Path(bids_dir).expanduser().resolve(), out.resolve())
    description: dict[str, Any] = {}
    if path.is_file():
        try:
            description = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ValueError(f"{path}: unreadable JSON: {err}") from None
        if description.get("DatasetType") != "derivative":
            raise ValueError(f"{path}: {out} holds a dataset that is not a derivative; choose another output folder")
        linked = (description.get("DatasetLinks") or {}).get(RAW_DATASET, link)
        if linked != link:
            raise ValueError(
                f"{path}: these are derivatives of {linked}, not of {bids_dir}; choose another output folder"
            )
    entry = {"Name": "mrisr", "Version": pipeline.__version__, "Description": f"super-resolution with {method}"}
    generated = [e for e in description.get("GeneratedBy", []) if e != entry] + [entry]
    description = {
        "Name": description.get("Name", "mrisr super-resolution"),
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        **description,
        "GeneratedBy": generated,
        "DatasetLinks": {**(description.get("DatasetLinks") or {}), RAW_DATASET: link},
    }
    if not (out / ".bidsignore").exists():  # a user's own is left as it is
        atomic_write_text(out / ".bidsignore", "".join(f"{pattern}\n" for pattern in _BIDSIGNORE))
    return atomic_write_json(path, description)
