"""Inference speed of every bundle: plain MONAI fp32 against the fast path, side by side in one run.

For each bundle, on the MNI152 2009 T1 template's brain box (``nilearn``, cropped to its brain mask
+ 8 voxels as ``mrisr evaluate --crop-to-mask`` does, degraded by the bundle's protocol):

- plain: what a MONAI user writes today: the trained network as it is, fp32, channels-first,
  ``torch.no_grad``; 2D networks through MONAI's ``SliceInferer`` (whole slices, one per call),
  3D networks through ``SlidingWindowInferer`` (the bundle's patch size, MONAI's default overlap
  0.25 and constant blending, one patch per call). Same input grid and intensity scaling as the
  bundle. It runs in a fresh Python process with PyTorch's default threads and allocator: the fast
  path changes both process-wide, and the allocator setting alone made the plain mDCSRN path 1.5x
  faster (on a 100 x 120 x 90 volume, 174 s -> 115 s), which would hide part of the difference.
- fast: the bundle's own ``NetworkSR`` (``pipeline.acceleration``: rewritten network, channels-last,
  fused element-wise layers, inference mode, threads = cores, ``--precision``, default the bundle's
  ``auto``), after a warm-up call on a small volume (one-time preparation: precision choice,
  kernel compilation; its time is printed apart).

Printed per bundle: seconds, the speed ratio, useful GFLOP/s (the network's multiply-adds per
output voxel x 2 x output voxels / seconds) against the fp32 and bf16 matrix-product peaks measured
at the start of the same run, and PSNR in the brain mask (data range = HR max - min there) of
plain, fast and their difference. No assertion: machines are shared and noisy.

Usage:
    python benchmarks/inference_speed.py                       # every bundle, whole brain box
    python benchmarks/inference_speed.py --bundles srcnn mdcsrn --slab 32 --json out.json
    python benchmarks/inference_speed.py --precision bf16      # force the fast path's precision
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import SliceInferer, SlidingWindowInferer
from monai.transforms import Compose

from pipeline.acceleration import available_cpu_cores, configure_cpu_runtime
from pipeline.demo import fetch_mni152
from pipeline.evaluation.metrics import data_range, psnr
from pipeline.inference import available_bundles, load_bundle_method, robust_intensity_scale, to_network_input
from pipeline.inference.methods import BUNDLES_DIR, bundle_metadata
from pipeline.inference.network_method import choose_slice_axis
from pipeline.io import load_volume
from pipeline.networks.complexity import macs_per_output_voxel
from pipeline.protocols import get_protocol
from pipeline.transforms.brain_crop import brain_crops
from pipeline.transforms.grid import zoomed_affine


def matmul_peak_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of a square ``size`` matrix product in ``dtype`` on the CPU."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def brain_box(cache: Path, protocol_name: str, slab: int | None) -> tuple[MetaTensor, MetaTensor, np.ndarray]:
    """(LR, HR, mask) of the MNI152 brain box under a protocol; ``slab`` keeps that many central slices."""
    t1_path, mask_path = fetch_mni152(cache)
    protocol = get_protocol(protocol_name)
    hr = load_volume(t1_path)
    mask = MetaTensor(
        torch.from_numpy((nib.load(str(mask_path)).get_fdata() > 0.5).astype(np.uint8))[None], affine=hr.affine
    )
    cropped = Compose(brain_crops(protocol.zoom, crop_to_mask=True))({"hr": hr, "mask": mask})
    hr, mask = cropped["hr"], cropped["mask"]
    if slab is not None:  # central slab across the axis that is not degraded in-plane
        axis = protocol.slice_axis
        start = max(0, (hr.shape[1 + axis] - slab) // 2)
        index = [slice(None)] * 4
        index[1 + axis] = slice(start, start + slab)
        hr, mask = hr[tuple(index)], mask[tuple(index)]
    return protocol.degrade(hr), hr, mask[0].numpy() > 0


def plain_monai(method, lr: MetaTensor, zoom: list[float]) -> MetaTensor:
    """The bundle's network as trained, fp32 channels-first, through MONAI's stock inferers."""
    network = method.network.float().eval()
    scale = robust_intensity_scale(lr)
    volume = to_network_input(lr, zoom, method.upsampling).as_tensor().float()[None] / scale
    if method.spatial_dims == 2:
        axis = choose_slice_axis(zoom)
        roi = tuple(s for i, s in enumerate(volume.shape[2:]) if i != axis)
        inferer = SliceInferer(roi_size=roi, spatial_dim=axis, sw_batch_size=1, progress=False)
    else:
        roi = method.roi_size if isinstance(method.roi_size, (list, tuple)) else [method.roi_size] * 3
        inferer = SlidingWindowInferer(roi_size=[min(r, s) for r, s in zip(roi, volume.shape[2:])], sw_batch_size=1)
    with torch.no_grad():
        out = inferer(volume, network)[0] * scale
    affine = zoomed_affine(lr.affine, np.asarray(out.shape[1:]) / np.asarray(lr.shape[1:]))
    return MetaTensor(out, affine=torch.as_tensor(affine))


def plain_in_fresh_process(name: str, args: argparse.Namespace) -> tuple[np.ndarray, float]:
    """Run :func:`plain_monai` for ``name`` in a new interpreter; returns (SR array, seconds)."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "sr.npy"
        command = [sys.executable, __file__, "--plain-worker", name, str(output), "--cache", str(args.cache)]
        if args.slab is not None:
            command += ["--slab", str(args.slab)]
        subprocess.run(command, check=True)
        seconds = float((Path(folder) / "seconds.txt").read_text())
        return np.load(output), seconds


