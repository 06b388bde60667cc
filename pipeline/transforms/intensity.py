# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Robust intensity normalisation inside a brain mask, and its exact inverse.

MR intensities have no absolute unit, so networks are trained on volumes scaled to a common
range. :class:`NormalizeIntensityInMask` maps two robust percentiles of the intensities inside
the brain to a target range and records what it did in ``meta["intensity_normalization"]``;
:class:`DenormalizeIntensity` reads that record and returns network outputs to the input's units.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from pipeline.transforms.brain_mask import as_mask, paired_keys, source_name

__all__ = [
    "NORMALIZATION_META_KEY",
    "NormalizeIntensityInMask",
    "NormalizeIntensityInMaskd",
    "NormalizeIntensityInMaskD",
    "NormalizeIntensityInMaskDict",
    "DenormalizeIntensity",
    "DenormalizeIntensityd",
    "DenormalizeIntensityD",
    "DenormalizeIntensityDict",
]

NORMALIZATION_META_KEY = "intensity_normalization"
_PARAM_KEYS = ("a_min", "a_max", "b_min", "b_max")


class NormalizeIntensityInMask(Transform):
    """Robust percentile scaling of intensities, with the percentiles taken inside a brain mask.

    With :math:`a_{lo}, a_{hi}` the ``lower`` and ``upper`` percentiles of the intensities
    inside the mask, every voxel (inside and outside the mask) is mapped linearly:

    .. math::

        y = b_{min} + (x - a_{lo}) \\frac{b_{max} - b_{min}}{a_{hi} - a_{lo}}

    and, if ``clip`` is set, clipped to :math:`[b_{min}, b_{max}]`. The parameters
    ``{"a_min": a_lo, "a_max": a_hi, "b_min", "b_max", "lower", "upper", "clip"}`` (plain floats
    and a bool: JSON-serialisable) are stored in the output's ``meta["intensity_normalization"]``
    so that :class:`DenormalizeIntensity` can invert the mapping exactly (up to float32 rounding;
    clipped voxels cannot be recovered).

    Args:
        lower: lower percentile in [0, 100) of the intensities inside the mask; default 0.5.
        upper: upper percentile in (lower, 100]; default 99.5.
        b_min: value the ``lower`` percentile is mapped to; default 0.
        b_max: value the ``upper`` percentile is mapped to; default 1 (must differ from ``b_min``).
        clip: clip the output to ``[min(b_min, b_max), max(b_min, b_max)]``; default False, so
            the mapping is invertible everywhere.
        dtype: output dtype; default float32.

    Note:
        With no mask, the percentiles are taken over the voxels with intensity > 0 (the brain of
        a skull-stripped scan, or the head of a scan with a zero background). The mask may be
        (X, Y, Z) or (1, X, Y, Z); non-zero voxels are inside. An empty mask (or no positive
        voxel when no mask is given) raises ``ValueError`` naming the file, as does a constant
        intensity inside the mask (:math:`a_{hi} = a_{lo}`). Input: channel-first (C, X, Y, Z)
        ``MetaTensor``, tensor or NumPy array; the percentiles pool all channels. Parameters are
        recorded only on a ``MetaTensor`` output; for plain arrays use :meth:`compute_params` and
        pass the result to :class:`DenormalizeIntensity`.

    Example::

        >>> norm = NormalizeIntensityInMask(lower=0.5, upper=99.5)
        >>> out = norm(image, mask=brain_mask)          # (1, X, Y, Z) MetaTensor
        >>> out.meta["intensity_normalization"]["a_max"]  # 99.5th percentile, input units
        1534.0
        >>> restored = DenormalizeIntensity()(out)      # back to the input's units
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        lower: float = 0.5,
        upper: float = 99.5,
        b_min: float = 0.0,
        b_max: float = 1.0,
        clip: bool = False,
        dtype: torch.dtype | np.dtype | type = torch.float32,
    ) -> None:
        if not 0.0 <= lower < upper <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= lower < upper <= 100, got lower={lower}, upper={upper}")
        if not (np.isfinite(b_min) and np.isfinite(b_max)) or b_min == b_max:
            raise ValueError(f"b_min and b_max must be finite and different, got b_min={b_min}, b_max={b_max}")
        self.lower = float(lower)
        self.upper = float(upper)
        self.b_min = float(b_min)
        self.b_max = float(b_max)
        self.clip = bool(clip)
        self.dtype = dtype

    def compute_params(self, img: NdarrayOrTensor, mask: NdarrayOrTensor | None = None) -> dict[str, Any]:
        """The mapping's parameters for ``img`` (C, X, Y, Z) inside ``mask``, as a JSON-serialisable dict.

        Raises:
            ValueError: empty mask (or no voxel > 0 without a mask), or constant intensity inside it.
        """
        name = source_name(img)
        arr = convert_to_tensor(img, track_meta=False).detach().cpu().numpy()
        inside = arr > 0 if mask is None else as_mask(mask, arr.shape, name)
        values = arr[inside]
        if values.size == 0:
            what = "no voxel > 0 (and no mask was given)" if mask is None else "the brain mask is empty"
            raise ValueError(f"{name}: cannot normalise intensities: {what}")
        a_min, a_max = (float(v) for v in np.percentile(values.astype(np.float64), [self.lower, self.upper]))
        if a_max <= a_min:
            raise ValueError(
                f"{name}: intensities inside the mask are constant between the {self.lower} and {self.upper} "
                f"percentiles ({a_min:g}); cannot normalise"
            )
        return {
            "a_min": a_min,
            "a_max": a_max,
            "b_min": self.b_min,
            "b_max": self.b_max,
            "lower": self.lower,
            "upper": self.upper,
            "clip": self.clip,
        }

    def __call__(self, img: NdarrayOrTensor, mask: NdarrayOrTensor | None = None) -> NdarrayOrTensor:
        """Normalise ``img`` (C, X, Y, Z); ``mask`` is (X, Y, Z) or (1, X, Y, Z), non-zero = brain."""
        params = self.compute_params(img, mask)
        x = convert_to_tensor(img, track_meta=False, dtype=torch.float64)
        scale = (params["b_max"] - params["b_min"]) / (params["a_max"] - params["a_min"])
        y = (x - params["a_min"]) * scale + params["b_min"]
        if self.clip:
            y = y.clamp(min(self.b_min, self.b_max), max(self.b_min, self.b_max))
        out, *_ = convert_to_dst_type(y, img, dtype=self.dtype)
        if isinstance(out, MetaTensor) and get_track_meta():
            out.meta[NORMALIZATION_META_KEY] = params
        return out


class DenormalizeIntensity(Transform):
    """Invert :class:`NormalizeIntensityInMask`: return intensities to the input's units.

    .. math::

        x = a_{min} + (y - b_{min}) \\frac{a_{max} - a_{min}}{b_{max} - b_{min}}

    The parameters come, in this order of precedence, from the ``params`` given to
    ``__call__``, the ``params`` given to the constructor, or ``meta["intensity_normalization"]``
    of the input ``MetaTensor``. The record is removed from the output's meta.

    Args:
        params: a mapping with at least ``a_min``, ``a_max``, ``b_min``, ``b_max`` (as stored by
            :class:`NormalizeIntensityInMask`); default None (read from the image's meta).
        dtype: output dtype; default float32.

    Example::

        >>> normed = NormalizeIntensityInMask()(image, mask)
        >>> sr = network(normed)                  # keeps normed's meta (e.g. via MetaTensor ops)
        >>> DenormalizeIntensity()(sr)            # in the units of ``image``
        >>> DenormalizeIntensity(params=normed.meta["intensity_normalization"])(plain_array)
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self, params: Mapping[str, Any] | None = None, dtype: torch.dtype | np.dtype | type = torch.float32
    ) -> None:
        self.params = None if params is None else self._check_params(params, "params")
        self.dtype = dtype

    @staticmethod
    def _check_params(params: Mapping[str, Any], name: str) -> dict[str, float]:
        missing = [k for k in _PARAM_KEYS if k not in params]
        if missing:
            raise ValueError(f"{name}: intensity normalisation parameters lack {missing}")
        out = {k: float(params[k]) for k in _PARAM_KEYS}
        if out["a_max"] == out["a_min"] or out["b_max"] == out["b_min"]:
            raise ValueError(f"{name}: degenerate intensity normalisation parameters {out}")
        return out

    def __call__(self, img: NdarrayOrTensor, params: Mapping[str, Any] | None = None) -> NdarrayOrTensor:
        """Denormalise ``img`` (C, X, Y, Z) with ``params`` (or the constructor's, or the image's meta)."""
        name = source_name(img)
        if params is not None:
            p = self._check_params(params, name)
        elif self.params is not None:
            p = self.params
        elif isinstance(img, MetaTensor) and NORMALIZATION_META_KEY in img.meta:
            p = self._check_params(img.meta[NORMALIZATION_META_KEY], name)
        else:
            raise ValueError(
                f"{name}: no intensity normalisation parameters: pass params or an image whose "
                f"meta holds '{NORMALIZATION_META_KEY}'"
            )
        y = convert_to_tensor(img, track_meta=False, dtype=torch.float64)
        x = (y - p["b_min"]) * ((p["a_max"] - p["a_min"]) / (p["b_max"] - p["b_min"])) + p["a_min"]
        out, *_ = convert_to_dst_type(x, img, dtype=self.dtype)
        if isinstance(out, MetaTensor):
            out.meta.pop(NORMALIZATION_META_KEY, None)
        return out


