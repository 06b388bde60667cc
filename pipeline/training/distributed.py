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

import ignite.distributed as idist

__all__ = ["is_secondary_rank"]


def is_secondary_rank() -> bool:
    """True in a process of an initialised ``torch.distributed`` group whose rank is not 0.

    Asked through ``ignite.distributed``, whose first use on a rank creates a process group: a
    collective call every rank must make. Every rank resolves ``@not_rank_zero`` at the same point of
    building the trainer, so this is where they all make it; otherwise rank 0 made it alone inside
    MONAI's ``CheckpointSaver`` (built on rank 0 only) and waited forever (mdcsrn_gan under torchrun).
    """
    return idist.get_rank() > 0
