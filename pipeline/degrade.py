# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Synthesize an LR volume from an HR file and write it with a sidecar recording the degradation."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monai.data import MetaTensor
from monai.transforms import Randomizable

from pipeline.inference.sidecar import write_with_sidecar
from pipeline.io import InvalidVolumeError, check_outputs, error_message, load_volume

__all__ = ["MIN_LR_VOXELS", "degrade_file"]


MIN_LR_VOXELS = 2  # per axis: what pipeline.io.load_volume accepts as a 3D volume


def _degrade(
    transform: Callable[[MetaTensor], MetaTensor], hr: MetaTensor, input_path: str | os.PathLike
) -> MetaTensor:
    """``transform(hr)``, refused when the input is too small for it (named by ``input_path``)."""
    shape = tuple(hr.shape[1:])
    try:
        lr = transform(hr)
    except ValueError as err:  # the transforms refuse axes shorter than their output spacing
        problem = f"shape {shape} is too small for this degradation: {error_message(err)}"
        raise InvalidVolumeError(input_path, problem) from err
    if min(lr.shape[1:]) < MIN_LR_VOXELS:
        raise InvalidVolumeError(
            input_path,
            f"shape {shape} is too small for this degradation: the LR volume would have shape {tuple(lr.shape[1:])}; "
            f"every axis needs at least {MIN_LR_VOXELS} voxels",
        )
    return lr


def degrade_file(
    transform: Callable[[MetaTensor], MetaTensor],
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    seed: int = 0,
    protocol: str | None = None,
) -> dict[str, Any]:
    """Apply an LR-synthesis ``transform`` to ``input_path`` and write ``output_path`` (NIfTI).

    The output path is checked first (:func:`~pipeline.io.check_outputs`). The JSON sidecar
    beside the output holds the transform's ``meta["degradation"]`` record (method, zoom,
    axes, grids, spacings), which ``mrisr infer`` reads to choose the SR grid. Random transforms
    are seeded with ``seed``. Returns the sidecar dict.

    Raises:
        InvalidVolumeError: the input is too small for the degradation (the LR volume would have
            fewer than ``MIN_LR_VOXELS`` voxels along an axis, which no SR method accepts).
    """
    check_outputs([output_path], [input_path])
    hr = load_volume(input_path)
    if isinstance(transform, Randomizable):
        transform.set_random_state(seed=seed)
    lr = _degrade(transform, hr, input_path)
    record = {
        "source": str(Path(input_path).resolve()),
        "protocol": protocol,
        "seed": seed,
        "degradation": lr.meta.get("degradation"),
        "degradation_history": lr.meta.get("degradation_history"),
        "output_shape": list(lr.shape[1:]),
    }
    return write_with_sidecar(lr, output_path, record, inputs=[input_path])
