"""mrisr synth-contrast: derived scans in other contrasts and a manifest mrisr evaluate can read."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from pipeline.cli.main import main
from pipeline.manifests import read_manifest
from tests.conftest import blob_volume
from tests.utils import write_manifest


def cohort(tmp_path: Path) -> Path:
    rows = []
    for i in range(2):
        hr = blob_volume((16, 18, 12), seed=i)
        labels = np.where(hr > 120, 44, np.where(hr > 50, 100, 0)).astype(np.int16)
        labels[7:9, 8:10, 5:7] = 51
        rows.append(
            {
                "subject_id": f"s{i}",
                "scan_id": f"s{i}",
                "split": "test",
                "hr": (f"hr{i}.nii.gz", hr),
                "mask": (f"mask{i}.nii.gz", (labels > 0).astype(np.uint8)),
                "labels": (f"labels{i}.nii.gz", labels),
            }
        )
    return write_manifest(tmp_path / "m.csv", rows)


def test_label_and_inverted_contrasts_with_their_manifest(tmp_path: Path) -> None:
    manifest = cohort(tmp_path)
    for contrast in ("t2", "inverted"):
        out = tmp_path / contrast
        assert (
            main(
                [
                    "synth-contrast",
                    "--manifest",
                    str(manifest),
                    "--contrast",
                    contrast,
                    "--output-dir",
                    str(out),
                    "--no-progress",
                ]
            )
            == 0
        )
        derived = read_manifest(out / "manifest.csv")
        assert list(derived["scan_id"]) == ["s0", "s1"]
        image = np.asarray(nib.load(derived["hr"][0]).dataobj)
        mask = np.asarray(nib.load(derived["mask"][0]).dataobj) > 0
        assert image.shape == (16, 18, 12) and image[mask].max() > 0
        outside = image[~mask].max()
        assert (
            outside == 0 if contrast == "inverted" else outside < 0.6 * image.max()
        )  # label contrasts: partial volume
    again = tmp_path / "again"
    main(
        ["synth-contrast", "--manifest", str(manifest), "--contrast", "t2", "--output-dir", str(again), "--no-progress"]
    )
    np.testing.assert_array_equal(
        nib.load(str(again / "s0_t2.nii.gz")).get_fdata(), nib.load(str(tmp_path / "t2" / "s0_t2.nii.gz")).get_fdata()
    )


def test_a_label_contrast_without_labels_fails_per_row(tmp_path: Path, capsys) -> None:
    manifest = cohort(tmp_path)
    table = pd.read_csv(manifest).drop(columns=["labels"])
    table.to_csv(manifest, index=False)
    assert (
        main(["synth-contrast", "--manifest", str(manifest), "--contrast", "t2", "--output-dir", str(tmp_path / "o")])
        == 1
    )
    assert "labels" in capsys.readouterr().err


def test_bias_derivation_multiplies_the_scan_by_a_smooth_field(tmp_path: Path) -> None:
    manifest = cohort(tmp_path)
    out = tmp_path / "bias"
    assert main(["synth-contrast", "--manifest", str(manifest), "--contrast", "bias", "--output-dir", str(out)]) == 0
    derived = read_manifest(out / "manifest.csv")
    image = np.asarray(nib.load(derived["hr"][0]).dataobj, dtype=np.float64)
    source = np.asarray(nib.load(str(tmp_path / "hr0.nii.gz")).dataobj, dtype=np.float64)
    inside = source > 50
    ratio = image[inside] / source[inside]
    assert ratio.std() > 0.01 and 0.2 < ratio.min() <= ratio.max() < 5  # a field, not a constant
    assert np.all(image[source == 0] == 0)  # a multiplicative field keeps the background at 0
    assert "bias contrast derived from scan s0" in derived["note"][0]
