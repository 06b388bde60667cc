# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Where outputs go: JSON sidecar names, and the checks every command runs before it computes.

A job checks its outputs first, so that a wrong extension, a folder that cannot be created or
written, or an output that would replace an input (or an input's sidecar) fails in a second with
one line naming the file, not after minutes of computation, and never destroys data.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from pipeline.io.atomic import same_file
from pipeline.io.errors import OutputPathError

__all__ = ["IMAGE_OUTPUT_SUFFIXES", "sidecar_path", "check_output_folder", "check_output_path", "check_outputs"]

IMAGE_OUTPUT_SUFFIXES = (".nii", ".nii.gz")
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")


def sidecar_path(image_path: str | os.PathLike) -> Path:
    """``x.nii.gz`` → ``x.json`` (BIDS style: the sidecar replaces the image suffix)."""
    path = Path(image_path)
    name = path.name
    for suffix in _IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)] + ".json")
    return path.with_name(name + ".json")


def check_output_path(path: str | os.PathLike) -> None:
    """Check that an image output can be written at ``path`` (nothing is created).

    Raises:
        OutputPathError: ``path`` does not end in ``.nii``/``.nii.gz``, is a folder, has a file
            where a parent folder should be, or its nearest existing folder is not writable.
    """
    out = Path(path).expanduser()
    if not out.name.endswith(IMAGE_OUTPUT_SUFFIXES):
        raise OutputPathError(out, "output must end in .nii or .nii.gz")
    if out.is_dir():
        raise OutputPathError(out, "is a folder; give a file name ending in .nii or .nii.gz")
    _check_folder(out.parent, out)


def check_output_folder(folder: str | os.PathLike) -> None:
    """Check that ``folder`` is a writable folder or can be created as one (nothing is created).

    Raises:
        OutputPathError: a file stands where ``folder`` or one of its parents should be, or the
            nearest existing folder is not writable.
    """
    _check_folder(Path(folder).expanduser(), Path(folder))


def _check_folder(folder: Path, named: Path) -> None:
    """Raise an ``OutputPathError`` naming ``named`` unless ``folder`` exists writable or can be made."""
    absolute = folder.absolute()
    existing = next(p for p in (absolute, *absolute.parents) if p.exists())
    if not existing.is_dir():
        raise OutputPathError(named, f"cannot create the output folder: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(named, f"the folder {existing} is not writable")


def check_outputs(images: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike | None]) -> None:
    """Check output ``images`` and their JSON sidecars before any computation.

    Args:
        images: the image files a job will write (each also gets or may get a ``.json`` sidecar).
        inputs: the files it reads (``None`` entries are ignored); neither they nor their
            sidecars (``lr.json`` records how ``lr.nii.gz`` was made) may be overwritten.

    Raises:
        OutputPathError: see :func:`check_output_path`.
        FileExistsError: an output image or its sidecar is an input or an input's sidecar.
    """
    protected = _protected_files(inputs)
    for image in images:
        check_output_path(image)
        for target in (image, sidecar_path(image)):
            for path, what in protected:
                if same_file(target, path):
                    raise FileExistsError(f"{target}: refusing to write over {what}")


def _protected_files(inputs: Iterable[str | os.PathLike | None]) -> list[tuple[Path, str]]:
    """(path, description) of every input and every input's sidecar."""
    protected = []
    for source in inputs:
        if source is None or str(source) == "":
            continue
        protected += [(Path(source), "the input"), (sidecar_path(source), f"the sidecar of the input {source}")]
    return protected
