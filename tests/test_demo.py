"""The README's first command, ``make demo`` (``mrisr demo``), end to end on a thin slab of the MNI152 template."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.demo import MIN_SLAB_SLICES, bundles_by_protocol

pytest.importorskip("nilearn")


def test_demo_runs_every_bundle_on_a_thin_slab(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--output-dir", str(out), "--slab", str(MIN_SLAB_SLICES)]) == 0
    summary = (out / "README.md").read_text()
    for protocol, bundles in bundles_by_protocol().items():
        for bundle in bundles:
            assert f"| {protocol} " in summary and f"| {bundle} " in summary
    for figure in ("preprocessing/preprocessing.png", "lr/lr_synthesis.png"):
        assert (out / figure).stat().st_size > 0
    assert not (out / "sr" / "bicubic-x2" / "failures.csv").exists()


def test_demo_refuses_a_slab_too_thin_for_its_metrics(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--output-dir", str(tmp_path / "d"), "--slab", "8"]) == 1
    assert f"at least {MIN_SLAB_SLICES}" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
