# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Sharded cohort runs: shard assignment, --shard K/N, and merged outputs equal to one process's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import gaussian_filter

import pipeline.cli.infer
import pipeline.sharding
from pipeline.cli.main import main
from pipeline.inference.device import resolve_device
from pipeline.sharding import (
    Shard,
    ShardsIncomplete,
    cohort_run,
    complete_records,
    parse_shard,
    shard_folder,
    start_shard,
    write_shard_record,
)
from tests.conftest import REPO_ROOT, blob_volume
from tests.utils import write_manifest

SHAPE = (20, 22, 16)
AFFINE = np.diag([1.0, 1.0, 1.2, 1.0])
EVALUATE = ["evaluate", "--protocol", "bicubic-x2", "--methods", "cubic", "linear", "--no-progress"]


def _manifest(folder: Path, *, missing_row: bool) -> Path:
    """4 synthetic scans (s0..s3, s0 with a mask); with ``missing_row`` a row whose file is absent comes first
    (its scan id, ``gone/1``, is written ``gone_1`` in file names and in the failures of failed scans)."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij"))
    brain = (grid**2).sum(0) < 0.7
    rows = []
    for i in range(4):
        hr = gaussian_filter(blob_volume(SHAPE, seed=i) * brain, 1.0).astype(np.float32)
        mask = (f"s{i}_mask.nii.gz", brain.astype(np.uint8)) if i == 0 else ""
        rows.append(
            {"subject_id": f"sub-{i}", "scan_id": f"s{i}", "split": "test", "hr": (f"s{i}.nii.gz", hr), "mask": mask}
        )
    if missing_row:
        rows.insert(
            0, {"subject_id": "sub-x", "scan_id": "gone/1", "split": "test", "hr": "missing.nii.gz", "mask": ""}
        )
    return write_manifest(folder / ("manifest_missing.csv" if missing_row else "manifest.csv"), rows, AFFINE)


def _without_runtime(path: Path) -> pd.DataFrame:
    """A CSV table as text cells, without the runtime columns (seconds differ from run to run)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return table[[c for c in table.columns if not c.startswith("runtime_s")]]


def _assert_same_evaluation(single: Path, merged: Path) -> None:
    for name in ("per_scan_metrics.csv", "summary.csv"):
        pd.testing.assert_frame_equal(_without_runtime(single / name), _without_runtime(merged / name))
    for name in ("boxplot_psnr_ssim.png", "panel.png", "report.md", "summary.md"):
        assert (merged / name).is_file(), name
    panel_caption = re.compile(r"Slices of scan \S+ with")
    captions = [panel_caption.findall((folder / "report.md").read_text()) for folder in (single, merged)]
    assert captions[0] == captions[1] == ["Slices of scan s0 with"] * 2  # link and image of the first scan


# --- shard assignment and K/N ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [("0/2", Shard(0, 2)), (" 3 / 4 ", Shard(3, 4)), ("0/1", Shard(0, 1))])
def test_parse_shard(text: str, expected: Shard):
    assert parse_shard(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("2/2", "K must be 0..1 (K counts from 0; a Slurm job array uses --array=0-1)"),
        ("1/0", "N must be at least 1"),
        ("-1/2", "expected K/N"),
        ("1", "expected K/N"),
        ("a/b", "expected K/N"),
    ],
)
def test_parse_shard_rejects_bad_values_in_one_line(text: str, message: str):
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        parse_shard(text)
    assert "\n" not in str(err.value)


def test_shards_are_disjoint_balanced_and_deterministic():
    for n_rows in (0, 1, 7, 10):
        for count in (1, 2, 3, 8):
            parts = [list(Shard(k, count).positions(n_rows)) for k in range(count)]
            assert sorted(p for part in parts for p in part) == list(range(n_rows))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
            assert all(p % count == k for k, part in enumerate(parts) for p in part)
    assert list(Shard(1, 3).positions(10)) == [1, 4, 7]


def test_cohort_run_without_torchrun():
    with cohort_run(None, environ={}) as run:
        assert run.shard is None and run.lead and not run.distributed
    with cohort_run(Shard(0, 1), environ={}) as run:
        assert run.shard is None  # one shard is the whole run
    with cohort_run(Shard(1, 3), environ={"WORLD_SIZE": "1"}) as run:
        assert run.shard == Shard(1, 3) and run.lead and not run.distributed
        assert run.max_over_ranks(1) == 1 and run.from_lead(0) == 0


