# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Which handlers a rank of a multi-process training (``torchrun``) builds.

Every rank must build the handlers that take part in training or keep state every rank needs:
validation, learning-rate schedule, gradient clipping, checkpoint resume, best-score tracking, time
budget, the metrics log's running sums (the project's own handlers write files on rank 0 only).
Handlers whose only job is output (TensorBoard, console statistics, progress bars) or that write
files without a rank check (MONAI's ``CheckpointSaver``) are built on rank 0 alone: in a bundle's
``train.json`` each carries ``"_disabled_": "@not_rank_zero"``, with ``"not_rank_zero":
"$pipeline.training.is_secondary_rank()"``. MONAI's config parser drops disabled components from
their list before building them, which matters: a ``TensorBoardStatsHandler`` creates its event
file when built, attached or not. A flag per handler, not a slice of the list by position, so the
list can be reordered or extended freely.
"""

from __future__ import annotations

import torch.distributed as dist

__all__ = ["is_secondary_rank"]


def is_secondary_rank() -> bool:
    """True in a process of an initialised ``torch.distributed`` group whose rank is not 0."""
    return dist.is_available() and dist.is_initialized() and dist.get_rank() > 0
