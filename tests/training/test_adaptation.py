"""Scan-specific adaptation: fine-tunes a copy, never the shipped weights; records what it did."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.inference import load_bundle_method, super_resolve_file
from pipeline.inference.methods import BUNDLES_DIR
from pipeline.protocols import get_protocol
from pipeline.training.adaptation import AdaptationBudget, AdaptedSR, adaptation_pairs, load_adaptable_method
from tests.conftest import head_volume, untrained_thick_slice_bundle

TINY = AdaptationBudget(max_steps=3, max_seconds=60, batch_size=2, patch_size=8)


def thick_input(spacing: float = 4.0) -> MetaTensor:
    hr = MetaTensor(
        torch.from_numpy(head_volume((24, 26, 24), contrast="flair"))[None], affine=torch.eye(4, dtype=torch.float64)
    )
    return get_protocol(f"thick-{spacing:g}mm").degrade(hr)


def state_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_through_plane_adaptation_tunes_a_copy(tmp_path: Path) -> None:
    method = load_bundle_method(untrained_thick_slice_bundle(tmp_path / "bundle"), device="cpu", precision="fp32")
    before = state_of(method.network)
    adapted = AdaptedSR(method, TINY)
    lr = thick_input()
    sr = adapted(lr, [1.0, 1.0, 4.0])
    assert sr.shape == (1, 24, 26, 24) and adapted.name == "thick_slice+adapt"
    record = adapted.last_adaptation
    assert record["steps"] == 3 and record["thickness_mm"] == 4.0 and record["profile"] == "gaussian"
    assert np.isfinite(record["loss_start"]) and np.isfinite(record["loss_end"])
    for key, value in state_of(method.network).items():
        torch.testing.assert_close(value, before[key])  # the loaded weights are untouched
    tuned = state_of(adapted.last_adapted.network)
    assert any(not torch.equal(tuned[k], before[k]) for k in before)  # the copy was trained


def test_pairs_degrade_the_in_plane_axes_with_the_inputs_slice_profile(tmp_path: Path) -> None:
    method = load_bundle_method(untrained_thick_slice_bundle(tmp_path / "bundle"), device="cpu", precision="fp32")
    lr = thick_input(5.0)  # 5 mm slices, 1 mm in-plane
    pairs, zoom, slice_axis, description = adaptation_pairs(
        method, lr, [1.0, 1.0, 5.0], degradation=lr.meta["degradation"]
    )
    assert (zoom, slice_axis) == ((1, 1, 1), 0) and len(pairs) == 2  # each in-plane axis degraded in turn
    assert description["step_voxels"] == 5.0 and description["thickness_voxels"] == 5.0
    for pair in pairs:
        assert pair["lr"].shape == pair["hr"].shape and pair["lr"].shape[1] == lr.shape[-1]  # across the slices
        assert pair["lr"].diff(dim=-1).abs().mean() < pair["hr"].diff(dim=-1).abs().mean()


def test_in_plane_bundle_adapts_with_its_own_protocol_and_leaves_its_file_alone(tmp_path: Path) -> None:
    weights = BUNDLES_DIR / "srcnn" / "models" / "model.pt"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    method = load_adaptable_method("srcnn+adapt", device="cpu", precision="fp32")
    method.budget = TINY
    hr = MetaTensor(
        torch.from_numpy(head_volume((24, 28, 6), contrast="flair"))[None], affine=torch.eye(4, dtype=torch.float64)
    )
    lr = get_protocol("bicubic-x2").degrade(hr)
    sr = method(lr, [2.0, 2.0, 1.0])
    assert sr.shape == (1, 24, 28, 6)
    assert "bicubic-x2" in method.last_adaptation["pairs"] and method.last_adaptation["steps"] == 3
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == digest


def test_slice_overrides_are_for_through_plane_bundles_only() -> None:
    method = AdaptedSR(
        load_bundle_method(BUNDLES_DIR / "srcnn", device="cpu", precision="fp32"), TINY, {"thickness_mm": 3.0}
    )
    lr = MetaTensor(torch.rand(1, 8, 8, 4) * 100, affine=torch.eye(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="through-plane bundles only"):
        method(lr, [2.0, 2.0, 1.0])


def test_sidecar_records_the_adaptation(tmp_path: Path) -> None:
    import nibabel as nib

    method = AdaptedSR(
        load_bundle_method(untrained_thick_slice_bundle(tmp_path / "bundle"), device="cpu", precision="fp32"), TINY
    )
    lr = thick_input()
    path = tmp_path / "lr.nii.gz"
    nib.save(nib.Nifti1Image(lr[0].numpy(), lr.affine.numpy()), str(path))
    record = super_resolve_file(method, path, tmp_path / "sr.nii.gz")
    assert record["zoom"] == [1.0, 1.0, 4.0]  # from the header: isotropic
    saved = json.loads((tmp_path / "sr.json").read_text())
    assert saved["adaptation"]["steps"] == 3 and saved["method"] == "thick_slice+adapt"


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        AdaptationBudget(max_steps=0)