def plain_worker(name: str, output: Path, args: argparse.Namespace) -> None:
    """The ``--plain-worker`` entry: time the plain path of one bundle, save the SR volume and the time."""
    protocol = bundle_metadata(BUNDLES_DIR / name).get("degradation_protocol")
    lr, _, _ = brain_box(args.cache, protocol, args.slab)
    method = load_bundle_method(BUNDLES_DIR / name, device="cpu", **{"sr_method#fast": False})
    sr, seconds = timed(lambda: plain_monai(method, lr, [float(z) for z in get_protocol(protocol).zoom]))
    np.save(output, sr[0].numpy())
    (output.parent / "seconds.txt").write_text(repr(seconds))


def timed(run):
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def benchmark_bundle(name: str, args: argparse.Namespace, peaks: dict[str, float]) -> dict:
    protocol = bundle_metadata(BUNDLES_DIR / name).get("degradation_protocol")
    lr, hr, mask = brain_box(args.cache, protocol, args.slab)
    zoom = [float(z) for z in get_protocol(protocol).zoom]
    hr_array = hr[0].numpy()
    value_range = data_range(hr_array, mask)
    fast = load_bundle_method(BUNDLES_DIR / name, device="cpu", precision=args.precision)
    sample_shape = (1, 1, 16, 16, 16) if fast.spatial_dims == 3 else (1, 1, 32, 32)
    macs = macs_per_output_voxel(fast.network, sample_shape)
    gflop = 2 * macs * hr_array.size / 1e9
    warm_lr = lr[:, :16, :16, :16] if fast.spatial_dims == 3 else lr[:, :, :, :2]
    _, prepare_s = timed(lambda: fast(warm_lr, zoom))
    fast_sr, fast_s = timed(lambda: fast(lr, zoom))
    plain_sr, plain_s = plain_in_fresh_process(name, args)
    psnr_plain = psnr(plain_sr, hr_array, mask, value_range)
    psnr_fast = psnr(fast_sr[0].numpy(), hr_array, mask, value_range)
    row = {
        "bundle": name,
        "protocol": protocol,
        "hr_shape": list(hr_array.shape),
        "gflop": round(gflop, 1),
        "plain_s": round(plain_s, 2),
        "fast_s": round(fast_s, 2),
        "prepare_s": round(prepare_s, 2),
        "ratio": round(plain_s / fast_s, 2),
        "plain_gflops": round(gflop / plain_s, 1),
        "fast_gflops": round(gflop / fast_s, 1),
        "fast_pct_of_fp32_peak": round(100 * gflop / fast_s / peaks["fp32"], 1),
        "precision": fast.precision,
        "precision_reason": fast.precision_reason,
        "psnr_plain": round(psnr_plain, 3),
        "psnr_fast": round(psnr_fast, 3),
        "delta_psnr": round(psnr_fast - psnr_plain, 4),
    }
    print(
        f"{name:11s} {protocol:10s} plain {plain_s:7.1f} s | fast {fast_s:6.1f} s ({fast.precision}) | "
        f"x{row['ratio']:.2f} | {row['plain_gflops']:.0f} -> {row['fast_gflops']:.0f} GFLOP/s "
        f"({row['fast_pct_of_fp32_peak']:.0f} % of fp32 peak) | PSNR {psnr_plain:.3f} -> {psnr_fast:.3f} "
        f"(delta {row['delta_psnr']:+.4f} dB) | prep {prepare_s:.1f} s",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundles", nargs="+", default=None, help="bundle names (default: every installed one)")
    parser.add_argument("--precision", default=None, help="fast path precision (default: the bundle's, auto)")
    parser.add_argument("--slab", type=int, default=None, help="only this many central slices of the box (quick runs)")
    parser.add_argument("--cache", type=Path, default=Path("benchmark_data"), help="where the MNI152 files are kept")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--plain-worker", nargs=2, metavar=("BUNDLE", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_worker:
        plain_worker(args.plain_worker[0], Path(args.plain_worker[1]), args)
        return
    runtime = configure_cpu_runtime()
    peaks = {"fp32": matmul_peak_gflops(torch.float32), "bf16": matmul_peak_gflops(torch.bfloat16)}
    print(
        f"CPU: {available_cpu_cores()} cores, {runtime['threads']} threads; matrix-product peak (2048^2): "
        f"fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s; torch {torch.__version__}",
        flush=True,
    )
    rows = [benchmark_bundle(name, args, peaks) for name in (args.bundles or available_bundles())]
    print(
        "\n| bundle | protocol | plain MONAI fp32 (s) | fast (s) | precision | speed-up "
        "| GFLOP/s fast (plain) | ΔPSNR (dB) |"
    )
    print("|---|---|---:|---:|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['bundle']} | {r['protocol']} | {r['plain_s']:.1f} | {r['fast_s']:.1f} | {r['precision']} | "
            f"{r['ratio']:.2f}x | {r['fast_gflops']:.0f} ({r['plain_gflops']:.0f}) | {r['delta_psnr']:+.4f} |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps({"peaks_gflops": peaks, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
