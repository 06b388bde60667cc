# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Every shipped bundle's weights are the trained ones: checksum as recorded, and a clear gain over cubic
B-spline on real anatomy it never saw (a slab of nilearn's MNI152 template), so that random, zeroed or
swapped weights fail the suite.

The slab runs across the protocol's undegraded axis (whole brain box in the degraded axes: cutting through
the brain along a degraded axis makes truncation ringing that no network was trained for). On 2026-12-03
the bundles gained +2.6 to +4.8 dB here (bf16, 2-core AMD EPYC); :data:`MIN_GAIN_DB` leaves a wide margin,
and a bundle with freshly initialised weights fails it (see the issue 27 note).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.evaluation.metrics import data_range, psnr
from pipeline.inference import load_method, make_baseline
from pipeline.inference.bundle_catalog import file_sha256
from pipeline.inference.bundle_dirs import found_bundles
from pipeline.protocols import get_protocol

MIN_GAIN_DB = 1.5
SLAB_SLICES = {"mdcsrn": 8, "mdcsrn_gan": 8, "thick_slice": 8}  # 3D or through-plane: a thicker slab
BUNDLES = sorted(found_bundles())


def _protocol_of(bundle: str) -> str:
    path = found_bundles()[bundle][0] / "configs" / "metadata.json"
    return json.loads(path.read_text())["degradation_protocol"]


@pytest.fixture(scope="module")
def mni152() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """nilearn's MNI152 2009 T1 template (1 mm), its brain mask and affine, cropped to the brain box + 4 voxels."""
    datasets = pytest.importorskip("nilearn.datasets")
    image, mask = datasets.load_mni152_template(resolution=1), datasets.load_mni152_brain_mask(resolution=1)
    inside = np.asarray(mask.dataobj) > 0.5
    box = tuple(slice(max(int(i.min()) - 4, 0), int(i.max()) + 5) for i in np.nonzero(inside))
    return np.asarray(image.dataobj, dtype=np.float32)[box], inside[box], image.affine


def test_every_bundle_records_its_weights_checksum():
    assert BUNDLES, "no bundle found"
    for name in BUNDLES:
        folder = found_bundles()[name][0]
        recorded = json.loads((folder / "configs" / "metadata.json").read_text()).get("model_sha256")
        assert recorded == file_sha256(folder / "models" / "model.pt"), f"{name}: model.pt is not the recorded one"


@pytest.mark.slow
@pytest.mark.parametrize("bundle", BUNDLES)
def test_shipped_weights_beat_cubic_on_unseen_anatomy(bundle: str, mni152):
    volume, mask, affine = mni152
    protocol = get_protocol(_protocol_of(bundle))
    zoom = [int(z) for z in protocol.zoom]
    axis = zoom.index(1)  # the slab's thin axis is one the protocol leaves alone
    slices = SLAB_SLICES.get(bundle, 4)
    centre = volume.shape[axis] // 2
    index = [slice(0, s // z * z) for s, z in zip(volume.shape, zoom)]
    index[axis] = slice(centre - slices // 2, centre - slices // 2 + slices)
    hr_array, inside = np.ascontiguousarray(volume[tuple(index)]), mask[tuple(index)]
    hr = MetaTensor(torch.from_numpy(hr_array)[None], affine=torch.as_tensor(affine, dtype=torch.float64))
    lr = protocol.degrade(hr)
    value_range = data_range(hr_array, inside)
    cubic = make_baseline("cubic")(lr, zoom)
    sr = load_method(bundle, device="cpu")(lr, zoom)
    cubic_psnr = psnr(cubic[0].numpy(), hr_array, inside, value_range)
    gain = psnr(sr[0].float().numpy(), hr_array, inside, value_range) - cubic_psnr
    assert gain > MIN_GAIN_DB, f"{bundle}: {gain:+.2f} dB over cubic on an MNI152 slab ({protocol.name})"
