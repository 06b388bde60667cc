"""Named degradation protocols: grids and zoom undo each other; unknown names are rejected."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.protocols import PROTOCOLS, crop_to_multiple, get_protocol
from pipeline.transforms.grid import spacing_from_affine, zoomed_affine
from tests.conftest import blob_volume


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_protocol_zoom_restores_the_hr_grid(name: str) -> None:
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    hr = MetaTensor(torch.from_numpy(blob_volume((26, 30, 22)))[None], affine=torch.as_tensor(affine))
    protocol = get_protocol(name)
    lr = protocol.degrade(hr)
    cropped = crop_to_multiple(hr, protocol.zoom)
    expected = [round(s / z) for s, z in zip(cropped.shape[1:], protocol.zoom)]
    assert list(lr.shape[1:]) == expected
    np.testing.assert_allclose(spacing_from_affine(lr.affine), protocol.zoom, atol=1e-9)
    np.testing.assert_allclose(zoomed_affine(lr.affine, protocol.zoom), affine, atol=1e-9)
    assert lr.meta["degradation"]["factors"] == pytest.approx(list(protocol.zoom))
    assert 0 <= protocol.slice_axis <= 2 and np.isclose(protocol.zoom[protocol.slice_axis], 1.0)


def test_degradation_is_deterministic() -> None:
    hr = MetaTensor(torch.from_numpy(blob_volume())[None], affine=torch.eye(4))
    protocol = get_protocol("blur-x2")
    assert torch.equal(protocol.degrade(hr, seed=3).as_tensor(), protocol.degrade(hr, seed=3).as_tensor())


def test_unknown_protocol() -> None:
    with pytest.raises(ValueError, match="kspace-2x2"):
        get_protocol("nope")
