# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Relative sharpness: mean gradient magnitude in the mask, SR over HR."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from pipeline.evaluation.sharpness import mean_gradient_magnitude, relative_sharpness
from tests.conftest import blob_volume


@pytest.fixture
def hr() -> np.ndarray:
    return blob_volume((20, 22, 18))


def test_identical_is_one_and_scaling_scales(hr):
    mask = hr > 50
    assert relative_sharpness(hr, hr, mask) == pytest.approx(1.0)
    assert relative_sharpness(2 * hr, torch.from_numpy(hr)[None], mask) == pytest.approx(2.0)


def test_blurred_is_less_sharp(hr):
    mask = np.ones(hr.shape, dtype=bool)
    assert relative_sharpness(gaussian_filter(hr, 1.5), hr, mask) < 0.8


def test_linear_ramp_has_known_gradient():
    ramp = np.broadcast_to(3.0 * np.arange(12, dtype=np.float32)[:, None, None], (12, 5, 6))
    assert mean_gradient_magnitude(ramp, np.ones(ramp.shape, dtype=bool)) == pytest.approx(3.0)


def test_ill_arg(hr):
    with pytest.raises(ValueError, match="mask shape"):
        relative_sharpness(hr, hr, np.ones((3, 3, 3), dtype=bool))
    with pytest.raises(ValueError, match="empty"):
        mean_gradient_magnitude(hr, np.zeros(hr.shape, dtype=bool))
    with pytest.raises(ValueError, match="volume"):
        mean_gradient_magnitude(hr[0], np.ones(hr.shape[1:], dtype=bool))
