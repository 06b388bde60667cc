"""Fixtures of the training tests: a tiny synthetic cohort (NIfTI volumes, masks, manifest)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import blob_volume

SHAPE = (24, 28, 12)


@pytest.fixture
def synthetic_manifest(tmp_path: Path) -> Path:
    """A manifest of 3 training, 1 validation and 1 test scan, (24, 28, 12) voxels of 1 mm, with brain masks."""
    data = tmp_path / "data"
    data.mkdir()
    rows = ["subject_id,split,hr,mask"]
    for i, split in enumerate(["train", "train", "train", "val", "test"]):
        volume = blob_volume(SHAPE, seed=i)
        mask = (volume > 50).astype(np.uint8)
        nib.save(nib.Nifti1Image(volume, np.eye(4)), str(data / f"hr{i}.nii.gz"))
        nib.save(nib.Nifti1Image(mask, np.eye(4)), str(data / f"mask{i}.nii.gz"))
        rows.append(f"sub{i},{split},data/hr{i}.nii.gz,data/mask{i}.nii.gz")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest
