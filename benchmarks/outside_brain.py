"""Does a network degrade a head with skull outside the brain? Colin27's full head, network vs cubic B-spline.

The networks are trained on skull-stripped brains. Users give them heads with scalp, skull, eyes and
neck. For each protocol, Colin27's 1 mm T1 head (``../shared/data/colin27/ch2.nii.gz``) is degraded,
super-resolved by cubic B-spline and by each bundle, and scored (PSNR, data range = HR max - min in the
head) in three regions: the brain (``ch2bet`` > 0), the head outside the brain (scalp, skull, neck: the
project's ``BrainMask(region="head")`` minus the brain), and the whole head. No assertion: a measurement.

Usage:
    python benchmarks/outside_brain.py --protocols thick-4mm thick-5mm-gap1mm --bundles thick_slice
    python benchmarks/outside_brain.py --protocols bicubic-x2 --bundles rrlsrn --csv out.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pipeline.evaluation.metrics import data_range, psnr
from pipeline.inference import load_method, make_baseline
from pipeline.io import load_volume
from pipeline.protocols import crop_to_multiple, get_protocol
from pipeline.transforms import BrainMask
from pipeline.transforms.grid import spacing_from_affine

COLIN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "colin27"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocols", nargs="+", default=["thick-4mm"])
    parser.add_argument("--bundles", nargs="+", default=["thick_slice"])
    parser.add_argument("--colin27", default=str(COLIN), help="folder with ch2.nii.gz and ch2bet.nii.gz")
    parser.add_argument("--precision", default=None)
    parser.add_argument("--csv", help="also write the table here")
    args = parser.parse_args()
    head_full = load_volume(Path(args.colin27) / "ch2.nii.gz")
    brain_full = load_volume(Path(args.colin27) / "ch2bet.nii.gz")
    methods = [make_baseline("cubic"), *(load_method(b, precision=args.precision) for b in args.bundles)]
    rows = []
    for name in args.protocols:
        protocol = get_protocol(name)
        zoom = list(protocol.zoom_for(spacing_from_affine(head_full.affine)))
        head, brain = crop_to_multiple(head_full, zoom), crop_to_multiple(brain_full, zoom)
        lr = protocol.degrade(head)
        in_head = BrainMask(region="head")(head)[0].numpy().astype(bool)
        in_brain = brain[0].numpy() > 0
        regions = {"brain": in_brain, "head outside brain": in_head & ~in_brain, "whole head": in_head}
        hr = head[0].numpy()
        value_range = data_range(hr, in_head)
        for method in methods:
            sr = method(lr, zoom)[0].float().numpy()
            row = {"protocol": name, "method": method.name}
            row.update({region: round(psnr(sr, hr, mask, value_range), 3) for region, mask in regions.items()})
            rows.append(row)
            print(row, flush=True)
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
