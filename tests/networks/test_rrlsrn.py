# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import pytest
import torch

from pipeline.networks import RRLSRN
from pipeline.networks.rrlsrn import cascade_state_dict, load_cascade_from_x2

SMALL = {"features": 4, "body_layers": 2}


@pytest.mark.parametrize("spatial_dims,scale", [(2, 2), (2, 4), (3, 2), (3, 4)])
def test_shape_and_backward(spatial_dims, scale):
    net = RRLSRN(spatial_dims, scale, **SMALL)
    shape = (2, 1) + (5, 6, 7)[:spatial_dims]
    out = net(torch.rand(shape))
    assert out.shape == (2, 1, *(scale * s for s in shape[2:]))
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_default_configuration():
    net = RRLSRN()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    transposed = [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == 13 and len(transposed) == 2
    assert all(c.kernel_size == (3, 3) for c in convs) and all(t.kernel_size == (4, 4) for t in transposed)
    assert net(torch.rand(1, 1, 10, 12)).shape == (1, 1, 20, 24)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_image_branch_starts_as_linear_interpolation(spatial_dims):
    """Zeroing the residual leaves the (bi/tri)linear upsampling of the input, exact away from the border."""
    net = RRLSRN(spatial_dims, 2, **SMALL)
    with torch.no_grad():
        net.levels[0].residual.conv.weight.zero_()
        net.levels[0].residual.conv.bias.zero_()
    x = torch.rand((1, 1) + (6,) * spatial_dims)
    mode = "bilinear" if spatial_dims == 2 else "trilinear"
    expected = torch.nn.functional.interpolate(x, scale_factor=2, mode=mode, align_corners=False)
    inner = (slice(None), slice(None)) + (slice(1, -1),) * spatial_dims
    torch.testing.assert_close(net(x)[inner], expected[inner])


@pytest.mark.parametrize("spatial_dims,scale", [(2, 2), (2, 4), (3, 2)])
def test_script(spatial_dims, scale):
    net = RRLSRN(spatial_dims, scale, **SMALL).eval()
    x = torch.rand((1, 1) + (4,) * spatial_dims)
    torch.testing.assert_close(torch.jit.script(net)(x), net(x))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"spatial_dims": 1},
        {"scale_factor": 3},
        {"scale_factor": 8},
        {"features": 0},
        {"body_layers": 0},
        {"kernel_size": 4},
        {"upsample_kernel_size": 0},
        {"negative_slope": -1.0},
    ],
)
def test_ill_arg(kwargs):
    with pytest.raises(ValueError):
        RRLSRN(**kwargs)


def test_cascade_from_x2_weights(tmp_path):
    """Each level of the x4 cascade starts as the x2 network's level: the first level's output is the x2 output."""
    x2 = RRLSRN(2, 2, features=8, body_layers=2)
    path = tmp_path / "x2.pt"
    torch.save(x2.state_dict(), path)
    x4 = load_cascade_from_x2(RRLSRN(2, 4, features=8, body_layers=2), path)
    x = torch.rand(2, 1, 6, 5)
    with torch.no_grad():
        features, image = x4.levels[0](x4.input_conv(x), x)
        torch.testing.assert_close(image, x2(x))
        for key, value in x4.levels[1].state_dict().items():
            torch.testing.assert_close(value, x2.levels[0].state_dict()[key])
        assert x4(x).shape == (2, 1, 24, 20)


def test_cascade_rejects_other_weights(tmp_path):
    with pytest.raises(ValueError, match="one-level"):
        cascade_state_dict(RRLSRN(2, 4, features=8, body_layers=1).state_dict(), 2)
    path = tmp_path / "x2_wide.pt"
    torch.save(RRLSRN(2, 2, features=4, body_layers=1).state_dict(), path)
    with pytest.raises(ValueError, match="x2_wide.pt: weights do not fit"):
        load_cascade_from_x2(RRLSRN(2, 4, features=8, body_layers=1), path)
    with pytest.raises(FileNotFoundError, match="missing.pt: no trained x2 RRLSRN weights"):
        load_cascade_from_x2(RRLSRN(2, 4, features=8, body_layers=1), tmp_path / "missing.pt")
