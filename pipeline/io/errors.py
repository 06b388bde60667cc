# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Errors raised for unusable input images and output paths, each naming the file and the problem,
and how any error is shown to a user: one line (:func:`error_message`)."""

from __future__ import annotations

__all__ = ["ImageFileError", "InvalidVolumeError", "OutputPathError", "error_message"]

_CONFIG_WRAPPERS = ("Failed to evaluate", "Failed to instantiate")  # monai.bundle's RuntimeError messages


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


class OutputPathError(OSError):
    """An output cannot be written where asked (wrong extension, folder is a file, not writable...)."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def error_message(err: BaseException) -> str:
    """``err`` as one line, ``<file>: <problem>`` where the error names a file; never empty.

    Errors a MONAI bundle config wraps ("Failed to evaluate ...") are shown by their cause; an
    ``OSError`` from the system by its file and reason (``out: Not a directory``); a message
    without text (``MemoryError()``) by the error's kind.
    """
    while isinstance(err, RuntimeError) and err.__cause__ is not None and str(err).startswith(_CONFIG_WRAPPERS):
        err = err.__cause__
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    text = " ".join(str(err).split())
    if isinstance(err, MemoryError):
        return f"not enough memory{': ' + text if text else ''}"
    return text or type(err).__name__
