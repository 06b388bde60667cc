# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""WGAN-GP training schedule of mDCSRN-GAN (the mDCSRN paper) as a MONAI/ignite trainer.

Chen et al. (arXiv:2003.01217): the generator G is an mDCSRN initialised from a trained mDCSRN,
the critic D is a 3D SRGAN-style discriminator with layer norm; D is pre-trained alone ("10k
steps"), then D takes 5 steps per G step; G minimises L1 + 0.1 · (-D(G(x))), D the WGAN-GP loss.

One ignite iteration = one batch = one critic step. The generator also steps on iteration ``i``
(1-based) when ``i > critic_warmup_iterations`` and ``(i - critic_warmup_iterations)`` is a multiple
of ``critic_steps``, so the schedule is a function of the iteration count alone and survives a
resume from a checkpoint (which restores the iteration).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from ignite.metrics import Metric
from monai.engines import Trainer
from monai.engines.utils import default_metric_cmp_fn
from monai.inferers import Inferer, SimpleInferer
from monai.utils import CommonKeys

from pipeline.training.engines import prepare_sr_batch

__all__ = ["WGANGPTrainer"]


class WGANGPTrainer(Trainer):
    """Adversarial SR training with a WGAN-GP critic: warm-up, then ``critic_steps`` critic steps per G step.

    Args:
        device: where the networks and batches live.
        max_epochs: epochs to run.
        train_data_loader: patch pairs ``{"lr", "hr"}`` (see ``prepare_batch``).
        network: the generator, (B, 1, *S) -> (B, 1, *S·zoom).
        critic: the critic, (B, 1, *S) -> (B, 1) scores.
        optimizer: the generator's optimiser (the paper: Adam, lr 5e-6).
        critic_optimizer: the critic's optimiser.
        loss_function: generator objective ``(sr, hr, critic) -> loss``, e.g.
            :class:`pipeline.losses.WGANGPGeneratorLoss` (L1 + 0.1 adversarial).
        critic_loss_function: critic objective ``(critic, hr, sr) -> loss``, e.g.
            :class:`pipeline.losses.WGANGPCriticLoss` (Wasserstein loss + 10 · gradient penalty).
        critic_steps: critic iterations per generator step (the paper: 5).
        critic_warmup_iterations: iterations that train the critic alone first (the paper: 10000).
        extra_critic_iterations: critic-only iterations inserted after every ``extra_critic_every``
            generator steps (the paper: 200 after every 500); 0 disables them.
        extra_critic_every: generator steps between two runs of extra critic iterations.
        epoch_length: iterations per epoch; default ``len(train_data_loader)``.
        non_blocking: asynchronous host-to-device copies.
        prepare_batch: ``(batch, device, non_blocking, **kwargs) -> (lr, hr)``.
        inferer: runs the generator's forward pass, ``inferer(lr, network)``; default ``SimpleInferer``.
            :class:`pipeline.training.FastTrainingInferer` gives it channels-last memory and, on CPU, the
            measured precision (bf16 autocast where faster); the critic always runs in float32.
        key_train_metric, additional_metrics, metric_cmp_fn, train_handlers, to_kwargs: as
            ``monai.engines.SupervisedTrainer``.
        optim_set_to_none: ``zero_grad(set_to_none=...)``.

    Iteration output: ``image`` (LR), ``label`` (HR), ``pred`` (SR, detached), ``critic_loss`` (float),
    ``generator_updated`` (bool) and ``loss``: the generator loss when G stepped, else NaN.

    Note:
        The critic and its gradient penalty's double backward run in float32 (no AMP loss scaling is
        combined with it); only the generator's forward pass follows ``inferer``, whose output is cast
        back to float32 before the losses. The critic's parameters are frozen while the generator loss
        is back-propagated.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable,
        network: torch.nn.Module,
        critic: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        critic_optimizer: torch.optim.Optimizer,
        loss_function: Callable[[torch.Tensor, torch.Tensor, torch.nn.Module], torch.Tensor],
        critic_loss_function: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        critic_steps: int = 5,
        critic_warmup_iterations: int = 10000,
        extra_critic_iterations: int = 0,
        extra_critic_every: int = 500,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable = prepare_sr_batch,
        inferer: Inferer | None = None,
        key_train_metric: dict[str, Metric] | None = None,
        additional_metrics: dict[str, Metric] | None = None,
        metric_cmp_fn: Callable = default_metric_cmp_fn,
        train_handlers: Sequence | None = None,
        optim_set_to_none: bool = False,
        to_kwargs: dict | None = None,
    ) -> None:
        if critic_steps < 1:
            raise ValueError(f"critic_steps must be >= 1, got {critic_steps}")
        if critic_warmup_iterations < 0:
            raise ValueError(f"critic_warmup_iterations must be >= 0, got {critic_warmup_iterations}")
        if extra_critic_iterations < 0 or extra_critic_every < 1:
            raise ValueError(
                f"extra_critic_iterations must be >= 0 and extra_critic_every >= 1, got "
                f"{extra_critic_iterations} and {extra_critic_every}"
            )
        super().__init__(
            device=torch.device(device),
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            prepare_batch=prepare_batch,
            key_metric=key_train_metric,
            additional_metrics=additional_metrics,
            handlers=train_handlers,
            decollate=False,
            to_kwargs=to_kwargs,
            metric_cmp_fn=metric_cmp_fn,
        )
        self.network = network
        self.inferer = SimpleInferer() if inferer is None else inferer
        self.critic = critic
        self.optimizer = optimizer
        self.critic_optimizer = critic_optimizer
        self.loss_function = loss_function
        self.critic_loss_function = critic_loss_function
        self.critic_steps = critic_steps
        self.critic_warmup_iterations = critic_warmup_iterations
        self.extra_critic_iterations = extra_critic_iterations
        self.extra_critic_every = extra_critic_every
        self.optim_set_to_none = optim_set_to_none

    def generator_steps_at(self, iteration: int) -> bool:
        """Whether the generator steps on (1-based) ``iteration``.

        After the warm-up, iterations run in cycles of ``extra_critic_every`` generator steps (each
        after ``critic_steps - 1`` critic-only iterations) followed by ``extra_critic_iterations``
        critic-only iterations; without extra iterations, every ``critic_steps``-th iteration steps G.
        """
        after_warmup = iteration - self.critic_warmup_iterations
        if after_warmup <= 0:
            return False
        if self.extra_critic_iterations:
            generator_phase = self.extra_critic_every * self.critic_steps
            after_warmup = (after_warmup - 1) % (generator_phase + self.extra_critic_iterations) + 1
            if after_warmup > generator_phase:
                return False
        return after_warmup % self.critic_steps == 0

    def _iteration(self, engine: WGANGPTrainer, batchdata: dict[str, Any]) -> dict[str, Any]:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        lr, hr = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)[:2]
        update_generator = engine.generator_steps_at(engine.state.iteration)
        engine.network.train()
        engine.critic.train()
        with torch.set_grad_enabled(update_generator):
            sr = engine.inferer(lr, engine.network).float()

        engine.critic_optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        critic_loss = engine.critic_loss_function(engine.critic, hr, sr.detach())
        critic_loss.backward()
        engine.critic_optimizer.step()

        loss = torch.tensor(float("nan"))
        if update_generator:
            engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
            engine.critic.requires_grad_(False)
            try:
                loss = engine.loss_function(sr, hr, engine.critic)
                loss.backward()
            finally:
                engine.critic.requires_grad_(True)
            engine.optimizer.step()
        engine.state.output = {
            CommonKeys.IMAGE: lr,
            CommonKeys.LABEL: hr,
            CommonKeys.PRED: sr.detach(),
            CommonKeys.LOSS: loss.detach(),
            "critic_loss": float(critic_loss.detach()),
            "generator_updated": update_generator,
        }
        return engine.state.output
