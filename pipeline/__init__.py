# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Brain MRI super-resolution on MONAI: preprocessing, LR synthesis, SR networks, inference, evaluation.

``from pipeline import super_resolve`` (:func:`pipeline.api.super_resolve`) super-resolves one volume in
memory. It is imported on first use, so that ``import pipeline`` stays fast (no torch, no MONAI).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "super_resolve"]


def __getattr__(name: str) -> Any:
    """``pipeline.super_resolve``, imported from :mod:`pipeline.api` when first asked for."""
    if name == "super_resolve":
        from pipeline.api import super_resolve

        return super_resolve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "super_resolve"])
