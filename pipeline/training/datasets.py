# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Training and validation datasets built from a manifest split and a named degradation protocol.

Training: each scan's HR volume and brain mask are loaded, the LR is synthesised on the fly and
brought to the network's input grid, all cached once per scan (``CacheDataset``); every access then
draws fresh random aligned patch pairs inside the mask. One item = ``num_samples`` pairs, so a
``DataLoader`` batch of ``b`` items holds ``b · num_samples`` patches. With a domain-randomisation
recipe (``domain``), only the loaded volumes are cached: every access crops a random box around the
brain, augments the HR (:func:`~pipeline.transforms.domain.domain_randomization`), synthesises the LR
from the augmented HR, adds acquisition noise to the LR on its own grid, and samples the patches.

Validation: whole volumes on the LR grid (``NetworkSR`` does the upsampling, as at inference),
intensities divided by the HR's robust maximum, plus the non-learned baseline, cached per scan;
optionally the same scans again under further protocols (e.g. with noise), so that checkpoints of a
domain-randomised run are chosen on clean and shifted inputs together.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from monai.data import CacheDataset
from torch.utils.data import ConcatDataset, Dataset
from monai.transforms import Compose, DeleteItemsd, MapTransform

from pipeline.inference.network_method import choose_slice_axis
from pipeline.manifests import read_manifest, row_path, scan_id
from pipeline.protocols import get_protocol
from pipeline.transforms.brain_crop import RandBrainBoxd, brain_crops
from pipeline.transforms.domain import RandLRNoised, domain_randomization
from pipeline.training.patches import RandPairedPatchd
from pipeline.training.volumes import BaselineSRd, LoadVolumed, SynthesizeLRd, ToNetworkInputd, input_zoom

__all__ = ["augmented_volumes", "scan_records", "training_dataset", "validation_dataset"]


def scan_records(
    manifest: str | os.PathLike,
    split: str,
    *,
    data_root: str | os.PathLike | None = None,
    max_scans: int | None = None,
    with_labels: bool = False,
) -> list[dict[str, str]]:
    """The ``split`` rows of a manifest as ``{"scan_id", "subject_id", "hr", "mask"}`` dicts (absolute paths).

    Args:
        manifest: CSV manifest (``data_manifests/README.md``); rows need ``hr``; an empty ``mask`` is
            computed from the HR with ``BrainMask`` when loaded, as in ``mrisr evaluate``
            (:func:`pipeline.pairs.brain_mask`).
        split: "train", "val" or "test".
        data_root: folder that relative paths resolve against (default: the manifest's folder).
        max_scans: keep only the first ``max_scans`` rows (quick runs); ``None`` keeps all.
        with_labels: also ``"labels"``, the anatomical label map, for rows that have one.
    """
    table = read_manifest(manifest, data_root=data_root, split=split, require=("hr",))
    if max_scans is not None:
        if max_scans < 1:
            raise ValueError(f"max_scans must be >= 1 or None, got {max_scans}")
        table = table.iloc[:max_scans]
    records = []
    for _, row in table.iterrows():
        record = {
            "scan_id": scan_id(row),
            "subject_id": str(row["subject_id"]),
            "hr": row_path(row, "hr"),
            "mask": row_path(row, "mask"),
        }
        labels = row_path(row, "labels") if with_labels else None
        if labels:
            record["labels"] = labels
        records.append(record)
    return records


def augmented_volumes(
    domain: Mapping[str, Any], box: Sequence[int] | None
) -> tuple[list[MapTransform], RandLRNoised]:
    """Load, crop and augment one scan's volumes; and the LR noise of the same recipe.

    Returns:
        ``(transforms, lr_noise)``: loading of ``hr``, ``mask`` and (if listed) ``labels``, a random box
        of ``box`` voxels around the brain (``None``: the whole volume), the recipe's object transforms on
        the HR, and the label map dropped; ``lr_noise`` goes after the LR synthesis.
    """
    keys = ["hr", "mask", "labels"]
    object_transforms, lr_noise = domain_randomization(domain)
    transforms: list[MapTransform] = [LoadVolumed(keys, allow_missing_keys=True)]
    if box is not None:
        transforms.append(RandBrainBoxd(keys, box, allow_missing_keys=True))
    transforms += [*object_transforms, DeleteItemsd("labels")]
    return transforms, lr_noise


