# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""What bundles are installed: name, version, protocol, test score, weight checksum and where each was found.

``mrisr bundles`` prints :func:`installed_bundles`; a pipeline can record the same fields (e.g. the
checksum of the weights that made its outputs).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.inference.bundle_dirs import found_bundles
from pipeline.io import read_json

__all__ = ["BundleSummary", "describe_bundle", "file_sha256", "installed_bundles"]

SHORT_SHA256 = 12


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits (read in chunks of ``chunk_bytes``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class BundleSummary:
    """One bundle as ``mrisr bundles`` lists it.

    Attributes:
        name: the bundle's name (its folder's name, how ``--method`` finds it).
        version: ``configs/metadata.json`` "version".
        protocol: the degradation protocol it was trained for (``configs/inference.json`` "protocol", else
            metadata "degradation_protocol").
        test_psnr_gain_db: metadata ``eval_metrics.psnr_gain_db``: PSNR gain over cubic B-spline on the
            test split (dB), None when not scored.
        model_sha256: SHA-256 of ``models/model.pt`` (64 hex digits), None without weights.
        recorded_sha256: metadata "model_sha256" (written by ``mrisr bundles export``), None when absent.
        origin: the search-path entry it was found in (``--bundle-dir``, ``MRISR_BUNDLE_DIR``, ``package``,
            ``checkout``).
        path: the bundle folder.
    """

    name: str
    version: str | None
    protocol: str | None
    test_psnr_gain_db: float | None
    model_sha256: str | None
    recorded_sha256: str | None
    origin: str
    path: str

    @property
    def checksum_matches(self) -> bool | None:
        """Whether the weights are those metadata records (None when it records none or there are no weights)."""
        if self.recorded_sha256 is None or self.model_sha256 is None:
            return None
        return self.recorded_sha256 == self.model_sha256

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "checksum_matches": self.checksum_matches}


def _read_json(path: Path) -> dict[str, Any]:
    return read_json(path) if path.is_file() else {}


def describe_bundle(root: str | os.PathLike, origin: str = "folder") -> BundleSummary:
    """The :class:`BundleSummary` of the bundle folder ``root``."""
    root = Path(root)
    meta = _read_json(root / "configs" / "metadata.json")
    inference = _read_json(root / "configs" / "inference.json")
    protocol = inference.get("protocol") if isinstance(inference.get("protocol"), str) else None
    weights = root / "models" / "model.pt"
    gain = (meta.get("eval_metrics") or {}).get("psnr_gain_db")
    return BundleSummary(
        name=root.name,
        version=meta.get("version"),
        protocol=protocol or meta.get("degradation_protocol"),
        test_psnr_gain_db=None if gain is None else float(gain),
        model_sha256=file_sha256(weights) if weights.is_file() else None,
        recorded_sha256=meta.get("model_sha256"),
        origin=origin,
        path=str(root.resolve()),
    )


def installed_bundles(bundle_dir: str | os.PathLike | None = None) -> list[BundleSummary]:
    """Every bundle a name resolves to (the first match in the search path), sorted by name."""
    return [describe_bundle(root, entry.origin) for root, entry in found_bundles(bundle_dir).values()]
