"""A wheel of the package ships the bundles and runs them from any folder, with no source checkout around."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import REPO_ROOT, blob_volume

BUILD_FILES = ("setup.py", "setup.cfg", "MANIFEST.in", "README.md")
BY_PRODUCTS = ("eval/per_scan.csv", "logs/metrics.csv", "models/checkpoint.pt")


def can_build_wheels() -> bool:
    """Whether setuptools can build a wheel here without downloading anything (bdist_wheel in setuptools or wheel)."""
    try:
        return any(importlib.util.find_spec(m) for m in ("setuptools.command.bdist_wheel", "wheel"))
    except ImportError:  # no setuptools at all
        return False


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
@pytest.mark.skipif(not can_build_wheels(), reason="no setuptools with bdist_wheel to build a wheel offline")
def test_wheel_ships_the_bundles_and_infers_from_another_folder(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy, so the build leaves the checkout as it was
    source.mkdir()
    for name in BUILD_FILES:
        shutil.copy2(REPO_ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "pipeline", source / "pipeline", ignore=ignore)
    shutil.copytree(REPO_ROOT / "bundles", source / "bundles", ignore=ignore)
    for by_product in BY_PRODUCTS:  # what training and evaluation leave in a bundle folder
        (source / "bundles" / "srcnn" / by_product).parent.mkdir(parents=True, exist_ok=True)
        (source / "bundles" / "srcnn" / by_product).write_text("by-product")

    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "-q"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)])
    (wheel,) = wheels.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(p.parent.parent.name for p in (REPO_ROOT / "bundles").glob("*/configs/inference.json"))
    for bundle in shipped:
        for file in ("configs/inference.json", "configs/metadata.json", "models/model.pt", "LICENSE", "docs/README.md"):
            assert f"pipeline/bundles/{bundle}/{file}" in names
    assert "pipeline/bundles/common/train_base.json" in names  # every bundle's train.json layers on it
    left_out = ("/eval/", "/logs/", "tensorboard", "checkpoint.pt", ".png")
    assert not [n for n in names if n.startswith("pipeline/bundles/") and any(part in n for part in left_out)]

    site = tmp_path / "site"
    run([*pip, "install", "--no-deps", "--no-compile", "--target", str(site), str(wheel)])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    nib.save(nib.Nifti1Image(blob_volume((12, 14, 6)), np.eye(4)), str(elsewhere / "lr.nii.gz"))
    env = {k: v for k, v in os.environ.items() if k != "MRISR_BUNDLE_DIR"}
    env.update(PYTHONPATH=str(site), MRISR_NUM_THREADS="1")
    infer = ["infer", "lr.nii.gz", "-o", "sr.nii.gz", "--method", "srcnn", "--zoom", "2", "2", "1", "--device", "cpu"]
    run([sys.executable, "-m", "pipeline", *infer], cwd=elsewhere, env=env)
    record = json.loads((elsewhere / "sr.json").read_text())
    assert record["bundle"]["path"] == str((site / "pipeline" / "bundles" / "srcnn").resolve())
    assert nib.load(str(elsewhere / "sr.nii.gz")).shape == (24, 28, 6)
    listing = run([sys.executable, "-m", "pipeline", "bundles"], cwd=elsewhere, env=env).stdout
    assert f"package: {(site / 'pipeline' / 'bundles').resolve()}" in listing
    assert "common" not in listing.split()  # the shared training base is not a bundle