class NormalizeIntensityInMaskd(MapTransform):
    """Dictionary version of :class:`NormalizeIntensityInMask`.

    Args:
        keys: keys of the images to normalise.
        mask_key: key of the brain mask (one for all keys, or one per key); default None
            (voxels > 0 of each image).
        lower, upper, b_min, b_max, clip, dtype: see :class:`NormalizeIntensityInMask`.
        allow_missing_keys: skip keys absent from the data instead of raising ``KeyError``.

    Example::

        >>> t = NormalizeIntensityInMaskd(keys="image", mask_key="mask")
        >>> out = t({"image": image, "mask": mask})
        >>> out["image"].meta["intensity_normalization"]
    """

    backend = NormalizeIntensityInMask.backend

    def __init__(
        self,
        keys: KeysCollection,
        mask_key: str | Sequence[str] | None = None,
        lower: float = 0.5,
        upper: float = 99.5,
        b_min: float = 0.0,
        b_max: float = 1.0,
        clip: bool = False,
        dtype: torch.dtype | np.dtype | type = torch.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mask_keys = paired_keys(self.keys, mask_key, "mask_key")
        self.normalizer = NormalizeIntensityInMask(
            lower=lower, upper=upper, b_min=b_min, b_max=b_max, clip=clip, dtype=dtype
        )

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key, mask_key in self.key_iterator(d, self.mask_keys):
            d[key] = self.normalizer(d[key], mask=None if mask_key is None else d[mask_key])
        return d


class DenormalizeIntensityd(MapTransform):
    """Dictionary version of :class:`DenormalizeIntensity`.

    Args:
        keys: keys of the images to return to the original units.
        reference_key: key whose ``MetaTensor`` meta holds the parameters (e.g. the normalised
            input, when ``keys`` is a network's prediction); default None (each image's own meta).
        params: explicit parameters, overriding ``reference_key`` and the images' meta.
        dtype: output dtype; default float32.
        allow_missing_keys: skip keys absent from the data instead of raising ``KeyError``.

    Example::

        >>> t = DenormalizeIntensityd(keys="pred", reference_key="image")
        >>> out = t({"image": normalised_image, "pred": prediction})
    """

    backend = DenormalizeIntensity.backend

    def __init__(
        self,
        keys: KeysCollection,
        reference_key: str | None = None,
        params: Mapping[str, Any] | None = None,
        dtype: torch.dtype | np.dtype | type = torch.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reference_key = reference_key
        self.denormalizer = DenormalizeIntensity(params=params, dtype=dtype)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        params = None
        if self.denormalizer.params is None and self.reference_key is not None:
            ref = d[self.reference_key]
            if not (isinstance(ref, MetaTensor) and NORMALIZATION_META_KEY in ref.meta):
                raise ValueError(
                    f"{source_name(ref)}: reference '{self.reference_key}' holds no '{NORMALIZATION_META_KEY}' meta"
                )
            params = ref.meta[NORMALIZATION_META_KEY]
        for key in self.key_iterator(d):
            d[key] = self.denormalizer(d[key], params=params)
        return d


NormalizeIntensityInMaskD = NormalizeIntensityInMaskDict = NormalizeIntensityInMaskd
DenormalizeIntensityD = DenormalizeIntensityDict = DenormalizeIntensityd
