# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""BIDS file names: split one into entities, and name a super-resolved derivative of it.

A derivative keeps its input's entities (``sub``, ``ses``, ``acq``, ``run``...), adds ``res-hi`` (the
super-resolved grid) and ``desc-<method>``, and orders them as the BIDS specification's entity table
does (:data:`ENTITY_ORDER`)::

    sub-01/ses-1/anat/sub-01_ses-1_acq-fast_run-1_T1w.nii.gz
    -> sub-01/ses-1/anat/sub-01_ses-1_acq-fast_run-1_res-hi_desc-rrlsrn_T1w.nii.gz
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

__all__ = [
    "ENTITY_ORDER",
    "RESOLUTION_LABEL",
    "bare_label",
    "derivative_relpath",
    "desc_label",
    "split_bids_name",
]

ENTITY_ORDER = (
    "sub", "tpl", "ses", "cohort", "sample", "task", "tracksys", "acq", "nuc", "voi", "ce", "trc", "stain", "rec",
    "dir", "run", "mod", "echo", "flip", "inv", "mt", "part", "proc", "hemi", "space", "split", "recording", "chunk",
    "atlas", "seg", "scale", "res", "den", "label", "desc",
)  # fmt: skip
"""The entities' keys in the order file names list them (BIDS specification, appendix "Entity table")."""

RESOLUTION_LABEL = "hi"
"""The ``res`` label of a super-resolved output (its sidecar's ``Resolution`` says what it means)."""

_IMAGE_EXTENSIONS = (".nii.gz", ".nii")


def split_bids_name(name: str) -> tuple[list[tuple[str, str]], str, str]:
    """``"sub-01_ses-1_T1w.nii.gz"`` → ``([("sub", "01"), ("ses", "1")], "T1w", ".nii.gz")``.

    Raises:
        ValueError: ``name`` is not ``<key>-<label>_..._<suffix>.nii[.gz]``.
    """
    extension = next((e for e in _IMAGE_EXTENSIONS if name.endswith(e)), None)
    if extension is None:
        raise ValueError(f"{name}: not a NIfTI file name (.nii or .nii.gz)")
    *pairs, suffix = name[: -len(extension)].split("_")
    entities = []
    for pair in pairs:
        key, _, label = pair.partition("-")
        if not key or not label:
            raise ValueError(f"{name}: not a BIDS file name ({pair!r} is not <key>-<label>)")
        entities.append((key, label))
    if not entities or not suffix:
        raise ValueError(f"{name}: not a BIDS file name (expected sub-<label>_..._<suffix>{extension})")
    return entities, suffix, extension


def desc_label(method_name: str) -> str:
    """A method's name as a BIDS label (letters and digits only): ``"thick_slice"`` → ``"thickslice"``.

    Raises:
        ValueError: the name has no letter or digit.
    """
    label = re.sub(r"[^A-Za-z0-9]", "", method_name)
    if not label:
        raise ValueError(f"method {method_name!r}: no letter or digit to name its outputs (desc-<label>)")
    return label


def bare_label(value: str, key: str) -> str:
    """A label with or without its key: ``bare_label("sub-01", "sub") == bare_label("01", "sub") == "01"``."""
    return value[len(key) + 1 :] if value.startswith(f"{key}-") else value


def derivative_relpath(input_relpath: str | PurePosixPath, method_name: str) -> PurePosixPath:
    """Where the super-resolved ``input_relpath`` goes in the derivatives dataset (same folders, ``.nii.gz``).

    The input's entities are kept; ``res`` becomes :data:`RESOLUTION_LABEL` and ``desc`` the method's
    :func:`desc_label` (replacing the input's own, if it has them); entities the table does not know
    follow the known ones in their input order.

    Example::

        >>> derivative_relpath("sub-01/anat/sub-01_run-2_T1w.nii", "thick_slice")
        PurePosixPath('sub-01/anat/sub-01_run-2_res-hi_desc-thickslice_T1w.nii.gz')
    """
    path = PurePosixPath(input_relpath)
    pairs, suffix, _ = split_bids_name(path.name)
    entities = dict(pairs)
    entities.update({"res": RESOLUTION_LABEL, "desc": desc_label(method_name)})
    rank = {key: k for k, key in enumerate(ENTITY_ORDER)}
    keys = sorted(entities, key=lambda key: rank.get(key, len(ENTITY_ORDER)))
    name = "_".join([*(f"{key}-{entities[key]}" for key in keys), suffix]) + ".nii.gz"
    return path.with_name(name)
