# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Synthesize an LR volume from an HR file and write it with a sidecar recording the degradation."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monai.data import MetaTensor
from monai.transforms import Randomizable

from pipeline.inference.sidecar import sidecar_path, software_versions
from pipeline.io import atomic_write_json, ensure_not_input, load_volume, save_nifti

__all__ = ["degrade_file"]


def degrade_file(
    transform: Callable[[MetaTensor], MetaTensor],
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    seed: int = 0,
    protocol: str | None = None,
) -> dict[str, Any]:
    """Apply an LR-synthesis ``transform`` to ``input_path`` and write ``output_path`` (NIfTI).

    The JSON sidecar beside the output holds the transform's ``meta["degradation"]`` record
    (method, factors, axes, grids, spacings), which ``mrisr infer`` reads to choose the SR grid.
    Random transforms are seeded with ``seed``. Returns the sidecar dict.
    """
    ensure_not_input(output_path, [input_path])
    ensure_not_input(sidecar_path(output_path), [input_path])
    hr = load_volume(input_path)
    if isinstance(transform, Randomizable):
        transform.set_random_state(seed=seed)
    lr = transform(hr)
    save_nifti(lr, output_path, inputs=[input_path])
    record = {
        "status": "complete",
        "source": str(Path(input_path).resolve()),
        "protocol": protocol,
        "seed": seed,
        "degradation": lr.meta.get("degradation"),
        "degradation_history": lr.meta.get("degradation_history"),
        "output_shape": list(lr.shape[1:]),
        "software": software_versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(sidecar_path(output_path), record)
    return record
