# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Data consistency: re-degrade an SR output with the input's forward model and compare with the input.

A faithful SR output, degraded the way the input was acquired, gives the input back up to noise; an
output that invents or removes structure, or a method run on an input of another degradation,
does not. The forward model is the method's own assumption about the input:

- through-plane (``thick_slice``): the input's slices (:func:`~pipeline.inference.input_acquisition`:
  thickness, gap, profile) taken from the output along the slice axis;
- in-plane and 3D bundles: the bundle's degradation protocol (``degradation_protocol`` in its
  metadata), applied at the zoom it was trained for.

The residual is ``||D(sr) - lr|| / ||lr||`` over the voxels of the input's head mask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor

from pipeline.inference.methods import bundle_protocol
from pipeline.inference.network_method import NetworkSR
from pipeline.inference.through_plane import ThroughPlaneSR, input_acquisition

__all__ = ["ForwardModel", "data_consistency", "forward_model"]

ForwardModel = Callable[[MetaTensor], MetaTensor]


def _unwrap(method: Any) -> Any:
    """The bundle method inside an adapted one (``AdaptedSR`` of :mod:`pipeline.training.adaptation`
    keeps it as ``method``)."""
    inner = getattr(method, "method", None)
    return inner if isinstance(inner, NetworkSR) else method


def forward_model(
    method: Any, lr: MetaTensor, zoom: Sequence[float], acquisition_overrides: dict[str, Any] | None = None
) -> tuple[ForwardModel, dict[str, Any]] | None:
    """The input's forward model as ``method`` assumes it, and its description; ``None`` if it has none.

    Baselines and bundles without a ``degradation_protocol`` have none; an in-plane bundle run at a
    zoom other than its protocol's has none either (its protocol does not describe that input).
    """
    inner = _unwrap(method)
    if isinstance(inner, ThroughPlaneSR):
        thick = int(np.argmax([abs(z - 1.0) for z in zoom]))
        acquisition = input_acquisition(
            lr, thick, degradation=lr.meta.get("degradation"), **(acquisition_overrides or {})
        )
        description = {
            "model": "thick_slice",
            "thickness_mm": acquisition.thickness_mm,
            "gap_mm": acquisition.gap_mm,
            "profile": acquisition.profile,
            "axis": thick,
        }
        return acquisition.transform(), description
    protocol = bundle_protocol(inner) if isinstance(inner, NetworkSR) else None
    if protocol is None:
        return None
    if not np.allclose(protocol.zoom, zoom, atol=1e-6):
        return None
    return protocol.make_transform(), {"model": "protocol", "protocol": protocol.name}


def data_consistency(sr: MetaTensor, lr: MetaTensor, forward: ForwardModel, mask: np.ndarray) -> float:
    """Relative residual ``||D(sr) - lr|| / ||lr||`` over the (X, Y, Z) boolean ``mask`` of the input grid.

    Raises:
        ValueError: ``D(sr)`` does not land on the input's grid (shape), or the mask is empty.
    """
    degraded = forward(sr.float())
    if tuple(degraded.shape) != tuple(lr.shape):
        raise ValueError(
            f"re-degraded output {tuple(degraded.shape[1:])} is not on the input grid {tuple(lr.shape[1:])}"
        )
    if not mask.any():
        raise ValueError("data consistency needs a non-empty mask")
    residual = (torch.as_tensor(degraded)[0].float().numpy() - lr[0].float().numpy())[mask]
    reference = lr[0].float().numpy()[mask]
    return float(np.linalg.norm(residual) / max(np.linalg.norm(reference), 1e-12))
