# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import pytest
import torch

from pipeline.networks import MDCSRN
from pipeline.training import calibrate_norm_statistics

SMALL = {"num_blocks": 2, "units_per_block": 2, "growth_rate": 4}


def batches(n: int, offset: float = 3.0, scale: float = 2.0) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [
        {"lr": offset + scale * torch.rand(2, 1, 6, 6, 6, generator=generator), "hr": torch.zeros(2, 1, 6, 6, 6)}
        for _ in range(n)
    ]


def test_statistics_are_the_average_over_batches_and_frozen_layers_stay_frozen():
    net = MDCSRN(freeze_norm_statistics=True, **SMALL).train()
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k}
    data = batches(3)
    calibrate_norm_statistics(net, data, num_batches=3)
    stem_norm = net.levels[0][0][0].N  # the first compressor's BatchNorm sees the stem's output
    with torch.no_grad():
        per_batch = [net.stem(b["lr"]).mean(dim=(0, 2, 3, 4)) for b in data]
    torch.testing.assert_close(stem_norm.running_mean[: 2 * 4], torch.stack(per_batch).mean(0), atol=1e-5, rtol=1e-5)
    assert stem_norm.momentum == 0.1 and net.training and not stem_norm.training
    for key, value in net.state_dict().items():
        if key in weights:
            torch.testing.assert_close(value, weights[key])


def test_identity_after_calibration_with_a_shift():
    net = MDCSRN(freeze_norm_statistics=True, **SMALL).init_as_identity()
    calibrate_norm_statistics(net, batches(2), num_batches=2).init_as_identity(shift=4.0)
    x = batches(1, offset=2.5, scale=3.0)[0]["lr"]
    torch.testing.assert_close(net(x), x, atol=1e-4, rtol=1e-4)


def test_ill_arguments():
    net = MDCSRN(**SMALL)
    with pytest.raises(ValueError, match="num_batches"):
        calibrate_norm_statistics(net, batches(1), num_batches=0)
    with pytest.raises(ValueError, match="no batch"):
        calibrate_norm_statistics(net, [], num_batches=2)