def test_cpu_threads_are_shared_among_the_ranks_of_a_node(monkeypatch: pytest.MonkeyPatch):
    chosen: list[int] = []
    monkeypatch.setattr(pipeline.sharding, "available_cpu_cores", lambda: 8)
    monkeypatch.setattr(pipeline.sharding, "configure_cpu_runtime", lambda n: chosen.append(n))
    pipeline.sharding._share_cpu_cores(2, {"OMP_NUM_THREADS": "1"})  # torchrun's own setting is not a choice
    pipeline.sharding._share_cpu_cores(16, {})
    pipeline.sharding._share_cpu_cores(2, {"MRISR_NUM_THREADS": "3"})
    assert chosen == [4, 1, 3]


def test_auto_device_is_the_local_rank_gpu(monkeypatch: pytest.MonkeyPatch):
    assert resolve_device("auto", {"LOCAL_RANK": "1"}).type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto", {"LOCAL_RANK": "1"}) == torch.device("cuda", 1)
    assert resolve_device("auto", {"LOCAL_RANK": "3"}) == torch.device("cuda", 1)  # more ranks than GPUs: shared
    assert resolve_device(None, {}) == torch.device("cuda")


def test_shards_of_another_run_are_not_merged(tmp_path: Path):
    settings = {"command": "infer (cubic)", "manifest": "/m.csv"}
    for k in range(2):
        start_shard(tmp_path, Shard(k, 2))
    write_shard_record(tmp_path, Shard(0, 2), settings, [(0, "a")])
    with pytest.raises(ShardsIncomplete, match="waiting for shard"):
        complete_records(tmp_path, Shard(0, 2))
    write_shard_record(tmp_path, Shard(1, 2), {**settings, "command": "infer (linear)"}, [(1, "b")])
    with pytest.raises(ShardsIncomplete) as err:
        complete_records(tmp_path, Shard(0, 2))
    assert err.value.missing == [1]
    write_shard_record(tmp_path, Shard(1, 2), settings, [(1, "b")])
    assert [r["rows"] for r in complete_records(tmp_path, Shard(1, 2))] == [[[0, "a"]], [[1, "b"]]]


def test_bad_shard_and_single_file_shard_fail_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture):
    manifest = _manifest(tmp_path / "data", missing_row=False)
    assert main([*EVALUATE, "--manifest", str(manifest), "--output-dir", str(tmp_path / "o"), "--shard", "2/2"]) == 1
    err = capsys.readouterr().err
    message = "mrisr: error: --shard 2/2: K must be 0..1 (K counts from 0; a Slurm job array uses --array=0-1)"
    assert err.strip().splitlines() == [message]
    lr, sr = tmp_path / "data" / "s0.nii.gz", tmp_path / "sr.nii.gz"
    single_file = ["infer", str(lr), "-o", str(sr), "--method", "cubic"]
    assert main([*single_file, "--zoom", "2", "2", "2", "--shard", "0/2"]) == 1
    assert "give --manifest and --output-dir" in capsys.readouterr().err


# --- merged outputs equal a single-process run's ---------------------------------------------------------------


def test_two_evaluate_shards_merge_into_the_single_process_outputs(tmp_path: Path, capsys: pytest.CaptureFixture):
    manifest = _manifest(tmp_path / "data", missing_row=True)
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert main([*EVALUATE, "--manifest", str(manifest), "--output-dir", str(single)]) == 1  # the missing row fails
    args = [*EVALUATE, "--manifest", str(manifest), "--output-dir", str(sharded)]
    assert main([*args, "--shard", "0/2"]) == 1  # rows 0 (missing), 2, 4: its panel shows s1
    assert "waiting for shard(s) 1/2" in capsys.readouterr().out
    assert not (sharded / "per_scan_metrics.csv").exists()
    assert main([*args, "--shard", "1/2"]) == 0  # rows 1, 3 (s0, s2); the last shard to finish merges
    assert "merged 2 shards, 4 scan(s)" in capsys.readouterr().out

    assert [r["panel"] for r in complete_records(sharded, Shard(0, 2))] == ["s1", "s0"]
    _assert_same_evaluation(single, sharded)  # the panel of the earliest scan, s0, from shard 1/2
    assert (single / "failures.csv").read_bytes() == (sharded / "failures.csv").read_bytes()
    scans = pd.read_csv(sharded / "per_scan_metrics.csv")["scan_id"].tolist()
    assert scans == ["s0", "s0", "s1", "s1", "s2", "s2", "s3", "s3"]  # manifest order, methods in order
    assert sorted(p.name for p in (sharded / "shards").iterdir() if p.is_dir()) == ["0-of-2", "1-of-2"]

    # resume: a shard that completed without failures is reused, one with failures is recomputed
    records = {k: shard_folder(sharded, Shard(k, 2)) / "shard.json" for k in range(2)}
    before = {k: path.stat().st_mtime_ns for k, path in records.items()}
    time.sleep(0.01)
    assert main([*args, "--shard", "1/2"]) == 0
    assert records[1].stat().st_mtime_ns == before[1]
    assert main([*args, "--shard", "0/2"]) == 1
    assert records[0].stat().st_mtime_ns != before[0]
    _assert_same_evaluation(single, sharded)


def test_two_infer_shards_write_each_output_once_and_merge_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    manifest = _manifest(tmp_path / "data", missing_row=True)
    calls: list[str] = []
    real = pipeline.cli.infer.super_resolve_file

    def counted(method, source, output, **kwargs):
        calls.append(Path(output).name)
        return real(method, source, output, **kwargs)

    monkeypatch.setattr(pipeline.cli.infer, "super_resolve_file", counted)
    base = ["infer", "--manifest", str(manifest), "--column", "hr", "--method", "cubic", "--zoom", "2", "2", "2"]
    base.append("--no-progress")
    assert main([*base, "--output-dir", str(tmp_path / "single")]) == 1
    calls.clear()
    out = tmp_path / "sharded"
    assert main([*base, "--output-dir", str(out), "--shard", "1/2"]) == 0
    assert not (out / "failures.csv").exists()  # shard 0/2 has not run yet: nothing merged
    assert main([*base, "--output-dir", str(out), "--shard", "0/2"]) == 1

    expected = [f"s{i}_sr-cubic.nii.gz" for i in range(4)]
    assert sorted(calls) == sorted([*expected, "gone_1_sr-cubic.nii.gz"])  # each row once (the missing one failed)
    assert sorted(p.name for p in out.glob("*.nii.gz")) == expected
    assert (out / "failures.csv").read_bytes() == (tmp_path / "single" / "failures.csv").read_bytes()

    calls.clear()  # a rerun of a shard redoes only its failed row
    assert main([*base, "--output-dir", str(out), "--shard", "0/2"]) == 1
    assert calls == ["gone_1_sr-cubic.nii.gz"]


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_match_one_process(tmp_path: Path):
    manifest = _manifest(tmp_path / "data", missing_row=False)
    single, distributed = tmp_path / "single", tmp_path / "torchrun"
    assert main([*EVALUATE, "--manifest", str(manifest), "--output-dir", str(single)]) == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "pipeline"]
    command += [*EVALUATE, "--manifest", str(manifest), "--output-dir", str(distributed)]
    # one thread per rank, as in this process: float32 SSIM sums depend on the thread count
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MRISR_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    cannot_start = r"Address already in use|EADDRINUSE|RendezvousConnectionError|TCPStore"
    if result.returncode != 0 and re.search(cannot_start, output):
        pytest.skip(f"torchrun could not start its rendezvous: {output.strip().splitlines()[-1]}")
    assert result.returncode == 0, output[-6000:]
    print(f"torchrun, 2 ranks, 4 scans: {time.perf_counter() - started:.1f} s")

    assert "merged 2 shards, 4 scan(s)" in result.stdout
    _assert_same_evaluation(single, distributed)
    assert not (distributed / "failures.csv").exists()
    rows = {k: complete_records(distributed, Shard(0, 2))[k]["rows"] for k in range(2)}
    assert rows == {0: [[0, "s0"], [2, "s2"]], 1: [[1, "s1"], [3, "s3"]]}  # rank k ran rows k, k + 2
