"""Side-by-side inference timings: ours vs plain MONAI, in one run on the same machine.

1. 2D network over a volume: NetworkSR (slices batched through a 2D sliding window) vs MONAI's
   ``SliceInferer`` (one slice at a time).
2. 3D network: margin-cropped tiling (seed 003's 'margin 3') vs MONAI ``SlidingWindowInferer``
   with the same patch size and Gaussian blending; also the max difference from a whole-volume pass.

Usage: python benchmarks/inference_speed.py [--size 96] [--repeats 3] [--device cpu]
Prints medians and the ratio (MONAI time / ours). No assertion: machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from monai.data import MetaTensor
from monai.inferers import SliceInferer, SlidingWindowInferer

from pipeline.inference import NetworkSR
from pipeline.networks import MDCSRN, SRCNN


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=96, help="cubic volume edge in voxels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    volume = torch.rand(1, args.size, args.size, args.size)
    image = MetaTensor(volume, affine=torch.eye(4))

    srcnn = SRCNN(spatial_dims=2).eval().to(device)
    ours_2d = NetworkSR(srcnn, spatial_dims=2, upsampling="nearest", slice_axis=2, batch_size=16, device=device)
    slice_inferer = SliceInferer(roi_size=(args.size, args.size), spatial_dim=2, sw_batch_size=16, progress=False)
    with torch.no_grad():
        t_ours = median_time(lambda: ours_2d(image, [1, 1, 1]), args.repeats)
        t_monai = median_time(lambda: slice_inferer(volume[None].to(device), srcnn), args.repeats)
    print(f"2D SRCNN over {args.size}^3 slices: ours {t_ours:.2f} s | MONAI SliceInferer {t_monai:.2f} s | ratio {t_monai / t_ours:.2f}x")

    mdcsrn = MDCSRN().eval().to(device)
    roi = min(48, args.size)
    ours_3d = NetworkSR(mdcsrn, spatial_dims=3, upsampling="nearest", roi_size=roi, margin=3, batch_size=2, device=device)
    sliding = SlidingWindowInferer(roi_size=roi, sw_batch_size=2, overlap=0.25, mode="gaussian")
    with torch.no_grad():
        t_ours = median_time(lambda: ours_3d(image, [1, 1, 1]), args.repeats)
        t_monai = median_time(lambda: sliding(volume[None].to(device), mdcsrn), args.repeats)
        scale = float(torch.quantile(volume[volume > 0][:1_000_000], 0.995))
        whole = mdcsrn(volume[None].to(device) / scale)[0].cpu() * scale
        err_ours = float((ours_3d(image, [1, 1, 1]).as_tensor() - whole).abs().max())
        err_monai = float((sliding(volume[None].to(device) / scale, mdcsrn)[0].cpu() * scale - whole).abs().max())
    print(
        f"3D mDCSRN b8u4 over {args.size}^3, {roi}^3 patches: ours (margin 3) {t_ours:.2f} s | "
        f"MONAI SlidingWindowInferer (overlap 0.25, gaussian) {t_monai:.2f} s | ratio {t_monai / t_ours:.2f}x"
    )
    print(f"max |patched - whole-volume|: ours {err_ours:.2e} | MONAI {err_monai:.2e}")


if __name__ == "__main__":
    main()