def training_dataset(
    manifest: str | os.PathLike,
    protocol: str,
    upsampling: str,
    spatial_dims: int,
    patch_size: Sequence[int],
    *,
    split: str = "train",
    data_root: str | os.PathLike | None = None,
    num_samples: int = 16,
    slice_axis: int | None = None,
    scale_reference: Literal["lr", "hr"] = "lr",
    max_scans: int | None = None,
    cache_rate: float = 1.0,
    num_workers: int = 0,
    seed: int = 0,
    domain: Mapping[str, Any] | None = None,
    box: Sequence[int] | None = None,
) -> CacheDataset:
    """Random aligned patch pairs ``{"lr": (1, *patch), "hr": (1, *patch·zoom), ...}`` of a manifest split.

    Args:
        manifest: CSV manifest with ``hr`` and ``mask`` columns.
        protocol: degradation protocol name (``pipeline.protocols``), e.g. "bicubic-x2".
        upsampling: the network's input grid, as ``NetworkSR``'s ``upsampling``.
        spatial_dims: 2 (slice patches) or 3.
        patch_size: patch size on the network input grid (2 or 3 values, see ``spatial_dims``).
        split: manifest split to use.
        data_root: folder that relative manifest paths resolve against.
        num_samples: patch pairs per scan and access.
        slice_axis: 2D only: axis to slice across; ``None`` = the axis ``NetworkSR`` slices across by
            default for this zoom (:func:`pipeline.inference.choose_slice_axis`).
        scale_reference: robust-maximum reference for the intensity scaling ("lr" as at inference).
        max_scans: use only the first scans (quick runs).
        cache_rate: fraction of the prepared scans kept in memory.
        num_workers: threads that prepare the cache.
        seed: seeds the patch sampler (``set_determinism`` and the DataLoader reseed it as usual).
        domain: a domain-randomisation recipe (:class:`~pipeline.transforms.domain.DomainRecipe` fields;
            ``{}`` = its defaults); ``None`` trains on the scans as they are.
        box: with ``domain``: the HR box (voxels; non-positive = whole axis) cropped around a random brain
            voxel before augmenting, so an access costs little more than its patches.
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    proto = get_protocol(protocol)
    if spatial_dims == 2 and slice_axis is None:
        slice_axis = choose_slice_axis(proto.zoom)
    zoom = input_zoom(proto.zoom, upsampling)
    sampler = RandPairedPatchd(
        patch_size, zoom=zoom, num_samples=num_samples, slice_axis=slice_axis if spatial_dims == 2 else None
    )
    if domain is None:
        steps = [LoadVolumed(["hr", "mask"]), SynthesizeLRd(proto, upsampling, scale_reference=scale_reference)]
    else:
        volumes, lr_noise = augmented_volumes(domain, box)
        steps = [
            *volumes,
            SynthesizeLRd(proto, "network", scale_reference=scale_reference),
            lr_noise,
            ToNetworkInputd(upsampling),
        ]
    transform = Compose([*steps, sampler])
    transform.set_random_state(seed=seed)
    records = scan_records(manifest, split, data_root=data_root, max_scans=max_scans, with_labels=domain is not None)
    return CacheDataset(
        records, transform, cache_rate=cache_rate, num_workers=num_workers, progress=False, copy_cache=False
    )


def validation_dataset(
    manifest: str | os.PathLike,
    protocol: str,
    *,
    split: str = "val",
    data_root: str | os.PathLike | None = None,
    baseline: str = "cubic",
    max_scans: int | None = None,
    crop_to_mask: bool = True,
    crop_size: Sequence[int] | None = None,
    cache_rate: float = 1.0,
    num_workers: int = 0,
    extra_protocols: Sequence[str] = (),
) -> Dataset:
    """Whole validation volumes ``{"lr", "hr", "mask", "baseline", "intensity_divisor", "scan_id", ...}``.

    ``lr`` is on the LR grid, (1, x, y, z); ``hr``, ``mask`` (bool) and ``baseline`` are on the HR
    grid, (1, X, Y, Z); intensities are divided by the HR's robust maximum ``intensity_divisor``, so PSNR with
    data range 1 refers to it. Arguments as in :func:`training_dataset`; ``baseline`` names the
    non-learned method compared against (``pipeline.inference.BASELINE_NAMES``).

    ``crop_to_mask`` crops HR and mask to the mask's bounding box plus ``BRAIN_CROP_MARGIN`` (8)
    voxels (a multiple of the zoom) before the LR is made: PSNR in the mask is unchanged for
    skull-stripped scans and a network runs on fewer voxels (11–19 % fewer on the MALF val scans).
    ``crop_size`` (HR voxels, multiples of the zoom) further keeps only a central block of the brain:
    a cheaper, noisier model-selection signal for networks too slow to run on whole volumes every
    epoch (CPU training). The LR is made from the block, so the block's faces, which cut through
    tissue, act as edges: harmless for local degradations (blur, bicubic), but k-space truncation
    spreads their ringing over the whole block (measured on 64^3 blocks of MALF val scans 1003 and
    1004, ``kspace-2x2``: the zero-filled input scores 1.35 dB below cubic there, 0.34 dB above it on
    the whole brain). Use whole volumes (``crop_size=None``) for k-space protocols.

    ``extra_protocols`` (e.g. ``["bicubic-x2+rician3"]``) adds every scan once more per protocol, its
    ``scan_id`` suffixed ``@<protocol>``: the validation metrics, means over items, then weigh clean
    and shifted inputs alike. Each must have the zoom of ``protocol`` (one network input grid).
    """
    records = scan_records(manifest, split, data_root=data_root, max_scans=max_scans)
    protocols = [get_protocol(name) for name in (protocol, *extra_protocols)]
    zoom = protocols[0].zoom
    parts = []
    for number, proto in enumerate(protocols):
        if tuple(proto.zoom) != tuple(zoom):
            raise ValueError(f"validation protocol {proto.name!r} has zoom {proto.zoom}, {protocol!r} has {zoom}")
        transform = Compose(
            [
                LoadVolumed(["hr", "mask"]),
                *brain_crops(proto.zoom, crop_to_mask, crop_size),
                SynthesizeLRd(proto, "network", scale_reference="hr"),
                BaselineSRd(proto.zoom, baseline),
            ]
        )
        suffix = "" if number == 0 else f"@{proto.name}"
        items = [{**record, "scan_id": f"{record['scan_id']}{suffix}"} for record in records]
        parts.append(
            CacheDataset(
                items, transform, cache_rate=cache_rate, num_workers=num_workers, progress=False, copy_cache=False
            )
        )
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)
