"""The trust check: data consistency separates right from wrong forward models; uncertainty and figure are written."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from monai.data import MetaTensor

import pipeline.qc.check as qc_check
from pipeline.cli.main import main
from pipeline.inference import load_bundle_method, make_baseline, super_resolve_file
from pipeline.inference.methods import BUNDLES_DIR
from pipeline.protocols import get_protocol
from pipeline.qc import augmentations, data_consistency, forward_model, qc_measures, tta_members, uncertainty_map
from tests.conftest import head_volume, untrained_thick_slice_bundle
from tests.utils import write_manifest, write_nifti


def hr_volume(shape=(24, 26, 24)) -> MetaTensor:
    return MetaTensor(torch.from_numpy(head_volume(shape))[None], affine=torch.eye(4, dtype=torch.float64))


def test_the_true_volume_is_consistent_and_a_wrong_one_is_not() -> None:
    hr = hr_volume()
    protocol = get_protocol("thick-4mm")
    lr = protocol.degrade(hr)
    forward = protocol.make_transform()
    mask = np.ones(lr.shape[1:], bool)
    assert data_consistency(hr, lr, forward, mask) < 1e-5
    blurred = make_baseline("linear")(get_protocol("thick-6mm").degrade(hr), [1.0, 1.0, 6.0])
    assert data_consistency(blurred, lr, forward, mask) > 0.02


def test_forward_model_follows_the_method(tmp_path: Path) -> None:
    thick = load_bundle_method(untrained_thick_slice_bundle(tmp_path / "b"), device="cpu", precision="fp32")
    lr = get_protocol("thick-5mm-gap1mm-boxcar").degrade(hr_volume((20, 22, 36)))
    _, description = forward_model(thick, lr, [1.0, 1.0, 6.0])
    assert description == {"model": "thick_slice", "thickness_mm": 5.0, "gap_mm": 1.0, "profile": "boxcar", "axis": 2}
    srcnn = load_bundle_method(BUNDLES_DIR / "srcnn", device="cpu", precision="fp32")
    assert forward_model(srcnn, lr, [2.0, 2.0, 1.0])[1] == {"model": "protocol", "protocol": "bicubic-x2"}
    assert forward_model(srcnn, lr, [1.0, 2.0, 2.0]) is None  # not the zoom its protocol describes
    assert forward_model(make_baseline("cubic"), lr, [2.0, 2.0, 1.0]) is None


def test_augmentations_keep_the_zoom() -> None:
    assert [name for name, *_ in augmentations([2.0, 2.0, 1.0])] == ["flip0", "flip1", "transpose01"]
    assert [name for name, *_ in augmentations([1.0, 1.0, 4.0])] == ["flip2"]
    assert [name for name, *_ in augmentations([4.0, 1.0, 1.0], through_plane=True)] == ["flip0", "flip12", "flip012"]
    volume = torch.rand(1, 4, 4, 3)
    for _, forward, inverse in augmentations([2.0, 2.0, 1.0]) + augmentations([1.0, 1.0, 4.0], through_plane=True):
        torch.testing.assert_close(inverse(forward(volume)), volume)
    with pytest.raises(ValueError, match="exactly one zoomed axis"):
        augmentations([2.0, 2.0, 1.0], through_plane=True)


def test_uncertainty_map_pools_the_variance_locally() -> None:
    members = [torch.zeros(1, 9, 9, 9), torch.zeros(1, 9, 9, 9)]
    members[1][0, 4, 4, 4] = 2.0  # one disagreeing voxel: standard deviation 1 there
    plain = uncertainty_map(members, sigma=0)
    assert plain[0, 4, 4, 4] == pytest.approx(1.0) and plain.sum() == pytest.approx(1.0)
    pooled = uncertainty_map(members)
    assert pooled.shape == (1, 9, 9, 9) and 0 < pooled[0, 4, 4, 4] < 1.0 and pooled[0, 5, 4, 4] > 0
    assert (pooled**2).sum() == pytest.approx(1.0, rel=1e-3)  # pooling keeps the total variance


def test_through_plane_members_are_mapped_back(tmp_path: Path) -> None:
    method = load_bundle_method(untrained_thick_slice_bundle(tmp_path / "b"), device="cpu", precision="fp32")
    method.self_ensemble = False  # QC reruns the flips itself
    lr = get_protocol("thick-4mm").degrade(hr_volume((20, 22, 24)))
    sr = method(lr, [1.0, 1.0, 4.0])
    members, how = tta_members(method, lr, [1.0, 1.0, 4.0], sr)
    assert len(members) == 8 and how.startswith("2 orientations") and "flip012" in how
    # the network is translation-equivariant away from the borders, so every mapped-back member is
    # close to the unaugmented output; a member left flipped would not be
    inner = (slice(None), slice(3, -3), slice(3, -3), slice(6, -6))
    for member in members:
        assert torch.corrcoef(torch.stack([member[inner].flatten(), sr[inner].as_tensor().flatten()]))[0, 1] > 0.95


def test_in_plane_uncertainty_comes_from_test_time_augmentation() -> None:
    srcnn = load_bundle_method(BUNDLES_DIR / "srcnn", device="cpu", precision="fp32")
    lr = get_protocol("bicubic-x2").degrade(hr_volume((24, 24, 4)))
    sr = srcnn(lr, [2.0, 2.0, 1.0])
    members, how = tta_members(srcnn, lr, [2.0, 2.0, 1.0], sr)
    assert len(members) == 4 and "transpose01" in how
    measures = qc_measures(srcnn, lr, sr, [2.0, 2.0, 1.0])
    assert measures.uncertainty.shape == sr.shape and measures.record["uncertainty_mean"] >= 0
    assert 0 <= measures.record["data_consistency"] < 0.2


def test_qc_files_and_sidecar(tmp_path: Path) -> None:
    method = load_bundle_method(untrained_thick_slice_bundle(tmp_path / "b"), device="cpu", precision="fp32")
    lr = get_protocol("thick-4mm").degrade(hr_volume())
    source = write_nifti(tmp_path / "lr.nii.gz", lr[0].numpy(), lr.affine.numpy())
    record = super_resolve_file(method, source, tmp_path / "sr.nii.gz", qc=True)["qc"]
    assert (tmp_path / "sr_uncertainty.nii.gz").is_file() and (tmp_path / "sr_qc.png").is_file()
    assert nib.load(str(tmp_path / "sr_uncertainty.nii.gz")).shape == (24, 26, 24)
    assert record["forward_model"]["model"] == "thick_slice" and "BrainMask" in record["mask"]
    assert record["augmentation"].startswith("2 orientations") and "self-ensemble (8 members)" in record["augmentation"]
    assert 0 <= record["data_consistency"] < 0.2 and record["in_range"] == (not record["flags"])


def test_cohort_report_lists_scans_out_of_range(tmp_path: Path, monkeypatch, capsys) -> None:
    bundle = untrained_thick_slice_bundle(tmp_path / "b")
    rows = []
    for i in range(2):
        lr = get_protocol("thick-4mm").degrade(MetaTensor(torch.from_numpy(head_volume((20, 22, 24), seed=i))[None]))
        rows.append({"subject_id": f"s{i}", "lr": (f"lr{i}.nii.gz", lr[0].numpy())})
    write_manifest(tmp_path / "m.csv", rows, np.diag([1.0, 1.0, 4.0, 1.0]))
    monkeypatch.setattr(qc_check, "DATA_CONSISTENCY_LIMIT", 0.0)  # every output is out of range
    code = main(
        [
            "infer",
            "--manifest",
            str(tmp_path / "m.csv"),
            "--output-dir",
            str(tmp_path / "out"),
            "--method",
            str(bundle),
            "--no-progress",
        ]
    )
    assert code == 0
    report = pd.read_csv(tmp_path / "out" / "qc_report.csv")
    assert list(report["scan_id"]) == ["s0", "s1"] and not report["in_range"].any()
    assert "QC out of range: s0" in capsys.readouterr().out
    sidecar = json.loads((tmp_path / "out" / "s0_sr-thick_slice.json").read_text())
    assert sidecar["parameters"]["qc"] is True  # on by default for a manifest


def test_limits_from_a_validation_run_go_into_the_bundle_and_are_used(tmp_path: Path) -> None:
    from pipeline.qc import qc_limits
    from pipeline.qc.limits import write_qc_limits

    bundle = untrained_thick_slice_bundle(tmp_path / "b")
    run = tmp_path / "val"
    run.mkdir()
    rows = [
        {"scan_id": "v1", "method": "thick_slice", "data_consistency": 0.01, "uncertainty_relative": 0.002},
        {"scan_id": "v2", "method": "thick_slice", "data_consistency": 0.02, "uncertainty_relative": 0.001},
        {"scan_id": "v1", "method": "cubic", "data_consistency": None, "uncertainty_relative": None},
    ]
    pd.DataFrame(rows).to_csv(run / "per_scan_metrics.csv", index=False)
    limits = write_qc_limits(bundle, run)
    assert (
        limits["data_consistency"] == 0.03 and limits["uncertainty_relative"] == 0.003 and "v1, v2" in limits["source"]
    )
    method = load_bundle_method(bundle, device="cpu", precision="fp32")
    assert qc_limits(method) == {"data_consistency": 0.03, "uncertainty_relative": 0.003}
    assert qc_limits(make_baseline("cubic"))["data_consistency"] == qc_check.DATA_CONSISTENCY_LIMIT


def test_a_self_ensembled_output_brings_its_own_members(tmp_path: Path) -> None:
    method = load_bundle_method(untrained_thick_slice_bundle(tmp_path / "b"), device="cpu", precision="fp32")
    method.self_ensemble = True
    lr = get_protocol("thick-4mm").degrade(hr_volume((20, 22, 24)))
    sr = method(lr, [1.0, 1.0, 4.0])
    own = list(method.last_members)
    calls = []
    run_planes = method._run_planes
    method._run_planes = lambda *args: calls.append(args) or run_planes(*args)
    members, how = tta_members(method, lr, [1.0, 1.0, 4.0], sr)
    assert not calls and len(members) == 8 and "self-ensemble" in how and "flip012" in how
    assert all(torch.equal(a, b) for a, b in zip(members, own))
    torch.testing.assert_close(torch.stack(members).mean(0), sr.as_tensor())
