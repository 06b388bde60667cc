"""Manifest reading: schema checks, path resolution, splits, scan ids."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.manifests import ManifestError, read_manifest
from tests.conftest import REPO_ROOT, needs_shared_data


def _manifest(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.csv"
    path.write_text(text)
    return path


def test_relative_paths_resolve_against_manifest_or_data_root(tmp_path: Path) -> None:
    path = _manifest(
        tmp_path, "subject_id,session,split,hr,mask\ns1,a,train,x/s1.nii.gz,\ns1,b,val,/abs/s1b.nii.gz,m.nii.gz\n"
    )
    table = read_manifest(path)
    assert table.loc[0, "hr"] == str(tmp_path / "x" / "s1.nii.gz")
    assert table.loc[1, "hr"] == "/abs/s1b.nii.gz"
    assert pd.isna(table.loc[0, "mask"])
    assert list(table["scan_id"]) == ["s1_a", "s1_b"]
    rooted = read_manifest(path, data_root="/data", split="val")
    assert len(rooted) == 1 and rooted.loc[0, "mask"] == "/data/m.nii.gz"


@pytest.mark.parametrize(
    "text, message",
    [
        ("subject,hr\nx,a.nii.gz\n", "subject_id"),
        ("subject_id,mask\nx,a.nii.gz\n", "'hr' or an 'lr'"),
        ("subject_id,hr,split\nx,a.nii.gz,training\n", "unknown split"),
        ("subject_id,hr\nx,a.nii.gz\nx,b.nii.gz\n", "duplicate scan ids"),
        ("subject_id,hr,mask\nx,a.nii.gz,\n", "column 'mask' is empty in row"),
    ],
)
def test_schema_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message) as err:
        read_manifest(_manifest(tmp_path, text), require=("mask",) if "mask" in text.split("\n")[0] else ())
    assert "m.csv" in str(err.value)


def test_missing_manifest() -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        read_manifest("/nowhere.csv")


@needs_shared_data
def test_malf_dev_manifest_resolves_and_keeps_subjects_on_one_side() -> None:
    table = read_manifest(REPO_ROOT / "data_manifests" / "malf_dev.csv", require=("hr", "mask"))
    assert len(table) == 21 and all(Path(p).is_file() for p in table["hr"])
    sides = table.groupby("subject_id")["split"].nunique()
    assert (sides == 1).all()
    counts = table["split"].value_counts().to_dict()
    assert counts == {"train": 15, "val": 2, "test": 4}  # val chooses checkpoints, test only reports


def test_missing_files_are_named_with_their_line_when_read(tmp_path):
    """The rows whose files do not exist are named at once; the cohort still goes on past them."""
    from pipeline.manifests import read_manifest

    (tmp_path / "a.nii.gz").write_bytes(b"")
    (tmp_path / "m.csv").write_text("subject_id,hr\ns1,a.nii.gz\ns2,gone.nii.gz\n")
    with pytest.warns(UserWarning, match=r"1 file\(s\) do not exist: line 3 hr .*gone\.nii\.gz"):
        table = read_manifest(tmp_path / "m.csv")
    assert len(table) == 2
