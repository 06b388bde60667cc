"""``mrisr bids``: BIDS inputs found with pybids, BIDS-derivatives names and metadata, resume, failures, group table."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pipeline.bids import ENTITY_ORDER, derivative_relpath, desc_label, split_bids_name
from pipeline.cli.main import main
from tests.conftest import head_volume

bids = pytest.importorskip("bids")

INPUT_AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])  # 2 mm slices along axis 2
INPUTS = (
    "sub-01/anat/sub-01_T1w.nii.gz",
    "sub-02/ses-1/anat/sub-02_ses-1_acq-fast_run-1_T1w.nii.gz",
    "sub-02/ses-2/anat/sub-02_ses-2_FLAIR.nii.gz",
)
BAD_INPUT = "sub-02/ses-2/anat/sub-02_ses-2_T1w.nii.gz"
OUTPUTS = (
    "sub-01/anat/sub-01_res-hi_desc-linear_T1w.nii.gz",
    "sub-02/ses-1/anat/sub-02_ses-1_acq-fast_run-1_res-hi_desc-linear_T1w.nii.gz",
    "sub-02/ses-2/anat/sub-02_ses-2_res-hi_desc-linear_FLAIR.nii.gz",
)
LINEAR = ["--method", "linear", "--zoom", "1", "1", "2", "--no-progress"]


@pytest.fixture
def bids_dataset(tmp_path: Path) -> Path:
    """Two participants, sub-02 with two sessions; one unreadable T1w among three good scans."""
    root = tmp_path / "ds"
    root.mkdir()
    description = {"Name": "tiny", "BIDSVersion": "1.10.0", "DatasetType": "raw", "License": "CC0"}
    (root / "dataset_description.json").write_text(json.dumps(description))
    (root / "participants.tsv").write_text("participant_id\nsub-01\nsub-02\n")
    for k, relpath in enumerate(INPUTS):
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        contrast = "flair" if relpath.endswith("FLAIR.nii.gz") else "t1"
        nib.save(nib.Nifti1Image(head_volume((20, 24, 12), contrast, seed=k), INPUT_AFFINE), str(path))
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps({"RepetitionTime": 2.0}))
    (root / BAD_INPUT).write_bytes(b"not a NIfTI file")
    return root


def test_derivative_names_keep_the_entities_in_bids_order() -> None:
    name = "sub-01_ses-2_acq-fast_ce-gad_rec-norm_run-3_echo-1_T1w.nii"
    assert derivative_relpath(f"sub-01/ses-2/anat/{name}", "thick_slice") == Path(
        "sub-01/ses-2/anat/sub-01_ses-2_acq-fast_ce-gad_rec-norm_run-3_echo-1_res-hi_desc-thickslice_T1w.nii.gz"
    )
    assert derivative_relpath("sub-1/anat/sub-1_desc-old_T2w.nii.gz", "rrlsrn_x4").name == (
        "sub-1_res-hi_desc-rrlsrnx4_T2w.nii.gz"
    )
    assert split_bids_name("sub-01_run-1_FLAIR.nii.gz") == ([("sub", "01"), ("run", "1")], "FLAIR", ".nii.gz")
    for bad in ("sub-01_T1w.mha", "T1w.nii.gz", "sub-01_fast_T1w.nii.gz"):
        with pytest.raises(ValueError, match="not a"):
            split_bids_name(bad)
    with pytest.raises(ValueError, match="no letter or digit"):
        desc_label("__")


def test_entity_order_follows_the_bids_schema() -> None:
    schema = pytest.importorskip("bidsschematools.schema").load_schema()
    keys = [schema.objects.entities[entity]["name"] for entity in schema.rules.entities]
    assert [key for key in keys if key in ENTITY_ORDER] == list(ENTITY_ORDER)


def test_participant_then_group(bids_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = bids_dataset / "derivatives" / "mrisr"
    assert main(["bids", str(bids_dataset), str(out), "participant", *LINEAR]) == 1  # one bad scan
    # the bad scan is listed, the rest is done
    failures = pd.read_csv(out / "failures.csv")
    assert failures["scan_id"].tolist() == ["sub-02_ses-2_T1w"]
    assert failures["input"].tolist() == [str(bids_dataset / BAD_INPUT)]
    assert all((out / relpath).is_file() for relpath in OUTPUTS)

    # pybids indexes the derivatives with their entities, on their own and beside the raw dataset
    layout = bids.BIDSLayout(out, validate=False)
    found = layout.get(res="hi", extension=".nii.gz", suffix=["T1w", "FLAIR"])
    entities = sorted(
        (f.get_entities().get("subject"), f.get_entities().get("session"), f.get_entities()["suffix"]) for f in found
    )
    assert entities == [("01", None, "T1w"), ("02", "1", "T1w"), ("02", "2", "FLAIR")]
    assert {(f.get_entities()["desc"], f.get_entities()["res"]) for f in found} == {("linear", "hi")}
    raw_and_derivatives = bids.BIDSLayout(bids_dataset, derivatives=True)  # validates dataset_description.json
    assert len(raw_and_derivatives.get(scope="derivatives", desc="linear", extension=".nii.gz")) == 3
    assert len(raw_and_derivatives.get(scope="raw", suffix="T1w", extension=".nii.gz")) == 3

    # metadata: dataset_description.json and each sidecar's BIDS fields
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["BIDSVersion"]
    assert description["GeneratedBy"][0]["Name"] == "mrisr" and "linear" in description["GeneratedBy"][0]["Description"]
    sidecar = json.loads((out / OUTPUTS[1]).with_name(Path(OUTPUTS[1]).name.replace(".nii.gz", ".json")).read_text())
    assert sidecar["Sources"] == [f"bids:raw:{INPUTS[1]}"]
    assert (out / description["DatasetLinks"]["raw"] / INPUTS[1]).resolve() == (bids_dataset / INPUTS[1]).resolve()
    assert sidecar["SkullStripped"] is False and "hi" in sidecar["Resolution"]
    assert sidecar["method"] == "linear" and sidecar["status"] == "complete" and sidecar["zoom"] == [1, 1, 2]

    # the output's grid: twice the slices, 1 mm, same field of view
    image = nib.load(str(out / OUTPUTS[0]))
    assert image.shape == (20, 24, 24)
    np.testing.assert_allclose(image.header.get_zooms(), (1.0, 1.0, 1.0))

    # a rerun resumes: the good scans are skipped, the bad one is tried again
    written = {relpath: (out / relpath).stat().st_mtime_ns for relpath in OUTPUTS}
    capsys.readouterr()
    assert main(["bids", str(bids_dataset), str(out), "participant", *LINEAR]) == 1
    assert "0 done, 3 skipped (already done), 1 failed" in capsys.readouterr().out
    assert written == {relpath: (out / relpath).stat().st_mtime_ns for relpath in OUTPUTS}

    # group: one row per output, tissue volumes where a check was written
    tissue = {"contrast": "t1", "flags": ["GM volume +3.0 % vs cubic (limit ±2 %)"]}
    for t in ("csf", "gm", "wm"):
        tissue.update({f"{t}_ml": 1.0, f"cubic_{t}_ml": 1.0, f"{t}_difference_pct": 0.0})
    (out / OUTPUTS[0].replace(".nii.gz", "_tissue.json")).write_text(json.dumps(tissue))
    assert main(["bids", str(bids_dataset), str(out), "group"]) == 0
    assert "3 outputs of 2 participants" in capsys.readouterr().out
    table = pd.read_csv(out / "mrisr_group.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert table["participant"].tolist() == ["sub-01", "sub-02", "sub-02"]
    assert table["session"].tolist() == ["n/a", "ses-1", "ses-2"]
    assert table["suffix"].tolist() == ["T1w", "T1w", "FLAIR"]
    assert table["output"].tolist() == list(OUTPUTS)
    assert table["input"].tolist() == [f"bids:raw:{relpath}" for relpath in INPUTS]
    assert set(table["method"]) == {"linear"}
    assert table["gm_ml"].tolist() == ["1", "n/a", "n/a"] and table["tissue_flags"][0].startswith("GM volume")


def test_shards_merge_their_failures(bids_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "sr"
    statuses = [
        main(["bids", str(bids_dataset), str(out), "participant", *LINEAR, "--shard", f"{k}/2"]) for k in range(2)
    ]
    assert statuses == [0, 1]  # the bad scan is the fourth in path order: shard 1's
    assert pd.read_csv(out / "failures.csv")["scan_id"].tolist() == ["sub-02_ses-2_T1w"]
    assert all((out / relpath).is_file() for relpath in OUTPUTS)
    description = json.loads((out / "dataset_description.json").read_text())
    assert (out / description["DatasetLinks"]["raw"]).resolve() == bids_dataset.resolve()


def test_participant_and_session_filters(bids_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "sr"
    args = ["bids", str(bids_dataset), str(out), "participant", *LINEAR, "--participant-label", "sub-02"]
    assert main([*args, "--session", "1"]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.nii.gz")) == [OUTPUTS[1]]


def test_bad_requests_end_in_one_line(bids_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    participant = ["bids", str(bids_dataset)]
    assert main([*participant, str(tmp_path / "sr"), "participant", *LINEAR, "--participant-label", "07"]) == 1
    assert "no sub-07 (found: sub-01, sub-02)" in capsys.readouterr().err
    assert main([*participant, str(bids_dataset), "participant", *LINEAR]) == 1
    assert "the output folder is the input dataset" in capsys.readouterr().err
    assert main(["bids", str(tmp_path), str(tmp_path / "sr"), "participant", *LINEAR]) == 1
    assert "not a BIDS dataset" in capsys.readouterr().err
    assert main([*participant, str(tmp_path / "sr"), "participant", "--no-progress"]) == 1
    assert "needs --method" in capsys.readouterr().err
    assert main([*participant, str(tmp_path / "none"), "group"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrisr: error: ") and "no mrisr derivatives" in err and len(err.splitlines()) == 1
