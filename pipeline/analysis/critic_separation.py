# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Does a WGAN critic tell HR from the generator's output yet? Its score gap on held-out patches.

The adversarial term only pushes the generator towards HR-like texture once the critic scores HR
patches above SR patches of the same place. Before that the critic's gradient follows whatever it
does score (patch content: brightness, tissue mix), and generator steps trade PSNR for nothing. This
measures, for a training checkpoint (``models/checkpoint.pt`` with ``critic`` and ``network``), the gap
``D(hr) - D(G(lr))`` on random patch pairs of one manifest split (``val`` by default: never trained on),
next to the spread of ``D(hr)`` across patches (how much the critic's score follows content).

Usage::

    mrisr report critic-separation bundles/mdcsrn_gan --passes 4

prints the checkpoint's iteration, the gap's mean and sd, the fraction of patches with a positive gap,
and the sd of ``D(hr)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from monai.utils import set_determinism

from pipeline.training.engines import prepare_sr_batch
from pipeline.training.config_layers import config_layers

__all__ = ["critic_separation"]


def critic_separation(
    bundle_root: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    config_files: tuple[str, ...] = ("train.json", "train_cpu.json"),
    split: str = "val",
    passes: int = 4,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Score gap of the checkpoint's critic between HR and generator patches of ``split``.

    Args:
        bundle_root: the GAN bundle (its ``configs/`` build the generator, critic and patch dataset).
        checkpoint: training checkpoint with ``critic`` and ``network`` state dicts; default
            ``<bundle_root>/models/checkpoint.pt``.
        config_files: configs under ``configs/`` merged in order (the patch size and count come from them).
        split: manifest split the patches are drawn from.
        passes: passes over the split's scans; each draws new random patches.
        seed: seed of the patch sampling (the same patches for every checkpoint).
        overrides: config ids set after the files, e.g. ``{"dataset_manifest": "cohort.csv"}``.

    Returns:
        ``iteration`` (of the checkpoint), ``gap_mean`` and ``gap_sd`` (critic score units),
        ``positive`` (fraction of patches with ``D(hr) > D(G(lr))``), ``hr_score_sd`` (sd of ``D(hr)``
        over patches) and ``patches``.
    """
    root = Path(bundle_root)
    checkpoint = root / "models" / "checkpoint.pt" if checkpoint is None else Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no training checkpoint")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    missing = {"critic", "network"} - set(state)
    if missing:
        raise ValueError(f"{checkpoint}: not a GAN training checkpoint (missing {sorted(missing)})")
    parser = ConfigParser()
    parser.read_config([str(f) for f in config_layers(root, config_files)])
    parser.update({"bundle_root": str(root), **(overrides or {})})
    parser.update({"train#dataset#split": split, "train#dataset#seed": seed})
    generator, critic = parser.get_parsed_content("network_def"), parser.get_parsed_content("critic_def")
    generator.load_state_dict(state["network"])
    critic.load_state_dict(state["critic"])
    generator.eval()
    critic.eval()
    set_determinism(seed=seed)
    loader = parser.get_parsed_content("train#dataloader")
    gaps, hr_scores = [], []
    with torch.no_grad():
        for _ in range(passes):
            for batch in loader:
                lr, hr = prepare_sr_batch(batch, "cpu", False)[:2]
                hr_score = critic(hr).flatten()
                gaps.append(hr_score - critic(generator(lr)).flatten())
                hr_scores.append(hr_score)
    set_determinism(seed=None)
    gap, hr_score = torch.cat(gaps), torch.cat(hr_scores)
    return {
        "iteration": int(state.get("trainer", {}).get("iteration", -1)),
        "gap_mean": float(gap.mean()),
        "gap_sd": float(gap.std()),
        "positive": float((gap > 0).float().mean()),
        "hr_score_sd": float(hr_score.std()),
        "patches": int(gap.numel()),
    }

