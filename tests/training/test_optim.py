"""Per-layer learning rates for the papers' recipes."""

from __future__ import annotations

import pytest
import torch

from pipeline.networks import SRCNN
from pipeline.training import param_groups


def test_srcnn_last_layer_group():
    net = SRCNN()
    groups = param_groups(net, {"layers.2.": 1e-5})
    assert "lr" not in groups[0] and groups[1]["lr"] == 1e-5
    assert [p.shape for p in groups[1]["params"]] == [p.shape for p in net.layers[2].parameters()]
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    optimizer = torch.optim.SGD(groups, lr=1e-4, momentum=0.9)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-4, 1e-5]


def test_wrapped_network_uses_inner_names():
    net = SRCNN()
    groups = param_groups(torch.nn.DataParallel(net), {"layers.2.": 1e-5})
    assert len(groups[1]["params"]) == 2


def test_every_parameter_in_a_prefix_group():
    net = torch.nn.Linear(2, 2)
    groups = param_groups(net, {"": 0.5})
    assert len(groups) == 1 and groups[0]["lr"] == 0.5


def test_ill_arg():
    with pytest.raises(ValueError, match="layers.9"):
        param_groups(SRCNN(), {"layers.9.": 1e-5})
