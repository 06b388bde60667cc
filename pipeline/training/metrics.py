# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Validation metrics per volume, averaged over volumes: PSNR in the brain mask, its gain over a baseline,
and sharpness relative to HR (that of ``mrisr evaluate``, :func:`pipeline.evaluation.relative_sharpness`).

PSNR here is the project's one definition, that of ``mrisr evaluate``
(:func:`pipeline.evaluation.metrics.psnr`): :math:`10 \\log_{10}(L^2 / \\mathrm{MSE}_{mask})` with the
data range :math:`L` = max − min of the HR inside the mask, per volume. It does not depend on the
intensity scaling of the validation data, so a validation score equals the evaluation score of the
same volume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from ignite.engine import Engine
from ignite.exceptions import NotComputableError
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce

from pipeline.evaluation.metrics import psnr_of_values
from pipeline.evaluation.sharpness import relative_sharpness

__all__ = ["masked_psnr", "MaskedPSNR", "MaskedPSNRGain", "MaskedRelativeSharpness", "PerVolumeMean"]


def masked_psnr(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, data_range: float | None = None
) -> float:
    """PSNR in dB of ``pred`` against ``target`` over the voxels where ``mask`` is true.

    Args:
        pred: (C, *S) or (*S) prediction.
        target: same shape as ``pred``.
        mask: boolean (or 0/1) tensor broadcastable to ``pred``.
        data_range: :math:`L` in the volumes' units; ``None`` = max − min of ``target`` inside the mask
            (:func:`pipeline.evaluation.metrics.data_range`, the definition used everywhere).

    Returns:
        PSNR in dB (``inf`` for a perfect prediction), by :func:`pipeline.evaluation.metrics.psnr_of_values`.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} shapes differ")
    inside = torch.broadcast_to(mask.to(pred.device) > 0, pred.shape)
    if not bool(inside.any()):
        raise ValueError("the mask is empty")
    target_values = target.to(pred.device)[inside].double().cpu().numpy()
    if data_range is None:
        data_range = float(target_values.max() - target_values.min())
    return psnr_of_values(pred[inside].double().cpu().numpy(), target_values, data_range)


class PerVolumeMean(Metric):
    """Mean over volumes of a per-volume value (an ignite metric; synchronised across DDP ranks).

    Subclasses define ``_value(items) -> float`` for one volume's tensors, taken from the tuple that
    ``output_transform`` returns: batched tensors (B, C, *S) or sequences of per-volume tensors (C, *S).

    Args:
        output_transform: maps the engine output to the update tuple.
        save_details: also store the per-volume values in ``engine.state.metric_details[name]`` as a
            (N, 1) tensor, for MONAI's ``MetricsSaver`` (single process only).
        device: where the running sums live.
    """

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        save_details: bool = False,
        device: str | torch.device = "cpu",
    ) -> None:
        self.save_details = save_details
        super().__init__(output_transform=output_transform, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._sum = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._count = torch.tensor(0, device=self._device)
        self._values: list[float] = []

    def _value(self, items: Sequence[torch.Tensor]) -> float:
        raise NotImplementedError

    @reinit__is_reduced
    def update(self, output: Sequence[Any]) -> None:
        for items in zip(*output):
            value = self._value(items)
            self._values.append(value)
            self._sum += value
            self._count += 1

    @sync_all_reduce("_sum", "_count")
    def compute(self) -> float:
        if self._count == 0:
            raise NotComputableError(f"{type(self).__name__} needs at least one volume")
        return float(self._sum / self._count)

    def completed(self, engine: Engine, name: str) -> None:
        super().completed(engine, name)
        if self.save_details:
            if not hasattr(engine.state, "metric_details"):
                engine.state.metric_details = {}  # type: ignore[attr-defined]
            engine.state.metric_details[name] = torch.tensor(self._values)[:, None]  # type: ignore[attr-defined]


class MaskedPSNR(PerVolumeMean):
    """Mean over volumes of :func:`masked_psnr`.

    ``output_transform`` must return ``(pred, target, mask)``, e.g.
    ``monai.handlers.from_engine(["pred", "label", "mask"])``.

    Args:
        data_range: :math:`L`; ``None`` (default) = each target's max − min inside its mask.
        output_transform, save_details, device: as :class:`PerVolumeMean`.
    """

    def __init__(
        self,
        data_range: float | None = None,
        output_transform: Callable[[Any], Any] = lambda x: x,
        save_details: bool = False,
        device: str | torch.device = "cpu",
    ) -> None:
        if data_range is not None and not data_range > 0:
            raise ValueError(f"data_range must be > 0 or None, got {data_range}")
        self.data_range = None if data_range is None else float(data_range)
        super().__init__(output_transform=output_transform, save_details=save_details, device=device)

    def _value(self, items: Sequence[torch.Tensor]) -> float:
        pred, target, mask = items
        return masked_psnr(pred, target, mask, self.data_range)


class MaskedPSNRGain(MaskedPSNR):
    """Mean over volumes of ``PSNR(pred) - PSNR(reference)`` in dB, both inside the mask.

    ``output_transform`` must return ``(pred, reference, target, mask)``, e.g.
    ``from_engine(["pred", "baseline", "label", "mask"])``. Other arguments as :class:`MaskedPSNR`.
    """

    def _value(self, items: Sequence[torch.Tensor]) -> float:
        pred, reference, target, mask = items
        return masked_psnr(pred, target, mask, self.data_range) - masked_psnr(reference, target, mask, self.data_range)


class MaskedRelativeSharpness(PerVolumeMean):
    """Mean over volumes of the mean gradient magnitude in the mask of ``pred`` over that of the target.

    1 = as sharp as HR (:func:`pipeline.evaluation.relative_sharpness`, the ``sharpness / HR`` of
    ``mrisr evaluate``). ``output_transform`` must return ``(pred, target, mask)`` with single-channel
    volumes (1, X, Y, Z). Arguments as :class:`PerVolumeMean`.
    """

    def _value(self, items: Sequence[torch.Tensor]) -> float:
        pred, target, mask = items
        return relative_sharpness(pred, target, mask)
