# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Domain randomisation for training: contrasts, bias fields, noise, intensity scale and background
that the 15 skull-stripped OASIS T1 training scans do not have.

:func:`domain_randomization` returns the two halves of one recipe (:class:`DomainRecipe`):

- **object** transforms, applied to the HR volume *before* the LR is synthesised from it, so LR and
  HR share them (they change the imaged object, or a smooth receive field):
  a synthetic contrast from the label map (:class:`RandLabelContrastd`, as SynthSR trains),
  a T2-like inversion (:class:`RandInvertContrastd`), a random gamma (MONAI ``RandAdjustContrastd``),
  a random monotone contrast curve (MONAI ``RandHistogramShiftd``), a random bias field (MONAI
  ``RandBiasFieldd``), a random global scale and offset (MONAI ``RandScaleIntensityd``,
  ``RandStdShiftIntensityd``) and a random background outside the brain (:class:`RandBackgroundd`:
  zeros, a noise floor, or a head-like shell of scalp and skull);
- **acquisition** noise, applied to the LR only, on its own grid, after synthesis and before any
  interpolation to the network's input grid (:class:`RandLRNoise`): Rician or Gaussian noise (MONAI
  ``RandRicianNoise`` / ``RandGaussianNoise``) with a random standard deviation, a fraction of the LR's
  robust maximum (a random signal-to-noise ratio).

MONAI has the gamma, curve, bias, scale, offset and noise transforms; it lacks a label-map contrast
draw, an inversion inside the head and a synthetic head around a skull-stripped brain, which are
written here. Every transform draws only from its own ``R`` (``set_random_state``), as MONAI's do.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import (
    Compose,
    Identityd,
    MapTransform,
    OneOf,
    RandAdjustContrastd,
    RandBiasFieldd,
    RandGaussianNoise,
    RandHistogramShiftd,
    Randomizable,
    RandRicianNoise,
    RandScaleIntensityd,
    RandStdShiftIntensityd,
    Transform,
)
from monai.utils import convert_to_dst_type, convert_to_tensor
from scipy import ndimage

from pipeline.scaling import robust_intensity_scale
from pipeline.transforms.brain_mask import image_spacing
from pipeline.transforms.label_contrast import CONTRASTS, LabelContrast

__all__ = [
    "BACKGROUNDS",
    "NOISE_KINDS",
    "DomainRecipe",
    "RandBackgroundd",
    "RandInvertContrastd",
    "RandLabelContrastd",
    "RandLRNoise",
    "RandLRNoised",
    "domain_randomization",
    "invert_inside",
]

BACKGROUNDS = ("zeros", "noise", "shell")
NOISE_KINDS = ("rician", "gaussian")


