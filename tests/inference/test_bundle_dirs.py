"""Bundle names resolve through --bundle-dir, $MRISR_BUNDLE_DIR, the package's bundles, the checkout's;
``mrisr bundles``."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import pipeline.inference.bundle_dirs as bundle_dirs
from pipeline.cli.main import main
from pipeline.inference import available_bundles, find_bundle, load_method
from pipeline.inference.bundle_catalog import file_sha256
from pipeline.training.adaptation import resolve_bundle_name
from tests.conftest import REPO_ROOT, blob_volume
from tests.utils import write_manifest, write_nifti

SRCNN = REPO_ROOT / "bundles" / "srcnn"


def linked_bundle(folder: Path, name: str = "srcnn") -> Path:
    """``folder/<name>``: the srcnn bundle's configs and models, linked."""
    root = folder / name
    root.mkdir(parents=True)
    (root / "configs").symlink_to(SRCNN / "configs")
    (root / "models").symlink_to(SRCNN / "models")
    return folder


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env, package = (linked_bundle(tmp_path / d) for d in ("explicit", "env", "package"))
    monkeypatch.setattr(bundle_dirs, "PACKAGE_BUNDLES_DIR", package)
    monkeypatch.setenv("MRISR_BUNDLE_DIR", str(env))
    assert find_bundle("srcnn", explicit) == (explicit / "srcnn", bundle_dirs.BundleDir(explicit, "--bundle-dir"))
    assert find_bundle("srcnn")[0] == env / "srcnn"
    monkeypatch.delenv("MRISR_BUNDLE_DIR")
    assert find_bundle("srcnn")[1].origin == "package"
    monkeypatch.setattr(bundle_dirs, "PACKAGE_BUNDLES_DIR", tmp_path / "absent")
    assert find_bundle("srcnn") == (SRCNN, bundle_dirs.BundleDir(REPO_ROOT / "bundles", "checkout"))
    assert find_bundle("../srcnn") is None and find_bundle("no_such") is None
    assert "srcnn" in available_bundles()


def test_unknown_method_names_the_folders_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MRISR_BUNDLE_DIR", str(tmp_path))
    with pytest.raises(ValueError, match=f"nor a bundle in {tmp_path}, .*bundles"):
        load_method("no_such_method")
    with pytest.raises(NotADirectoryError, match="absent: --bundle-dir is not a folder"):
        load_method("srcnn", bundles_dir=tmp_path / "absent")


def test_infer_with_bundle_dir(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bundles = linked_bundle(tmp_path / "mine", name="my_srcnn")
    lr = write_nifti(tmp_path / "lr.nii.gz", blob_volume((12, 14, 6)))
    args = ["infer", str(lr), "-o", str(tmp_path / "sr.nii.gz"), "--method", "my_srcnn", "--zoom", "2", "2", "1"]
    assert main(args) == 1
    assert "unknown method 'my_srcnn'" in capsys.readouterr().err
    assert main([*args, "--bundle-dir", str(bundles), "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "sr.json").read_text())
    assert record["bundle"]["path"] == str((bundles / "my_srcnn").resolve())
    assert nib.load(str(tmp_path / "sr.nii.gz")).shape == (24, 28, 6)


def test_bundles_lists_name_version_protocol_score_checksum_and_origin(tmp_path: Path, capsys) -> None:
    assert main(["bundles"]) == 0
    out = capsys.readouterr().out
    meta = json.loads((SRCNN / "configs" / "metadata.json").read_text())
    sha = file_sha256(SRCNN / "models" / "model.pt")
    (line,) = [row for row in out.splitlines() if row.startswith("srcnn ")]
    gain = f"{meta['eval_metrics']['psnr_gain_db']:+.2f}"
    assert line.split()[:5] == ["srcnn", meta["version"], "bicubic-x2", gain, sha[:12]]
    assert line.split()[5:] == ["checkout:", str(REPO_ROOT / "bundles")]
    assert main(["bundles", "--json", "--bundle-dir", str(linked_bundle(tmp_path / "mine"))]) == 0
    (srcnn,) = [entry for entry in json.loads(capsys.readouterr().out) if entry["name"] == "srcnn"]
    assert srcnn["origin"] == "--bundle-dir" and srcnn["model_sha256"] == sha and srcnn["checksum_matches"] is True


def test_evaluate_with_bundle_dir(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bundles = linked_bundle(tmp_path / "mine", name="my_srcnn")
    assert resolve_bundle_name("my_srcnn+adapt", bundles) == f"{bundles / 'my_srcnn'}+adapt"
    assert [resolve_bundle_name(m, bundles) for m in ("cubic", "no_such")] == ["cubic", "no_such"]
    volume = blob_volume((24, 28, 12))
    hr = write_nifti(tmp_path / "hr.nii.gz", volume)
    mask = write_nifti(tmp_path / "mask.nii.gz", (volume > 50).astype(np.uint8))
    row = {"subject_id": "s", "scan_id": "s", "split": "test", "hr": str(hr), "mask": str(mask)}
    write_manifest(tmp_path / "m.csv", [row])
    args = ["evaluate", "--manifest", str(tmp_path / "m.csv"), "--protocol", "bicubic-x2", "--methods", "my_srcnn"]
    args += ["--output-dir", str(tmp_path / "eval"), "--device", "cpu", "--no-progress"]
    assert main([*args, "--bundle-dir", str(tmp_path / "absent")]) == 1
    assert "absent: --bundle-dir is not a folder" in capsys.readouterr().err
    assert main([*args, "--bundle-dir", str(bundles)]) == 0
    assert set(pd.read_csv(tmp_path / "eval" / "per_scan_metrics.csv")["method"]) == {"cubic", "srcnn"}
