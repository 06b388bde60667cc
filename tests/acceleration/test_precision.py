"""Precision resolution (auto/fp32/bf16/fp16), its cache, and the CPU runtime settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import pipeline.acceleration.precision as precision_module
import pipeline.acceleration.runtime as runtime
from pipeline.acceleration import configure_cpu_runtime, precision_context, resolve_precision

CPU = torch.device("cpu")


def test_requested_precisions_are_kept_and_unknown_ones_rejected() -> None:
    assert resolve_precision("fp32", CPU) == ("fp32", "requested")
    assert resolve_precision("bf16", CPU) == ("bf16", "requested")
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp8", CPU)


@pytest.mark.parametrize("capability, expected", [("none", "fp32"), ("amx", "bf16")])
def test_auto_without_measurement(monkeypatch: pytest.MonkeyPatch, capability: str, expected: str) -> None:
    monkeypatch.setattr(precision_module, "cpu_bf16_capability", lambda: capability)
    monkeypatch.setattr(precision_module, "measure_cpu_speedup", lambda *a: pytest.fail("must not measure"))
    chosen, reason = resolve_precision("auto", CPU, torch.nn.Identity(), torch.zeros(1, 1, 4, 4))
    assert chosen == expected and reason.startswith("auto")


@pytest.mark.parametrize("speedup, expected", [(2.4, "bf16"), (0.6, "fp32")])
def test_auto_measures_once_and_caches(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, speedup: float, expected: str
) -> None:
    """AVX512-BF16 without AMX: bf16 only when measurably faster; the choice is cached on disk."""
    monkeypatch.setenv("MRISR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(precision_module, "cpu_bf16_capability", lambda: "avx512_bf16")
    calls = []
    monkeypatch.setattr(precision_module, "measure_cpu_speedup", lambda *a: calls.append(1) or speedup)
    net, sample = torch.nn.Conv2d(1, 2, 3), torch.zeros(1, 1, 8, 8)
    first = resolve_precision("auto", CPU, net, sample)
    second = resolve_precision("auto", CPU, net, sample)
    assert first[0] == second[0] == expected and f"{speedup:.2f}x" in first[1]
    assert len(calls) == 1
    cached = json.loads((tmp_path / "cpu_precision.json").read_text())
    assert [entry["precision"] for entry in cached.values()] == [expected]
    resolve_precision("auto", CPU, net, sample, training=True)  # a training step is timed and cached apart
    assert len(calls) == 2 and len(json.loads((tmp_path / "cpu_precision.json").read_text())) == 2


def test_speedup_pairs_each_fp32_timing_with_the_next_bf16_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The estimate is the median of per-round ratios: a round under load changes its own ratio, not the median."""
    times = iter([4.0, 2.0, 9.0, 3.0, 2.0, 1.0])  # rounds: 2x, 3x, 2x (the second under load)
    monkeypatch.setattr(precision_module, "_seconds", lambda run: run() or next(times))
    runs = []
    speedup = precision_module._paired_speedup(lambda: runs.append("fp32"), lambda: runs.append("bf16"))
    assert speedup == 2.0
    assert runs == ["fp32", "bf16"] * 4  # a warm-up of each, then 3 rounds


def test_auto_measurement_is_real(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MRISR_CACHE_DIR", str(tmp_path))
    net = torch.nn.Conv2d(1, 4, 3, padding=1).eval()
    assert precision_module.measure_cpu_speedup(net, torch.rand(1, 1, 16, 16)) > 0
    assert precision_module.measure_cpu_speedup(net, torch.rand(1, 1, 16, 16), training=True) > 0
    assert net.weight.grad is not None  # the training timing ran backward


def test_cuda_auto_prefers_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", torch.device("cuda"))[0] == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", torch.device("cuda"))[0] == "fp16"


def test_precision_context_autocasts() -> None:
    x, w = torch.rand(2, 3), torch.rand(3, 3)
    with precision_context(CPU, "bf16"):
        assert (x @ w).dtype == torch.bfloat16
    with precision_context(CPU, "fp32"):
        assert (x @ w).dtype == torch.float32


def test_cgroup_quota_caps_the_cores(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert runtime._cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert runtime._cgroup_cpu_limit(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert runtime._cgroup_cpu_limit(v1) == 2.0


def test_configure_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(runtime, "_configured", {})
        monkeypatch.setenv("MRISR_NUM_THREADS", "1")
        assert configure_cpu_runtime()["threads"] == 1
        assert configure_cpu_runtime(num_threads=2)["threads"] == 2 == torch.get_num_threads()
        with pytest.raises(ValueError):
            configure_cpu_runtime(num_threads=0)
    finally:
        torch.set_num_threads(before)


def test_configure_process_asks_for_the_recompile_limit_without_importing_dynamo():
    """The entry points' one call: the limit is recorded now and applied by the fused kernel when it compiles."""
    import subprocess
    import sys

    code = (
        "import sys; from pipeline.acceleration import configure_process, requested_recompile_limit; "
        "assert requested_recompile_limit() is None; s = configure_process(1); "
        "assert s['recompile_limit'] == requested_recompile_limit() == 64; assert 'torch._dynamo' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
