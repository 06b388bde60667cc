# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Where bundles are found by name: ``--bundle-dir``, ``$MRISR_BUNDLE_DIR``, the package's, the checkout's.

A bundle name (``srcnn``) is looked up in these folders, in this order; the first one holding
``<name>/configs/inference.json`` wins:

1. the folder given on the command line (``--bundle-dir``; ``bundle_dir`` in Python);
2. the folders in the environment variable ``MRISR_BUNDLE_DIR`` (separated by ``os.pathsep``);
3. ``pipeline/bundles`` inside the installed package (a wheel ships the bundles there, see ``setup.py``);
4. ``bundles/`` of the source checkout the package runs from (an editable install, or ``python -m
   pipeline`` from the repository root).

A folder in the search path that does not exist is skipped (an explicit ``--bundle-dir`` that does
not exist is an error, see :func:`check_bundle_dir`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BUNDLE_DIR_ENV",
    "BUNDLES_DIR",
    "CHECKOUT_BUNDLES_DIR",
    "PACKAGE_BUNDLES_DIR",
    "BundleDir",
    "bundle_search_path",
    "check_bundle_dir",
    "find_bundle",
    "found_bundles",
    "is_bundle",
    "is_in_search_path",
    "named_bundle_weights",
    "shipped_bundles_dir",
]

BUNDLE_DIR_ENV = "MRISR_BUNDLE_DIR"
PACKAGE_BUNDLES_DIR = Path(__file__).resolve().parents[1] / "bundles"
CHECKOUT_BUNDLES_DIR = Path(__file__).resolve().parents[2] / "bundles"


def shipped_bundles_dir() -> Path:
    """The bundles shipped with this installation: the package's in a wheel install, else the checkout's."""
    return PACKAGE_BUNDLES_DIR if PACKAGE_BUNDLES_DIR.is_dir() else CHECKOUT_BUNDLES_DIR


BUNDLES_DIR = shipped_bundles_dir()
"""The bundles shipped with this installation (:func:`shipped_bundles_dir` at import)."""


@dataclass(frozen=True)
class BundleDir:
    """A folder of bundles in the search path and why it is there.

    Attributes:
        path: the folder, holding one sub-folder per bundle.
        origin: ``"--bundle-dir"``, ``"MRISR_BUNDLE_DIR"``, ``"package"`` or ``"checkout"``.
    """

    path: Path
    origin: str


def is_bundle(folder: str | os.PathLike) -> bool:
    """True when ``folder`` is a bundle that can run inference (it holds ``configs/inference.json``)."""
    return (Path(folder) / "configs" / "inference.json").is_file()


def check_bundle_dir(bundle_dir: str | os.PathLike | None) -> None:
    """Raise ``NotADirectoryError`` (one line naming it) when an explicit ``--bundle-dir`` is not a folder."""
    if bundle_dir is not None and not Path(bundle_dir).expanduser().is_dir():
        raise NotADirectoryError(f"{bundle_dir}: --bundle-dir is not a folder")


def bundle_search_path(bundle_dir: str | os.PathLike | None = None) -> list[BundleDir]:
    """The folders searched for bundle names, first match first; repeated folders are listed once."""
    candidates = []
    if bundle_dir is not None:
        candidates.append(BundleDir(Path(bundle_dir).expanduser(), "--bundle-dir"))
    for entry in os.environ.get(BUNDLE_DIR_ENV, "").split(os.pathsep):
        if entry:
            candidates.append(BundleDir(Path(entry).expanduser(), BUNDLE_DIR_ENV))
    candidates += [BundleDir(PACKAGE_BUNDLES_DIR, "package"), BundleDir(CHECKOUT_BUNDLES_DIR, "checkout")]
    seen: set[Path] = set()
    unique = []
    for candidate in candidates:
        key = candidate.path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(candidate)
    return unique


def find_bundle(name: str, bundle_dir: str | os.PathLike | None = None) -> tuple[Path, BundleDir] | None:
    """The bundle folder ``name`` resolves to and the search-path folder it was found in, or None."""
    if not name or Path(name).name != name:  # a name, never a path
        return None
    for folder in bundle_search_path(bundle_dir):
        if is_bundle(folder.path / name):
            return folder.path / name, folder
    return None


def found_bundles(bundle_dir: str | os.PathLike | None = None) -> dict[str, tuple[Path, BundleDir]]:
    """Every bundle name in the search path, sorted, with the folder it resolves to (the first match)."""
    found: dict[str, tuple[Path, BundleDir]] = {}
    for folder in bundle_search_path(bundle_dir):
        if folder.path.is_dir():
            for child in folder.path.iterdir():
                if child.name not in found and is_bundle(child):
                    found[child.name] = (child, folder)
    return dict(sorted(found.items()))


def is_in_search_path(folder: str | os.PathLike, bundle_dir: str | os.PathLike | None = None) -> bool:
    """True when ``folder`` is a bundle of one of the search-path folders (a source that training never writes into)."""
    parent = Path(folder).expanduser().resolve().parent
    return any(parent == entry.path.resolve() for entry in bundle_search_path(bundle_dir))


def named_bundle_weights(name: str) -> str:
    """Path of ``models/model.pt`` of the bundle called ``name`` in the search path (for bundle configs).

    Bundle configs use it to start from another bundle's weights wherever they run from (the
    repository, an installed package, a run folder). When no bundle of that name is found, the
    path among the shipped bundles is returned, so that loading it fails naming the missing file.
    """
    found = find_bundle(name)
    return str((found[0] if found else shipped_bundles_dir() / name) / "models" / "model.pt")
