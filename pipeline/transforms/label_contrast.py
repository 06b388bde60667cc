# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Synthetic MR contrasts from anatomical label maps, as SynthSR generates its training images.

Every label gets a mean intensity and a spread; each voxel draws its value from its label's
Gaussian, and the result is smoothed (partial volume at tissue boundaries). The means are:

- ``"random"``: drawn uniformly in [0, 1] per label (SynthSR's "any contrast");
- ``"t2"``: T2-weighted-like: cerebrospinal fluid bright, grey matter above white matter;
- ``"flair"``: FLAIR-like: fluid dark (suppressed), grey matter above white matter;

the last two from the tissue class of each label (:data:`MALF_TISSUE_CLASSES`, the MICCAI 2012
Neuromorphometrics protocol: CSF spaces, white-matter structures, everything else grey matter), each
label jittered by ``jitter`` so that structures of one class still differ. Background (label 0)
stays 0, except inside a brain mask when one is given: there label 0 is the unlabelled sulcal and
cisternal fluid (7 % of the mask of MALF scan 1004), drawn as one more CSF structure. Randomness only
through ``self.R`` (seeded with ``set_random_state``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import convert_to_dst_type, convert_to_tensor
from scipy import ndimage

from pipeline.transforms.brain_mask import image_spacing

__all__ = ["CONTRASTS", "MALF_TISSUE_CLASSES", "TISSUE_MEANS", "LabelContrast", "LabelContrastd", "tissue_class"]

CONTRASTS = ("random", "t2", "flair")

MALF_TISSUE_CLASSES: dict[str, frozenset[int]] = {
    # 3rd/4th ventricles, CSF, inferior lateral and lateral ventricles
    "csf": frozenset({4, 11, 46, 49, 50, 51, 52}),
    # brain stem, cerebellar and cerebral white matter, ventral DC, optic chiasm
    "wm": frozenset({35, 40, 41, 44, 45, 61, 62, 69}),
}
"""Neuromorphometrics (MICCAI 2012 MALF) labels by tissue class; any other non-zero label is grey matter."""

TISSUE_MEANS = {
    "t2": {"csf": 1.0, "gm": 0.55, "wm": 0.4},
    "flair": {"csf": 0.08, "gm": 0.65, "wm": 0.45},
}
"""Mean intensity of each tissue class, relative to the brightest (typical 3 T T2w and FLAIR ratios)."""


def tissue_class(label: int) -> str:
    """ "csf", "wm" or "gm" for a non-zero MALF label."""
    for name, labels in MALF_TISSUE_CLASSES.items():
        if label in labels:
            return name
    return "gm"


class LabelContrast(Randomizable, Transform):
    """An MR-like image (1, X, Y, Z) from an integer label map (1, X, Y, Z): a synthetic contrast.

    Args:
        contrast: "random", "t2" or "flair" (see the module docstring).
        jitter: per-label relative spread of the class means ("t2", "flair"); default 0.05.
        noise: per-label standard deviation of the voxel values, as a fraction of the label mean
            (drawn uniformly in [0, ``noise``] for each label); default 0.05.
        smooth_mm: sigma (mm) of the Gaussian smoothing that makes partial volumes; default 0.5.
        scale: the brightest class mean in output units; default 1000.

    Output: float32 of the label map's type and affine (a ``MetaTensor`` stays one).

    Example::

        >>> t2 = LabelContrast("t2")
        >>> t2.set_random_state(seed=0)
        >>> image = t2(labels)   # labels: (1, X, Y, Z) MetaTensor of MALF labels
    """

    def __init__(
        self,
        contrast: str = "random",
        jitter: float = 0.05,
        noise: float = 0.05,
        smooth_mm: float = 0.5,
        scale: float = 1000.0,
    ) -> None:
        if contrast not in CONTRASTS:
            raise ValueError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
        if not (jitter >= 0 and noise >= 0 and smooth_mm >= 0 and scale > 0):
            raise ValueError("jitter, noise and smooth_mm must be >= 0 and scale > 0")
        self.contrast, self.jitter, self.noise, self.smooth_mm, self.scale = contrast, jitter, noise, smooth_mm, scale

    def label_means(self, labels: np.ndarray, fluid: frozenset[int] = frozenset()) -> dict[int, float]:
        """Draw the mean of every non-zero label in ``labels`` (a sorted array of label values).

        ``fluid``: further label values of the CSF class (the unlabelled fluid inside a brain mask).
        """
        if self.contrast == "random":
            return {int(label): float(self.R.uniform(0.0, 1.0)) for label in labels}
        means = TISSUE_MEANS[self.contrast]
        return {
            int(label): means["csf" if int(label) in fluid else tissue_class(int(label))]
            * float(1 + self.jitter * self.R.uniform(-1, 1))
            for label in labels
        }

    def __call__(self, img: NdarrayOrTensor, mask: NdarrayOrTensor | None = None) -> NdarrayOrTensor:
        """The synthetic image of the label map ``img`` (1, X, Y, Z).

        ``mask``: the brain mask (1, X, Y, Z) on the same grid, or ``None``; label-0 voxels inside it are fluid.
        """
        arr = convert_to_tensor(img, track_meta=False).detach().cpu().numpy()
        if arr.ndim != 4 or arr.shape[0] != 1:
            raise ValueError(f"expected a channel-first (1, X, Y, Z) label map, got shape {arr.shape}")
        labels = np.rint(arr[0]).astype(np.int64)
        fluid: frozenset[int] = frozenset()
        if mask is not None:
            inside = np.asarray(convert_to_tensor(mask, track_meta=False).cpu().numpy()).reshape(arr.shape)[0] > 0
            unlabelled = inside & (labels == 0)
            if unlabelled.any():
                fluid_label = int(labels.max()) + 1
                labels = np.where(unlabelled, fluid_label, labels)
                fluid = frozenset({fluid_label})
        present = np.unique(labels[labels != 0])
        means = self.label_means(present, fluid)
        lookup_mean = np.zeros(int(labels.max()) + 1 if labels.size else 1)
        lookup_sd = np.zeros_like(lookup_mean)
        for label, mean in means.items():
            lookup_mean[label] = mean
            lookup_sd[label] = mean * self.R.uniform(0.0, self.noise)
        index = np.clip(labels, 0, None)
        out = lookup_mean[index] + lookup_sd[index] * self.R.standard_normal(labels.shape)
        out[labels == 0] = 0.0
        if self.smooth_mm > 0:
            out = ndimage.gaussian_filter(out, self.smooth_mm / image_spacing(img))
        out = np.clip(out, 0.0, None) * (self.scale / max(max(means.values(), default=1.0), 1e-6))
        result, *_ = convert_to_dst_type(torch.from_numpy(out.astype(np.float32)[None]), img, dtype=torch.float32)
        return result


class LabelContrastd(Randomizable, MapTransform):
    """Dictionary version of :class:`LabelContrast`: ``output_key`` = the synthetic image of ``keys``' label map.

    Args:
        keys: the label map key (one).
        output_key: where the image is written (default "image").
        mask_key: the brain mask whose unlabelled voxels are fluid (``None``: label 0 is background everywhere).
        kwargs: :class:`LabelContrast` arguments.
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_key: str = "image",
        allow_missing_keys: bool = False,
        mask_key: str | None = None,
        **kwargs,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.output_key, self.mask_key = output_key, mask_key
        self.contrast = LabelContrast(**kwargs)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> LabelContrastd:
        super().set_random_state(seed, state)
        self.contrast.set_random_state(seed, state)
        return self

    def randomize(self, data: object = None) -> None:
        """Randomness lives in the wrapped :class:`LabelContrast`."""

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.output_key] = self.contrast(d[key], d.get(self.mask_key) if self.mask_key else None)
        return d
