# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Time the Atropos tissue segmentation of ``--downstream tissue`` on real test scans.

Each thread count runs in its own process (ITK reads its thread count at import), so the times are
side by side from one command. Prints, per thread count, the seconds per scan (median of the scans)
and the CPU model. A segmentation runs once per scan and method in ``mrisr evaluate --downstream
tissue`` (plus once for the HR), so this is what the option adds per scan and method.

Usage::

    python benchmarks/segmentation_time.py --manifest data_manifests/malf_dev.csv --split test --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

WORKER = """
import json, sys, time
import numpy as np
from pipeline.evaluation.tissue import segment_tissues
import nibabel as nib
times = []
for hr, mask in json.loads(sys.argv[1]):
    image = nib.load(hr)
    spacing = image.header.get_zooms()[:3]
    brain = np.asarray(nib.load(mask).dataobj) > 0
    image = np.asarray(image.dataobj, dtype=np.float32)
    start = time.perf_counter()
    segment_tissues(image, brain, spacing)
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default="data_manifests/malf_dev.csv")
    parser.add_argument("--split", default="test")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    from pipeline.acceleration.precision import machine_description
    from pipeline.manifests import read_manifest, row_path

    table = read_manifest(args.manifest)
    rows = [row for _, row in table.iterrows() if row["split"] == args.split]
    pairs = json.dumps([[row_path(row, "hr"), row_path(row, "mask")] for row in rows])
    print(f"machine: {machine_description()}; {len(rows)} {args.split} scans")
    for threads in args.threads:
        env = dict(os.environ, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", WORKER, pairs], env=env, check=True, capture_output=True, text=True)
        times = sorted(json.loads(out.stdout.strip().splitlines()[-1]))
        print(
            f"{threads} thread(s): median {times[len(times) // 2]:.1f} s per segmentation "
            f"(min {times[0]:.1f}, max {times[-1]:.1f}); process {time.perf_counter() - start:.0f} s"
        )


if __name__ == "__main__":
    main()
