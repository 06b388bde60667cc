"""The intensity mapping between a volume and what a network sees (scale, and a shift for non-magnitude volumes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.inference import network_intensity_mapping, robust_intensity_scale, robust_intensity_shift
from tests.conftest import blob_volume


def test_magnitude_volume_is_only_scaled() -> None:
    volume = blob_volume()
    assert network_intensity_mapping(volume) == (0.0, robust_intensity_scale(volume))


def test_ringing_of_a_magnitude_volume_is_not_an_offset() -> None:
    """Bicubic LR undershoots below 0 by a few % of the range: still a magnitude volume."""
    volume = blob_volume()
    volume[:, :, :3] = -0.03 * volume.max()
    assert robust_intensity_shift(volume) == 0.0


@pytest.mark.parametrize("offset", [-400.0, -1000.0])
def test_offset_volume_is_shifted_back_to_its_floor(offset: float) -> None:
    volume = np.where(blob_volume() > 50, blob_volume(), 0.0).astype(np.float32)  # exact zero background
    shift, scale = network_intensity_mapping(torch.from_numpy(volume + offset))
    assert shift == offset
    assert scale == pytest.approx(robust_intensity_scale(volume), rel=1e-5)


def test_z_scored_volume_maps_to_the_positive_volume() -> None:
    volume = np.where(blob_volume() > 50, blob_volume(), 0.0).astype(np.float32)
    z = (volume - volume.mean()) / volume.std()
    shift, scale = network_intensity_mapping(z)
    np.testing.assert_allclose((z - shift) / scale, volume / robust_intensity_scale(volume), atol=1e-5)


def test_all_negative_volume_gets_a_positive_scale() -> None:
    volume = -300.0 + 165.0 * blob_volume() / blob_volume().max()
    shift, scale = network_intensity_mapping(volume)
    assert shift < -290 and 100 < scale < 170
