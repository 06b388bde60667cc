"""Shared fixtures: small synthetic volumes and the optional real data in ../shared/data."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from tests.utils import write_nifti

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
    return write_nifti(tmp_path / "vol.nii.gz", blob_volume(), ras_affine, qform_code=1, sform_code=2)


def untrained_thick_slice_bundle(root: Path) -> Path:
    """A copy of the thick_slice bundle's configs at ``root`` with freshly initialised weights (seed 0).

    Its network has a global residual, so before training it returns about its cubic-interpolated
    input: enough to test the plumbing (grids, units, files) without depending on the shipped weights.
    """
    import shutil

    from monai.bundle import ConfigParser

    shutil.copytree(REPO_ROOT / "bundles" / "thick_slice" / "configs", root / "configs")
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def")
    (root / "models").mkdir(parents=True)
    torch.save(network.state_dict(), root / "models" / "model.pt")
    return root


def head_volume(shape: tuple[int, int, int] = (32, 36, 28), contrast: str = "t1", seed: int = 0) -> np.ndarray:
    """A synthetic head: a brain (WM core, GM rim, CSF ventricles) inside a bright scalp/skull shell, with a neck.

    ``contrast`` "t1" (WM > GM > CSF, bright fat in the scalp) or "flair" (GM > WM, CSF dark, a bright
    lesion in the white matter). Values about 0-1000, with noise.
    """
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    r = np.sqrt(grid[0] ** 2 + (grid[1] / 0.95) ** 2 + ((grid[2] - 0.15) / 0.8) ** 2)
    means = {"t1": (850.0, 600.0, 200.0, 950.0), "flair": (550.0, 750.0, 60.0, 400.0)}[contrast]
    wm, gm, csf, scalp = means
    vol = np.zeros(shape, np.float32)
    vol[r < 0.98] = scalp
    vol[r < 0.88] = 80.0  # skull: dark
    vol[r < 0.8] = gm
    vol[r < 0.62] = wm
    vol[(np.abs(grid[0]) < 0.12) & (np.abs(grid[1]) < 0.3) & (np.abs(grid[2] - 0.2) < 0.25)] = csf
    neck = (np.sqrt(grid[0] ** 2 + (grid[1] + 0.1) ** 2) < 0.35) & (grid[2] < -0.55)
    vol[neck] = 500.0
    if contrast == "flair":
        vol[(grid[0] - 0.35) ** 2 + grid[1] ** 2 + (grid[2] - 0.2) ** 2 < 0.01] = 1000.0  # a lesion
    return (vol + rng.normal(0, 15.0, shape)).clip(0, None).astype(np.float32)
