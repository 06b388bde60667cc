"""One word for the SR ratio, ``zoom`` (output voxels per input voxel per axis): the older names still work for
one version (``--scale``, ``--factors``, ``scale=``) and records written under the older keys (``"scale"`` in
infer sidecars, ``"factors"`` in degradation records) are still read."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import nibabel as nib
import numpy as np
import pytest

import pipeline.bundle_entry as bundle_entry
from pipeline import super_resolve
from pipeline.bids.derivatives import write_bids_sidecar
from pipeline.bids.inputs import BidsInput
from pipeline.cli.main import build_parser, main
from pipeline.inference import (
    inference_parameters,
    make_baseline,
    output_is_complete,
    resolve_zoom,
    super_resolve_file,
    with_zoom_key,
)
from pipeline.transforms.grid import spacing_from_affine

DEPRECATED = "`scale` has been deprecated since version 0.1.0. It will be removed in version 0.2.0"


def _sidecar(image: Path) -> Path:
    return image.with_name(image.name.replace(".nii.gz", ".json"))


def _infer(source: Path, output: Path, *zoom: str) -> int:
    return main(["infer", str(source), "-o", str(output), "--method", "linear", *zoom, "--no-progress"])


def test_infer_scale_still_works_and_says_once_that_it_is_deprecated(nifti_file: Path, tmp_path: Path, capsys) -> None:
    new, old = tmp_path / "new.nii.gz", tmp_path / "old.nii.gz"
    assert _infer(nifti_file, new, "--zoom", "2", "2", "1") == 0
    assert "deprecated" not in capsys.readouterr().err
    assert _infer(nifti_file, old, "--scale", "2", "2", "1") == 0
    assert capsys.readouterr().err.splitlines() == ["mrisr: --scale is deprecated, use --zoom"]
    np.testing.assert_array_equal(nib.load(str(old)).get_fdata(), nib.load(str(new)).get_fdata())
    record = json.loads(_sidecar(old).read_text())
    assert record["zoom"] == [2.0, 2.0, 1.0] and record["parameters"]["zoom"] == [2.0, 2.0, 1.0]
    assert "scale" not in record and "scale" not in record["parameters"]


def test_degrade_factors_still_works_and_says_once_that_it_is_deprecated(
    nifti_file: Path, tmp_path: Path, capsys
) -> None:
    new, old = tmp_path / "new.nii.gz", tmp_path / "old.nii.gz"
    base = ["degrade", str(nifti_file), "--model", "bicubic", "--no-progress"]
    assert main([*base, "-o", str(new), "--zoom", "2", "2"]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert main([*base, "-o", str(old), "--factors", "2", "2"]) == 0
    assert capsys.readouterr().err.splitlines() == ["mrisr: --factors is deprecated, use --zoom"]
    np.testing.assert_array_equal(nib.load(str(old)).get_fdata(), nib.load(str(new)).get_fdata())
    degradation = json.loads(_sidecar(old).read_text())["degradation"]
    assert degradation["zoom"] == [2.0, 2.0, 1.0] and "factors" not in degradation


@pytest.mark.parametrize(
    "argv, zoom",
    [
        (["infer", "x.nii.gz", "--method", "cubic", "--scale", "2", "2", "1"], [2.0, 2.0, 1.0]),
        (["bids", "ds", "out", "participant", "--method", "cubic", "--scale", "1", "1", "2"], [1.0, 1.0, 2.0]),
        (["bids", "ds", "out", "participant", "--method", "cubic", "--zoom", "1", "1", "2"], [1.0, 1.0, 2.0]),
        (["degrade", "x.nii.gz", "--model", "blur", "--factors", "3"], [3.0]),
        (["degrade", "x.nii.gz", "--model", "blur"], [2.0]),  # --zoom's default
    ],
)
def test_the_aliases_fill_zoom(argv: list[str], zoom: list[float]) -> None:
    assert build_parser().parse_args(argv).zoom == zoom


@pytest.mark.parametrize(
    "argv",
    [
        ["infer", "x.nii.gz", "--method", "cubic", "--zoom", "2", "2", "1", "--scale", "2", "2", "1"],
        ["degrade", "x.nii.gz", "--model", "blur", "--zoom", "2", "--factors", "2"],
    ],
)
def test_zoom_and_its_alias_are_one_or_the_other(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_help_says_what_zoom_is(capsys) -> None:
    for command in ("infer", "degrade", "bids"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "zoom: output voxels per input voxel per axis (MONAI's Zoom)" in text, command
        assert "deprecated alias of --zoom" in text, command


def test_python_scale_keyword_is_a_deprecated_alias(nifti_file: Path, tmp_path: Path, monkeypatch) -> None:
    with pytest.warns(FutureWarning, match=DEPRECATED):
        old = super_resolve(nifti_file, "linear", scale=(1, 1, 2))
    np.testing.assert_array_equal(old.get_fdata(), super_resolve(nifti_file, "linear", zoom=(1, 1, 2)).get_fdata())
    with pytest.warns(FutureWarning, match=DEPRECATED):
        record = super_resolve_file(make_baseline("linear"), nifti_file, tmp_path / "a.nii.gz", scale=[1, 1, 2])
    assert record["zoom"] == [1.0, 1.0, 2.0] and record["parameters"]["zoom"] == [1.0, 1.0, 2.0]
    monkeypatch.setattr(bundle_entry, "configure_process", lambda: None)  # the process is the test runner's
    with pytest.warns(FutureWarning, match=DEPRECATED):  # a bundle config of an older version: scale=@scale
        record = bundle_entry.super_resolve(make_baseline("linear"), nifti_file, tmp_path / "b.nii.gz", scale=[1, 1, 2])
    assert record["zoom"] == [1.0, 1.0, 2.0]


def test_with_zoom_key() -> None:
    assert with_zoom_key({"method": "cubic", "scale": [2, 2, 1], "qc": None}) == {
        "method": "cubic",
        "zoom": [2, 2, 1],
        "qc": None,
    }
    assert list(with_zoom_key({"method": "m", "factors": [1.0, 2.0], "axes": [1]})) == ["method", "zoom", "axes"]
    assert with_zoom_key({"zoom": [2, 2, 1], "scale": [9, 9, 9]})["zoom"] == [2, 2, 1]  # the new key wins
    assert with_zoom_key(None) is None and with_zoom_key({"method": "m"}) == {"method": "m"}


def _as_older_version(sidecar: Path, rename: dict[str, str]) -> None:
    """Rewrite a sidecar with the key names an older mrisr wrote (recursively)."""

    def renamed(value):
        if isinstance(value, dict):
            return {rename.get(k, k): renamed(v) for k, v in value.items()}
        if isinstance(value, list):
            return [renamed(v) for v in value]
        return value

    sidecar.write_text(json.dumps(renamed(json.loads(sidecar.read_text()))))


def test_an_infer_sidecar_of_an_older_version_is_read(nifti_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub-01_res-hi_T1w.nii.gz"
    method = make_baseline("linear")
    super_resolve_file(method, nifti_file, out, zoom=[1, 1, 2])
    _as_older_version(_sidecar(out), {"zoom": "scale"})
    old = json.loads(_sidecar(out).read_text())
    assert "zoom" not in old and old["scale"] == [1.0, 1.0, 2.0] and old["parameters"]["scale"] == [1.0, 1.0, 2.0]
    assert output_is_complete(out, inference_parameters(method, nifti_file, zoom=[1, 1, 2]))  # resume skips it
    assert not output_is_complete(out, inference_parameters(method, nifti_file, zoom=[1, 1, 3]))
    item = BidsInput(nifti_file, PurePosixPath("sub-01/anat/sub-01_T1w.nii.gz"), "01", None, "T1w")
    write_bids_sidecar(out, item)
    resolution = next(iter(json.loads(_sidecar(out).read_text())["Resolution"].values()))
    assert "zoomed 1 x 1 x 2 " in resolution


def test_a_degradation_record_of_an_older_version_is_read(nifti_file: Path, tmp_path: Path) -> None:
    lr, sr = tmp_path / "lr.nii.gz", tmp_path / "sr.nii.gz"
    assert main(["degrade", str(nifti_file), "-o", str(lr), "--protocol", "blur-x2", "--no-progress"]) == 0
    _as_older_version(_sidecar(lr), {"zoom": "factors"})
    old = json.loads(_sidecar(lr).read_text())
    assert old["degradation"]["factors"] == [2.0, 2.0, 1.0] and "zoom" not in old["degradation"]
    zoom, degradation = resolve_zoom(lr, spacing_from_affine(nib.load(str(lr)).affine))
    assert zoom == pytest.approx([2.0, 2.0, 1.0]) and degradation["zoom"] == [2.0, 2.0, 1.0]
    assert main(["infer", str(lr), "-o", str(sr), "--method", "cubic", "--no-progress"]) == 0
    record = json.loads(_sidecar(sr).read_text())
    assert record["zoom"] == pytest.approx([2.0, 2.0, 1.0]) and record["degradation"]["zoom"] == [2.0, 2.0, 1.0]
