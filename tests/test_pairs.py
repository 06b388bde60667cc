"""The one HR -> (LR, HR, mask) builder: evaluation and training make the same triple of a scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.pairs import brain_mask, degraded_pair
from pipeline.protocols import get_protocol
from pipeline.training.datasets import scan_records
from pipeline.training.volumes import LoadVolumed, SynthesizeLRd
from tests.utils import write_manifest


def _head(shape=(33, 30, 21)) -> tuple[MetaTensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    inside = (grid**2).sum(0) < 0.6
    image = np.where(inside, 100 + 20 * rng.standard_normal(shape), 0).astype(np.float32)
    affine = np.diag([1.0, 1.0, 1.2, 1.0])
    return MetaTensor(torch.from_numpy(image)[None], affine=torch.from_numpy(affine)), torch.from_numpy(inside)[None]


@pytest.mark.parametrize("protocol", ["bicubic-x2", "kspace-2x2", "thick-4mm"])
def test_pair_crops_to_whole_lr_voxels_and_keeps_the_affine(protocol: str) -> None:
    hr, mask = _head()
    pair = degraded_pair(get_protocol(protocol), hr, mask)
    assert pair.hr.shape == pair.mask.shape
    assert tuple(n / z for n, z in zip(pair.hr.shape[1:], pair.zoom)) == tuple(pair.lr.shape[1:])
    assert np.allclose(pair.hr.affine, hr.affine) and pair.mask.dtype == torch.bool


def test_training_triple_is_the_evaluation_triple() -> None:
    hr, mask = _head()
    protocol = get_protocol("bicubic-x2")
    pair = degraded_pair(protocol, hr, mask, seed=3)
    out = SynthesizeLRd(protocol, "network", scale_reference="hr", seed=3)({"hr": hr, "mask": mask.float()})
    divisor = out["intensity_divisor"]
    assert torch.allclose(out["hr"] * divisor, pair.hr, atol=1e-4)
    assert torch.allclose(out["lr"] * divisor, pair.lr, atol=1e-3)
    assert torch.equal(out["mask"], pair.mask)


def test_brain_crop_crops_the_extras_alike() -> None:
    hr, mask = _head()
    labels = (mask * 7).to(torch.int32)
    pair = degraded_pair(get_protocol("bicubic-x2"), hr, mask, crop_to_mask=True, extras={"labels": labels})
    assert pair.extras["labels"].shape == pair.hr.shape
    assert torch.equal(pair.extras["labels"] > 0, pair.mask)


def test_empty_mask_is_refused() -> None:
    hr, mask = _head()
    with pytest.raises(ValueError, match="brain mask is empty"):
        degraded_pair(get_protocol("bicubic-x2"), hr, torch.zeros_like(mask))


def test_a_missing_mask_is_computed_alike_in_evaluation_and_training(tmp_path: Path) -> None:
    hr, _ = _head()
    with pytest.warns(UserWarning, match="no mask in the manifest"):
        computed, source = brain_mask(hr, None, "scan-1")
    assert source == "BrainMask" and computed.any()
    manifest = write_manifest(
        tmp_path / "m.csv", [{"subject_id": "s1", "split": "train", "hr": ("hr.nii.gz", hr[0].numpy()), "mask": ""}]
    )
    records = scan_records(manifest, "train")
    with pytest.warns(UserWarning, match="no mask in the manifest"):
        loaded = LoadVolumed(["hr", "mask"])(records[0])
    assert loaded["mask"].shape == loaded["hr"].shape and loaded["mask"].any()
