"""Fixtures of the training tests: a tiny synthetic cohort (NIfTI volumes, masks, manifest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import blob_volume
from tests.utils import write_manifest

SHAPE = (24, 28, 12)


@pytest.fixture
def synthetic_manifest(tmp_path: Path) -> Path:
    """A manifest of 3 training, 1 validation and 1 test scan, (24, 28, 12) voxels of 1 mm, with brain masks."""
    rows = []
    for i, split in enumerate(["train", "train", "train", "val", "test"]):
        volume = blob_volume(SHAPE, seed=i)
        mask = (volume > 50).astype(np.uint8)
        rows.append(
            {
                "subject_id": f"sub{i}",
                "split": split,
                "hr": (f"data/hr{i}.nii.gz", volume),
                "mask": (f"data/mask{i}.nii.gz", mask),
            }
        )
    return write_manifest(tmp_path / "manifest.csv", rows)
