# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Find the anatomical scans of a BIDS dataset to super-resolve, with pybids.

pybids is imported when a dataset is first read (it takes about half a second), so that commands
which never read one start as fast as before.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline.bids.naming import bare_label

__all__ = ["DEFAULT_SUFFIXES", "TISSUE_CONTRASTS", "BidsInput", "find_inputs", "tissue_contrast"]

DEFAULT_SUFFIXES = ("T1w", "T2w", "FLAIR")
"""The anatomical suffixes ``mrisr bids`` super-resolves unless told otherwise."""

TISSUE_CONTRASTS = {"T1w": "t1", "T2w": "t2", "FLAIR": "flair"}
"""The ``--tissue-contrast`` of each suffix (:data:`pipeline.evaluation.tissue.TISSUE_ORDER`)."""


@dataclass(frozen=True)
class BidsInput:
    """One input scan of a BIDS dataset.

    Attributes:
        path: the file (absolute; a symbolic link, as in DataLad datasets, is not followed).
        relpath: its path inside the dataset, e.g. ``sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz``.
        subject, session: labels without their key (``"01"``; ``session`` ``None`` when the dataset has none).
        suffix: ``"T1w"``, ``"T2w"``, ``"FLAIR"``...
        skull_stripped: the ``SkullStripped`` of its BIDS metadata, else ``False`` (raw data are not).
    """

    path: Path
    relpath: PurePosixPath
    subject: str
    session: str | None
    suffix: str
    skull_stripped: bool = False

    @property
    def scan_id(self) -> str:
        """The file name without its extension: unique in a dataset (it holds every entity)."""
        return self.relpath.name.split(".", 1)[0]


def tissue_contrast(item: BidsInput) -> str:
    """The tissue contrast (``"t1"``, ``"t2"``, ``"flair"``) of a scan from its suffix.

    Raises:
        ValueError: a suffix of no known contrast (naming the file: give ``--tissue-contrast``).
    """
    try:
        return TISSUE_CONTRASTS[item.suffix]
    except KeyError:
        known = ", ".join(TISSUE_CONTRASTS)
        raise ValueError(
            f"{item.path}: no tissue contrast for the suffix {item.suffix} (known: {known}); give --tissue-contrast"
        ) from None


def _missing(requested: Sequence[str] | None, found: Sequence[str], key: str) -> str | None:
    """``"sub-03 (found: sub-01, sub-02)"`` for the requested labels the dataset lacks, else ``None``."""
    absent = [label for label in requested or () if label not in found]
    if not absent:
        return None
    listed = ", ".join(f"{key}-{label}" for label in found) or "none"
    return f"no {', '.join(f'{key}-{label}' for label in absent)} (found: {listed})"


def find_inputs(
    bids_dir: str | os.PathLike,
    *,
    participants: Sequence[str] | None = None,
    sessions: Sequence[str] | None = None,
    suffixes: Sequence[str] = DEFAULT_SUFFIXES,
    exclude: str | os.PathLike | None = None,
) -> list[BidsInput]:
    """The NIfTI scans of ``bids_dir``'s ``anat`` folders with these suffixes, in path order.

    Args:
        bids_dir: a BIDS dataset (with its ``dataset_description.json``); ``derivatives/`` is not searched.
        participants, sessions: labels, with or without ``sub-``/``ses-`` (``None``: all).
        suffixes: the suffixes to take.
        exclude: a folder whose files are never inputs (the output folder, when it lies in the dataset).

    Raises:
        ValueError: not a BIDS dataset, a requested participant or session it lacks, or no scan found
            (one line naming ``bids_dir``).
    """
    from bids import BIDSLayout  # see the module's docstring

    root = Path(bids_dir).expanduser().resolve()
    if not root.is_dir():
        raise ValueError(f"{bids_dir}: no such folder")
    try:
        layout = BIDSLayout(root, validate=True)
    except ValueError as err:  # pybids' BIDSValidationError: no or a bad dataset_description.json
        raise ValueError(f"{bids_dir}: not a BIDS dataset: {' '.join(str(err).split())}") from None
    subjects = [bare_label(p, "sub") for p in participants] if participants else None
    session_labels = [bare_label(s, "ses") for s in sessions] if sessions else None
    problem = _missing(subjects, layout.get_subjects(), "sub") or _missing(session_labels, layout.get_sessions(), "ses")
    if problem:
        raise ValueError(f"{bids_dir}: {problem}")
    query = {"subject": subjects, "session": session_labels}
    files = layout.get(
        datatype="anat",
        suffix=list(suffixes),
        extension=[".nii", ".nii.gz"],
        **{key: value for key, value in query.items() if value},
    )
    excluded = Path(exclude).expanduser().resolve() if exclude is not None else None
    found = []
    for bids_file in files:
        relpath = PurePosixPath(Path(os.path.relpath(bids_file.path, root)).as_posix())  # a link stays in its folder
        if excluded is not None and (root / relpath).is_relative_to(excluded):
            continue
        entities = bids_file.get_entities()
        found.append(
            BidsInput(
                path=root / relpath,
                relpath=relpath,
                subject=str(entities["subject"]),
                session=str(entities["session"]) if "session" in entities else None,
                suffix=str(entities["suffix"]),
                skull_stripped=bool(bids_file.get_metadata().get("SkullStripped", False)),
            )
        )
    if not found:
        raise ValueError(f"{bids_dir}: no anat scan with the suffix {' or '.join(suffixes)} (.nii or .nii.gz) found")
    return sorted(found, key=lambda item: str(item.relpath))
