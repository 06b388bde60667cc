"""Shared fixtures: small synthetic volumes and the optional real data in ../shared/data."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

torch.set_num_threads(1)  # pytest-xdist runs one worker per core; more threads only contend
os.environ["MRISR_NUM_THREADS"] = "1"  # the same for the fast inference path (pipeline.acceleration)
os.environ["MRISR_CACHE_DIR"] = tempfile.mkdtemp(prefix="mrisr-test-cache-")  # measured precision choices

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT.parent / "shared" / "data").resolve()
needs_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "malf" / "manifest.csv").exists(), reason=f"{SHARED_DATA} (development data) is absent"
)


def blob_volume(shape: tuple[int, int, int] = (24, 28, 20), seed: int = 0) -> np.ndarray:
    """A smooth positive 3D volume with an ellipsoidal 'brain' and a brighter off-centre blob."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    r2 = (grid**2).sum(0)
    vol = 100.0 * (r2 < 0.7) + 60.0 * np.exp(-((grid[0] - 0.3) ** 2 + (grid[1] + 0.2) ** 2 + grid[2] ** 2) / 0.02)
    return (vol + rng.normal(0, 1.0, shape).clip(-2, 2) + 5.0).astype(np.float32)


@pytest.fixture
def ras_affine() -> np.ndarray:
    return np.diag([1.2, 0.9, 3.0, 1.0]) + np.array([[0, 0, 0, -10.0], [0, 0, 0, 5.0], [0, 0, 0, 2.0], [0, 0, 0, 0]])


@pytest.fixture
def volume(ras_affine: np.ndarray) -> MetaTensor:
    return MetaTensor(torch.from_numpy(blob_volume())[None], affine=torch.as_tensor(ras_affine))


@pytest.fixture
def nifti_file(tmp_path: Path, ras_affine: np.ndarray) -> Path:
    path = tmp_path / "vol.nii.gz"
    img = nib.Nifti1Image(blob_volume(), ras_affine)
    img.set_qform(ras_affine, code=1)
    img.set_sform(ras_affine, code=2)
    nib.save(img, str(path))
    return path
