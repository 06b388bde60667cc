# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Export a training run's weights into a bundle: the one way shipped weights change (``mrisr bundles export``).

The run's selected weights (``models/model.pt``: best on the val split) are checked to load into the
bundle's network, then copied over the bundle's ``models/model.pt`` atomically, and the bundle's
``configs/metadata.json`` is updated atomically: version patch + 1, a changelog line, ``model_sha256``
and ``training_record`` (run folder, when it was created, when it was exported, the previous weights'
checksum, and how the weights were derived when they were averaged, interpolated or rebased:
:data:`~pipeline.training.averaging.WEIGHT_ORIGIN_KEYS`). The bundle's ``eval_metrics`` still describe the
previous weights until ``mrisr evaluate`` is run again and they are updated.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.inference.bundle_catalog import file_sha256
from pipeline.inference.methods import load_bundle_method
from pipeline.io import atomic_path, read_json
from pipeline.training.averaging import WEIGHT_ORIGIN_KEYS
from pipeline.training.run_folders import display_path, read_run_record, utc_now

__all__ = ["ExportResult", "bump_patch", "export_run"]

_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_run` changed: the bundle's version before and after, and the new weights' SHA-256."""

    bundle: Path
    old_version: str
    new_version: str
    model_sha256: str


def bump_patch(version: str) -> str:
    """``MAJOR.MINOR.PATCH`` with the patch number + 1 (``ValueError`` for any other form)."""
    match = _VERSION.fullmatch(str(version))
    if match is None:
        raise ValueError(f"version {version!r} is not MAJOR.MINOR.PATCH")
    major, minor, patch = (int(part) for part in match.groups())
    return f"{major}.{minor}.{patch + 1}"


def _read_metadata(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a bundle (no configs/metadata.json)")
    return read_json(path)


def export_run(run_dir: str | os.PathLike, bundle: str | os.PathLike, message: str | None = None) -> ExportResult:
    """Replace ``bundle``'s weights by the run's ``models/model.pt`` and record it in the bundle's metadata.

    Args:
        run_dir: a run folder of ``mrisr train`` (holds ``models/model.pt`` and ``configs/``).
        bundle: the bundle folder to update, e.g. ``bundles/srcnn``.
        message: the changelog line (default: names the run folder and the export date).

    Raises:
        FileNotFoundError: no weights in the run, or ``bundle`` is not a bundle.
        ValueError: the run trained another bundle, the weights do not load into the bundle's network,
            or the bundle's version is not ``MAJOR.MINOR.PATCH``.
    """
    run, target = Path(run_dir), Path(bundle)
    weights = run / "models" / "model.pt"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: the run has no selected weights")
    meta_path = target / "configs" / "metadata.json"
    meta = _read_metadata(meta_path)
    name = meta.get("name", target.name)
    run_record = read_run_record(run)
    trained = run_record.get("bundle")
    if trained is None and (run / "configs" / "metadata.json").is_file():
        trained = _read_metadata(run / "configs" / "metadata.json").get("name")
    if trained is not None and trained != name:
        raise ValueError(f"{run}: the run trained bundle {trained!r}, not {name!r} ({target})")
    try:  # the weights must load into the bundle's own network as the bundle's inference would load them
        load_bundle_method(target, device="cpu", ckpt_path=str(weights.resolve()))
    except Exception as err:  # noqa: BLE001 - any failure to load becomes one line naming the files
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{weights}: does not load into bundle {target}: {first_line}") from err

    old_version = str(meta.get("version"))
    new_version = bump_patch(old_version)
    sha256 = file_sha256(weights)
    exported = utc_now()
    previous = target / "models" / "model.pt"
    record = {
        "run_folder": display_path(run),
        "run_created": run_record.get("created"),
        "exported": exported,
        "previous_model_sha256": file_sha256(previous) if previous.is_file() else None,
        **{key: run_record[key] for key in WEIGHT_ORIGIN_KEYS if key in run_record},
    }
    line = message or f"weights exported from training run {record['run_folder']} on {exported[:10]}"
    updated = {**meta, "version": new_version}
    updated["changelog"] = {new_version: line, **(meta.get("changelog") or {})}
    updated["model_sha256"] = sha256
    updated["training_record"] = record

    with atomic_path(meta_path) as meta_tmp:  # both files written first, then renamed one right after the other
        meta_tmp.write_text(json.dumps(updated, indent=4) + "\n", encoding="utf-8")
        with atomic_path(previous) as weights_tmp:
            shutil.copyfile(weights, weights_tmp)
    return ExportResult(bundle=target, old_version=old_version, new_version=new_version, model_sha256=sha256)
