# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""JSON sidecars that travel with every written volume: what made it, from what, and how.

``sidecar_path`` lives in :mod:`pipeline.io.outputs` (the output checks need it) and is re-exported here.
"""

from __future__ import annotations

import json
import os
import platform
from typing import Any

import monai
import nibabel
import numpy as np
import scipy
import torch

import pipeline
from pipeline.io.outputs import sidecar_path

__all__ = ["sidecar_path", "software_versions", "read_sidecar"]


def software_versions() -> dict[str, str]:
    """Versions of the software that shape the output."""
    return {
        "mrisr-pipeline": pipeline.__version__,
        "monai": monai.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "nibabel": nibabel.__version__,
        "python": platform.python_version(),
    }


def read_sidecar(image_path: str | os.PathLike) -> dict[str, Any] | None:
    """The sidecar of ``image_path`` as a dict, or ``None`` when there is none or it is unreadable."""
    path = sidecar_path(image_path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