def invert_inside(image: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """``top - x`` clipped at 0 where ``inside`` (``top``: the 99.5th percentile there), ``image`` elsewhere.

    Fluid that was dark becomes bright and white matter dark: a T2-like ordering with the scan's own
    texture. Float32, the shape of ``image``; ``inside`` is a boolean array of the same shape.
    """
    top = float(np.percentile(image[inside], 99.5)) if inside.any() else 0.0
    return np.where(inside, np.clip(top - image, 0.0, None), image).astype(np.float32)


def _foreground(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The object's voxels: the mask when given, else the voxels above 1 % of the robust maximum."""
    if mask is not None:
        return mask.astype(bool)
    return image > 0.01 * robust_intensity_scale(image)


class RandInvertContrastd(Randomizable, MapTransform):
    """With probability ``prob``, invert the image inside its foreground: ``top - x`` (clipped at 0).

    ``top`` is the foreground's 99.5th percentile, so fluid that was dark becomes bright and white matter
    dark: a T2-like ordering with the scan's own texture. The background stays as it was.

    Args:
        keys: the (1, X, Y, Z) images to invert (one draw for all).
        mask_key: the foreground mask; missing = voxels above 1 % of the robust maximum.
        prob: probability of inverting.
    """

    def __init__(self, keys: KeysCollection, mask_key: str | None = "mask", prob: float = 0.2) -> None:
        MapTransform.__init__(self, keys)
        self.mask_key, self.prob = mask_key, prob
        self._do = False

    def randomize(self, data: Any = None) -> None:
        self._do = self.R.rand() < self.prob

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize()
        if not self._do:
            return d
        mask = d.get(self.mask_key) if self.mask_key else None
        for key in self.key_iterator(d):
            image = convert_to_tensor(d[key], track_meta=False).float().numpy()
            inside = _foreground(image, None if mask is None else np.asarray(mask, dtype=bool).reshape(image.shape))
            out = invert_inside(image, inside)
            d[key], *_ = convert_to_dst_type(torch.from_numpy(out), d[key], dtype=torch.float32)
        return d


class RandLabelContrastd(Randomizable, MapTransform):
    """With probability ``prob``, replace the image by a synthetic contrast of its label map.

    The contrast is drawn among ``contrasts`` (:class:`~pipeline.transforms.label_contrast.LabelContrast`:
    "random" means per label, or T2-/FLAIR-like tissue means), scaled to the image's robust maximum so
    that intensity statistics stay in range. Scans without a label map are left as they are.

    Args:
        keys: the (1, X, Y, Z) image(s) to replace.
        label_key: the (1, X, Y, Z) integer label map on the same grid.
        mask_key: the brain mask, whose unlabelled voxels (sulcal fluid) are drawn as CSF; ``None``: none.
        prob: probability of replacing.
        contrasts: the contrasts to draw from (uniformly).
        smooth_mm: partial-volume smoothing sigma in mm, drawn uniformly in this range.
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "labels",
        prob: float = 0.2,
        contrasts: Sequence[str] = CONTRASTS,
        smooth_mm: Sequence[float] = (0.3, 0.8),
        mask_key: str | None = "mask",
    ) -> None:
        MapTransform.__init__(self, keys)
        self.mask_key = mask_key
        unknown = set(contrasts) - set(CONTRASTS)
        if unknown:
            raise ValueError(f"unknown contrasts {sorted(unknown)}; choose from {CONTRASTS}")
        self.label_key, self.prob, self.contrasts, self.smooth_mm = label_key, prob, tuple(contrasts), smooth_mm
        self._do, self._contrast, self._smooth, self._seed = False, self.contrasts[0], 0.5, 0

    def randomize(self, data: Any = None) -> None:
        self._do = self.R.rand() < self.prob
        self._contrast = self.contrasts[self.R.randint(len(self.contrasts))]
        self._smooth = float(self.R.uniform(*self.smooth_mm))
        self._seed = int(self.R.randint(2**31 - 1))

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize()
        labels = d.get(self.label_key)
        if not self._do or labels is None:
            return d
        synth = LabelContrast(self._contrast, smooth_mm=self._smooth).set_random_state(seed=self._seed)
        image = synth(labels, d.get(self.mask_key) if self.mask_key else None)
        for key in self.key_iterator(d):
            reference = robust_intensity_scale(convert_to_tensor(d[key], track_meta=False).float().numpy())
            out = image.float() * (reference / robust_intensity_scale(image.float().numpy()))
            d[key], *_ = convert_to_dst_type(out, d[key], dtype=torch.float32)
        return d


class RandBackgroundd(Randomizable, MapTransform):
    """A random background outside the brain mask of a skull-stripped scan.

    One of ``modes``, drawn uniformly:

    - "zeros": the background set to 0;
    - "noise": a magnitude-noise floor (Rayleigh, from two Gaussian channels of standard deviation 0.5-3 %
      of the brain's robust maximum);
    - "shell": a synthetic head: layers by distance to the brain mask (mm): a CSF-like gap (1-3 mm), a dark
      skull (3-8 mm) and a bright scalp (3-7 mm), each with a random intensity and texture, smoothed,
      then a thin noise floor beyond. The layers follow the mask's shape, as a real head does.

    Voxels inside the mask are never changed.

    Args:
        keys: the (1, X, Y, Z) image(s) (one draw for all).
        mask_key: the brain mask (1, X, Y, Z).
        prob: probability of changing the background at all.
        modes: the backgrounds to draw from.
    """

    def __init__(
        self, keys: KeysCollection, mask_key: str = "mask", prob: float = 0.5, modes: Sequence[str] = BACKGROUNDS
    ) -> None:
        MapTransform.__init__(self, keys)
        unknown = set(modes) - set(BACKGROUNDS)
        if unknown:
            raise ValueError(f"unknown background modes {sorted(unknown)}; choose from {BACKGROUNDS}")
        self.mask_key, self.prob, self.modes = mask_key, prob, tuple(modes)
        self._do, self._mode = False, self.modes[0]

    def randomize(self, data: Any = None) -> None:
        self._do = self.R.rand() < self.prob
        self._mode = self.modes[self.R.randint(len(self.modes))]

    def _noise_floor(self, shape: Sequence[int], level: float) -> np.ndarray:
        real, imaginary = self.R.normal(0.0, level, shape), self.R.normal(0.0, level, shape)
        return np.hypot(real, imaginary)

    def _shell(self, mask: np.ndarray, spacing: np.ndarray, top: float) -> np.ndarray:
        distance = ndimage.distance_transform_edt(~mask, sampling=spacing)
        gap = self.R.uniform(1.0, 3.0)
        skull = gap + self.R.uniform(3.0, 8.0)
        scalp = skull + self.R.uniform(3.0, 7.0)
        levels = (self.R.uniform(0.1, 0.5), self.R.uniform(0.0, 0.15), self.R.uniform(0.4, 1.2))
        shell = np.zeros(mask.shape, np.float32)
        for (lo, hi), level in zip(((0.0, gap), (gap, skull), (skull, scalp)), levels):
            layer = (distance > lo) & (distance <= hi)
            shell[layer] = level * top
        texture = ndimage.gaussian_filter(self.R.normal(0.0, 1.0, mask.shape), sigma=2.0 / spacing)
        texture /= max(float(texture.std()), 1e-6)
        shell *= np.clip(1.0 + 0.15 * texture, 0.0, None)
        shell = ndimage.gaussian_filter(shell, sigma=0.6 / spacing)
        return shell + self._noise_floor(mask.shape, self.R.uniform(0.002, 0.01) * top)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize()
        if not self._do:
            return d
        mask_value = d[self.mask_key]
        for key in self.key_iterator(d):
            image = convert_to_tensor(d[key], track_meta=False).float().numpy()
            mask = np.asarray(convert_to_tensor(mask_value, track_meta=False).numpy(), dtype=bool).reshape(image.shape)
            top = robust_intensity_scale(image[mask]) if mask.any() else robust_intensity_scale(image)
            if self._mode == "zeros":
                background = np.zeros(image.shape[1:], np.float32)
            elif self._mode == "noise":
                background = self._noise_floor(image.shape[1:], self.R.uniform(0.005, 0.03) * top)
            else:
                background = self._shell(mask[0], image_spacing(d[key]), top)
            out = np.where(mask, image, background[None]).astype(np.float32)
            d[key], *_ = convert_to_dst_type(torch.from_numpy(out), d[key], dtype=torch.float32)
        return d


class RandLRNoise(Randomizable, Transform):
    """With probability ``prob``, Rician or Gaussian noise (one of ``kinds``) on an LR volume, relative to it.

    The standard deviation is drawn uniformly in [``min_std``, ``max_std``] and multiplied by the input's robust
    maximum (99.5th percentile of its positive voxels), so the signal-to-noise ratio is at least
    1 / ``max_std`` whatever the intensity units. Rician noise is the magnitude of complex Gaussian
    noise: what a magnitude image has; Gaussian noise can make voxels negative.

    Args:
        prob: probability of adding noise.
        max_std: largest standard deviation, as a fraction of the robust maximum.
        min_std: smallest one (``min_std = max_std``: a fixed level, as the ``+rician`` protocols use).
        kinds: the noise kinds drawn from ("rician", "gaussian").

    Input and output: a (C, ...) tensor or array (a ``MetaTensor`` stays one).
    """

    def __init__(
        self, prob: float = 0.5, max_std: float = 0.04, min_std: float = 0.0, kinds: Sequence[str] = NOISE_KINDS
    ) -> None:
        if not 0 <= min_std <= max_std:
            raise ValueError(f"need 0 <= min_std <= max_std, got {min_std} and {max_std}")
        if not kinds or set(kinds) - set(NOISE_KINDS):
            raise ValueError(f"kinds must be among {NOISE_KINDS}, got {tuple(kinds)}")
        self.prob, self.max_std, self.min_std, self.kinds = prob, max_std, min_std, tuple(kinds)
        self._rician = RandRicianNoise(prob=1.0, std=1.0, sample_std=False)
        self._gaussian = RandGaussianNoise(prob=1.0, std=1.0, sample_std=False)
        self._do, self._kind, self._std = False, "rician", 0.0

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandLRNoise:
        super().set_random_state(seed, state)
        self._rician.set_random_state(state=self.R)
        self._gaussian.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        self._do = self.R.rand() < self.prob
        self._kind = self.kinds[self.R.randint(len(self.kinds))]
        self._std = float(self.R.uniform(self.min_std, self.max_std))

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        self.randomize()
        if not self._do or self._std == 0.0:
            return img
        data = convert_to_tensor(img, track_meta=False).float()
        scale = robust_intensity_scale(data.numpy())
        noise = self._rician if self._kind == "rician" else self._gaussian
        noise.std = self._std
        out = noise(data / scale, randomize=True) * scale
        result, *_ = convert_to_dst_type(convert_to_tensor(out, track_meta=False), img, dtype=torch.float32)
        return result


class RandLRNoised(Randomizable, MapTransform):
    """Dictionary version of :class:`RandLRNoise` (one draw per key)."""

    def __init__(self, keys: KeysCollection, prob: float = 0.5, max_std: float = 0.04) -> None:
        MapTransform.__init__(self, keys)
        self.noise = RandLRNoise(prob, max_std)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandLRNoised:
        super().set_random_state(seed, state)
        self.noise.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        """Randomness lives in the wrapped :class:`RandLRNoise`."""

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.noise(d[key])
        return d


@dataclass
class DomainRecipe:
    """Probabilities and ranges of one domain-randomisation recipe (bundle configs set these by name).

    Attributes:
        label_contrast: probability of replacing the HR by a synthetic contrast of its label map.
        invert: probability of a T2-like inversion inside the brain.
        gamma: probability of a random gamma, drawn in ``gamma_range``.
        curve: probability of a random monotone contrast curve (``RandHistogramShift``, 5-10 points).
        bias: probability of a random bias field (degree 3, coefficients in ``bias_coefficients``).
        scale: probability of a global scale ``1 + f``, ``f`` in ``scale_range``.
        offset: probability of a global offset of ``f`` times the image's standard deviation, ``f`` in
            ``offset_range``.
        background: probability of a random background (:class:`RandBackgroundd`).
        noise: probability of LR noise (:class:`RandLRNoise`); its standard deviation is drawn in
            [0, ``noise_std``] (fractions of the LR's robust maximum), Rician or Gaussian.
        modes: the backgrounds :class:`RandBackgroundd` draws from.
        object_prob: probability that an access goes through the object transforms at all; the other
            accesses keep the scan's own contrast and background (LR noise is drawn either way). 1.0 (the
            default) sends every access through them, as the recipes before this field did.
    """

    label_contrast: float = 0.15
    invert: float = 0.15
    gamma: float = 0.3
    gamma_range: tuple[float, float] = (0.6, 1.6)
    curve: float = 0.2
    bias: float = 0.4
    bias_coefficients: tuple[float, float] = (0.0, 0.3)
    scale: float = 0.3
    scale_range: tuple[float, float] = (-0.5, 1.0)
    offset: float = 0.1
    offset_range: tuple[float, float] = (-0.1, 0.1)
    background: float = 0.5
    noise: float = 0.5
    noise_std: float = 0.04
    modes: tuple[str, ...] = field(default=BACKGROUNDS)
    object_prob: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.object_prob <= 1.0:
            raise ValueError(f"object_prob must be in [0, 1], got {self.object_prob}")

    def as_dict(self) -> dict[str, Any]:
        """The recipe as plain values (for sidecars and docs)."""
        return asdict(self)


def domain_randomization(
    recipe: DomainRecipe | Mapping[str, Any] | None = None,
    *,
    hr_key: str = "hr",
    lr_key: str = "lr",
    mask_key: str = "mask",
    label_key: str = "labels",
) -> tuple[list[Any], RandLRNoised]:
    """``(object_transforms, lr_noise)`` of one recipe (see the module docstring).

    Args:
        recipe: a :class:`DomainRecipe`, or a mapping of its fields (from a bundle config); ``None`` = defaults.
        hr_key, lr_key, mask_key, label_key: the dictionary keys.

    The object transforms go before the LR synthesis (on the HR; they read the mask and, where present,
    the label map; with ``object_prob`` < 1 they come as one MONAI ``OneOf`` of the chain and nothing);
    ``lr_noise`` after it, on the LR on its own grid (its ``noise`` attribute is the array transform, for
    pipelines that make the LR inside another transform).
    """
    if recipe is None:
        recipe = DomainRecipe()
    elif isinstance(recipe, Mapping):
        recipe = DomainRecipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in recipe.items()})
    r = recipe
    object_transforms = [
        RandLabelContrastd(hr_key, label_key=label_key, prob=r.label_contrast, mask_key=mask_key),
        RandInvertContrastd(hr_key, mask_key=mask_key, prob=r.invert),
        RandAdjustContrastd(hr_key, prob=r.gamma, gamma=r.gamma_range),
        RandHistogramShiftd(hr_key, num_control_points=(5, 10), prob=r.curve),
        RandBackgroundd(hr_key, mask_key=mask_key, prob=r.background, modes=r.modes),
        RandBiasFieldd(hr_key, degree=3, coeff_range=r.bias_coefficients, prob=r.bias),
        RandScaleIntensityd(hr_key, factors=r.scale_range, prob=r.scale),
        RandStdShiftIntensityd(hr_key, factors=r.offset_range, prob=r.offset),
    ]
    if r.object_prob < 1.0:
        # MONAI's OneOf draws, per access, the whole chain or nothing (its Identityd).
        chain = OneOf([Compose(object_transforms), Identityd(hr_key)], weights=[r.object_prob, 1.0 - r.object_prob])
        object_transforms = [chain]
    return object_transforms, RandLRNoised(lr_key, prob=r.noise, max_std=r.noise_std)
