# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Arguments renamed to ``zoom``, kept working for one version with a ``FutureWarning``.

The super-resolution ratio is called ``zoom`` everywhere (output voxels per input voxel per axis,
MONAI's ``Zoom`` sense; LR spacing / HR spacing). Its older names, ``scale`` (``mrisr infer`` and the
Python API) and ``factors`` (``mrisr degrade`` and the LR-synthesis transforms), still work until
:data:`ZOOM_ALIASES_REMOVED` through :func:`monai.utils.deprecated_arg`, checked against mrisr's own
version (MONAI's default compares with MONAI's version).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from monai.utils import deprecated_arg

from pipeline import __version__

__all__ = ["ZOOM_ALIASES_REMOVED", "ZOOM_ALIASES_SINCE", "renamed_to_zoom"]

T = TypeVar("T")

#: mrisr version in which ``scale`` and ``factors`` became aliases of ``zoom``.
ZOOM_ALIASES_SINCE = "0.1.0"
#: mrisr version that drops them.
ZOOM_ALIASES_REMOVED = "0.2.0"


def renamed_to_zoom(old: str) -> Callable[[T], T]:
    """Decorator: the keyword ``old`` (still in the signature, default ``None``) is passed on as ``zoom``.

    The decorated callable keeps an ``old`` parameter so that MONAI's wrapper can bind it; the
    wrapper copies its value into ``zoom`` when ``zoom`` is not given and issues the warning.
    """
    return deprecated_arg(
        name=old,
        since=ZOOM_ALIASES_SINCE,
        removed=ZOOM_ALIASES_REMOVED,
        new_name="zoom",
        version_val=__version__,
        msg_suffix=f"Use zoom= (output voxels per input voxel per axis, MONAI's Zoom) instead of {old}=.",
    )
