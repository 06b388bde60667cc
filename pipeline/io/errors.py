# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Errors raised for unusable input images; each names the file and the problem."""

from __future__ import annotations

__all__ = ["ImageFileError", "InvalidVolumeError"]


class ImageFileError(OSError):
    """A file could not be read as an image (missing, truncated, corrupt, unknown format)."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class InvalidVolumeError(ValueError):
    """An image was read but is not a usable 3D MR volume (wrong dimensionality, no signal, NaNs...)."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
