# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Ignite engine pieces: batch preparation for patch pairs, and a full-volume SR evaluator.

Training runs MONAI's ``SupervisedTrainer`` on patch pairs ``{"lr", "hr"}`` with
:func:`prepare_sr_batch`. Validation runs whole volumes through the same full-volume method as
inference (``NetworkSR``: intensity scaling, input-grid upsampling, slice-wise or patch-wise
inference), so the validation score is the score a user of the bundle gets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from monai.data import decollate_batch
from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys

__all__ = ["prepare_sr_batch", "SRVolumeEvaluator"]


def prepare_sr_batch(
    batchdata: Mapping[str, torch.Tensor],
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lr, hr)`` of a collated patch batch on ``device``: (B, 1, *patch) and (B, 1, *patch·zoom).

    The ``prepare_batch`` of ``SupervisedTrainer`` for :func:`pipeline.training.training_dataset` batches;
    ``kwargs`` (e.g. ``memory_format``) are passed to ``Tensor.to``.
    """
    return (
        batchdata["lr"].to(device=device, non_blocking=non_blocking, **kwargs),
        batchdata["hr"].to(device=device, non_blocking=non_blocking, **kwargs),
    )


class SRVolumeEvaluator(SupervisedEvaluator):
    """Evaluate an SR network on whole volumes through a full-volume method such as ``NetworkSR``.

    Each batch holds whole volumes from :func:`pipeline.training.validation_dataset`. Every LR volume
    (1, x, y, z) goes through ``sr_method(lr, zoom)``; the iteration output is
    ``{"image": lr, "label": hr, "pred": sr, "mask": mask, "baseline": baseline}`` with the HR-grid
    entries batched as (B, 1, X, Y, Z), ready for :class:`pipeline.training.MaskedPSNR` and
    :class:`pipeline.training.MaskedPSNRGain` through ``monai.handlers.from_engine``.

    Args:
        device: the engine's device (``sr_method`` chooses its own).
        val_data_loader: loader of whole-volume dicts (batch size 1 is usual).
        network: the network ``sr_method`` wraps; put in eval mode during the iteration.
        sr_method: callable ``(lr MetaTensor (1, x, y, z), zoom) -> sr (1, X, Y, Z)``.
        zoom: HR voxels per LR voxel along each axis, used when a batch has no ``zoom_key`` entry.
        lr_key, hr_key, mask_key, baseline_key: keys of the volumes in a batch.
        zoom_key: a batch's per-scan zooms (3 floats per scan, written by ``SynthesizeLRd``).
        kwargs: passed to ``SupervisedEvaluator`` (``key_val_metric``, ``additional_metrics``,
            ``val_handlers``, ``amp``...). ``decollate`` is False: outputs stay batched tensors.
    """

    def __init__(
        self,
        device: str | torch.device,
        val_data_loader: Any,
        network: torch.nn.Module,
        sr_method: Callable[[Any, Sequence[float]], torch.Tensor],
        zoom: Sequence[float],
        *,
        lr_key: str = "lr",
        hr_key: str = "hr",
        mask_key: str = "mask",
        baseline_key: str = "baseline",
        zoom_key: str = "zoom",
        **kwargs: Any,
    ) -> None:
        if len(zoom) != 3 or any(z <= 0 for z in zoom):
            raise ValueError(f"zoom needs 3 positive factors, got {tuple(zoom)}")
        super().__init__(
            device=torch.device(device), val_data_loader=val_data_loader, network=network, decollate=False, **kwargs
        )
        self.sr_method = sr_method
        self.zoom = [float(z) for z in zoom]
        self.lr_key, self.hr_key, self.mask_key, self.baseline_key = lr_key, hr_key, mask_key, baseline_key
        self.zoom_key = zoom_key

    def _zooms(self, batchdata: dict[str, Any], count: int) -> list[list[float]]:
        """One zoom per scan of the batch: the batch's own (collated per axis) or the fixed ``zoom``."""
        if self.zoom_key not in batchdata:
            return [self.zoom] * count
        per_axis = [torch.as_tensor(z).reshape(-1) for z in batchdata[self.zoom_key]]
        return [[float(z[i]) for z in per_axis] for i in range(count)]

    def _iteration(self, engine: SRVolumeEvaluator, batchdata: dict[str, Any]) -> dict[str, Any]:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        volumes = decollate_batch(batchdata[self.lr_key])
        with engine.mode(engine.network):
            preds = [
                engine.sr_method(lr, zoom).as_tensor()
                for lr, zoom in zip(volumes, self._zooms(batchdata, len(volumes)))
            ]
        hr = batchdata[self.hr_key]
        pred = torch.stack(preds).to(hr.device)
        if pred.shape != hr.shape:
            raise RuntimeError(f"SR {tuple(pred.shape)} and HR {tuple(hr.shape)} shapes differ")
        engine.state.output = {
            CommonKeys.IMAGE: batchdata[self.lr_key],
            CommonKeys.LABEL: hr,
            CommonKeys.PRED: pred,
            "mask": batchdata[self.mask_key],
            "baseline": batchdata[self.baseline_key],
        }
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
