# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import pipeline.networks
from pipeline.networks import SRCNN, MRLNet
from pipeline.networks.complexity import complexity_table, count_parameters, macs_per_output_voxel


def test_count_parameters():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 2, 1))
    assert count_parameters(net) == (9 * 4 + 4) + (4 * 2 + 2)
    net[1].weight.requires_grad_(False)
    assert count_parameters(net) == 40 + 2
    assert count_parameters(net, trainable_only=False) == 50


def test_macs_conv_and_transposed():
    srcnn = SRCNN(2)
    assert macs_per_output_voxel(srcnn, (2, 1, 20, 20)) == 9 * 9 * 64 + 5 * 5 * 64 * 32 + 5 * 5 * 32
    up = nn.ConvTranspose2d(3, 2, kernel_size=4, stride=2, padding=1)
    # each of the 8x8 inputs scatters 2 * 4 * 4 MACs per input channel onto 16x16 outputs
    assert macs_per_output_voxel(up, (1, 3, 8, 8)) == 8 * 8 * 3 * 2 * 16 / (16 * 16)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    assert macs_per_output_voxel(lin, (4, 3, 4)) == 12 * 5


def test_macs_leaves_network_untouched():
    net = MRLNet(2, 2, features=4, num_units=2).train()
    before = [p.clone() for p in net.parameters()]
    macs_per_output_voxel(net, (1, 1, 8, 8))
    assert net.training
    assert all(p.device.type == "cpu" and torch.equal(p, q) for p, q in zip(net.parameters(), before))


def test_ill_arg():
    with pytest.raises(ValueError):
        macs_per_output_voxel(SRCNN(2), (1,))


def test_table_lists_every_network_and_readme_is_current():
    table = complexity_table()
    for name in ("SRCNN", "MFCN_BL", "MRLNet x2", "MSRNTV", "MDCSRN b4u4", "MDCSRN b8u4", "WGANCritic", "RRLSRN x4"):
        assert name in table
    assert "| SRCNN 9-5-5 (2D) | (1, 1, 64, 64) | 57,281 | 57,184 |" in table
    readme = Path(pipeline.networks.__file__).with_name("README.md").read_text()
    assert table in readme, "regenerate the table with `mrisr report complexity`"
