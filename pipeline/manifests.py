# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Dataset manifests: CSV files with one row per scan (schema in ``data_manifests/README.md``).

Required columns: ``subject_id`` and at least one of ``hr``/``lr``. Optional: ``lr``, ``mask``,
``labels`` (anatomical label map), ``tissue_labels`` (manual CSF/GM/WM = 1/2/3), ``split`` (train/val/test),
``session``, ``scan_id`` and any free metadata. Relative
paths resolve against ``data_root`` when given, else against the manifest's own folder.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import pandas as pd

__all__ = ["PATH_COLUMNS", "ManifestError", "clean_scan_id", "read_manifest", "scan_id", "row_path"]

PATH_COLUMNS = ("hr", "lr", "mask", "labels", "tissue_labels")
SPLITS = ("train", "val", "test")


class ManifestError(ValueError):
    """A manifest is unreadable or breaks the schema; the message names the file and the row/column."""


def _check_widths(manifest: Path) -> None:
    """Raise unless every row has as many fields as the header.

    A row with one field more (a trailing comma on every line) would make pandas read the first
    column as the index and shift every value one column to the left; a row with fewer fields
    leaves it unclear which column lost its value. The message gives the first wrong line's number.
    """
    with manifest.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        wrong = [(reader.line_num, len(row)) for row in reader if row and header and len(row) != len(header)]
    if wrong:
        line, width = wrong[0]
        hint = "a trailing comma?" if width > len(header) else "a missing field?"
        others = f"; {len(wrong) - 1} other line(s) differ too" if len(wrong) > 1 else ""
        raise ManifestError(
            f"{manifest}: line {line} has {width} fields but the header has {len(header)} ({hint}){others}; "
            "give every row one value per column (quote values that hold commas)"
        )


def _resolve(value: object, base: Path) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or str(value).strip() == "":
        return None
    path = Path(str(value).strip()).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def read_manifest(
    path: str | os.PathLike,
    *,
    data_root: str | os.PathLike | None = None,
    split: str | None = None,
    require: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Read and validate a manifest; return its rows with absolute paths.

    Args:
        path: the CSV file.
        data_root: folder that relative paths resolve against (default: the manifest's folder).
        split: keep only rows whose ``split`` equals this (``train``, ``val`` or ``test``).
        require: columns every kept row must fill (e.g. ``("hr", "mask")`` for evaluation).

    Returns:
        DataFrame with a ``scan_id`` column (from the CSV, else ``subject_id`` plus ``session``)
        and path columns resolved to absolute strings (missing values for empty cells).

    Raises:
        FileNotFoundError: the manifest is missing.
        ManifestError: an empty or unreadable file, a row whose number of fields differs from the
            header's (the line number is given), missing columns, empty paths in required
            columns, duplicate scan ids (also after cleaning them into file names, see
            :func:`scan_id`), an unknown split, or no rows left after filtering.
    """
    manifest = Path(path).expanduser()
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: manifest not found")
    try:
        _check_widths(manifest)
        table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as err:
        raise ManifestError(f"{manifest}: empty file (no header row; see data_manifests/README.md)") from err
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as err:
        raise ManifestError(f"{manifest}: not a readable CSV: {' '.join(str(err).split())}") from err
    table.columns = [c.strip() for c in table.columns]
    if "subject_id" not in table.columns:
        raise ManifestError(f"{manifest}: missing required column 'subject_id' (columns: {list(table.columns)})")
    if not {"hr", "lr"} & set(table.columns):
        raise ManifestError(f"{manifest}: needs an 'hr' or an 'lr' column")
    if "split" in table.columns:
        unknown = sorted(set(table["split"]) - set(SPLITS) - {""})
        if unknown:
            raise ManifestError(f"{manifest}: unknown split value(s) {unknown}; use {SPLITS}")
    if split is not None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if "split" not in table.columns:
            raise ManifestError(f"{manifest}: no 'split' column to select '{split}' rows from")
        table = table[table["split"] == split]
    if table.empty:
        raise ManifestError(f"{manifest}: no rows" + (f" with split '{split}'" if split else ""))
    base = Path(data_root).expanduser().resolve() if data_root is not None else manifest.resolve().parent
    table = table.copy()
    for column in PATH_COLUMNS:
        if column in table.columns:
            table[column] = [_resolve(v, base) for v in table[column]]
    for column in require:
        if column not in table.columns:
            raise ManifestError(f"{manifest}: missing column '{column}'")
        empty = table.index[table[column].isna()].tolist()
        if empty:
            raise ManifestError(f"{manifest}: column '{column}' is empty in row(s) {[i + 2 for i in empty]}")
    if "scan_id" not in table.columns or (table["scan_id"] == "").any():
        session = table["session"] if "session" in table.columns else [""] * len(table)
        table["scan_id"] = [f"{s}_{x}" if x else str(s) for s, x in zip(table["subject_id"], session)]
    duplicated = table["scan_id"][table["scan_id"].duplicated()].tolist()
    if duplicated:
        raise ManifestError(f"{manifest}: duplicate scan ids {duplicated} (add a 'scan_id' or 'session' column)")
    _check_file_names(table["scan_id"], manifest)
    _warn_missing_files(table, manifest)
    return table.reset_index(drop=True)


def _warn_missing_files(table: pd.DataFrame, manifest: Path) -> None:
    """Warn, naming the manifest line, of every path cell whose file does not exist.

    A warning, not an error: a cohort run goes on past the missing scan (which fails its own row, in
    ``failures.csv``), but the user learns at once which rows are wrong, before any scan is processed.
    """
    missing = [
        f"line {index + 2} {column} {value}"
        for column in PATH_COLUMNS
        if column in table.columns
        for index, value in table[column].items()
        if isinstance(value, str) and not Path(value).exists()
    ]
    if missing:
        shown = "; ".join(missing[:5]) + (f"; and {len(missing) - 5} more" if len(missing) > 5 else "")
        warnings.warn(f"{manifest}: {len(missing)} file(s) do not exist: {shown}", stacklevel=3)


def clean_scan_id(raw_id: object) -> str:
    """A scan id as used in output file names: characters other than letters, digits, ``-_.`` become ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(raw_id))


def _check_file_names(scan_ids: pd.Series, manifest: Path) -> None:
    """Raise when two scan ids name the same output files once cleaned (``s/1`` and ``s_1``).

    Names that differ only in case collide too: they are one file on macOS and Windows.
    """
    first: dict[str, str] = {}
    for raw in scan_ids:
        key = clean_scan_id(raw).casefold()
        if key in first:
            raise ManifestError(
                f"{manifest}: scan ids {first[key]!r} and {raw!r} give the same output file name "
                f"{clean_scan_id(raw)!r} (file names keep letters, digits, '-', '_' and '.', and ignore case); "
                "make the scan ids differ"
            )
        first[key] = str(raw)


def scan_id(row: pd.Series) -> str:
    """The scan's identifier, safe to use in file names."""
    return clean_scan_id(row["scan_id"])


def row_path(row: pd.Series, column: str) -> str | None:
    """The absolute path in ``column`` of a manifest row, or ``None`` when absent/empty."""
    value = row.get(column)
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
