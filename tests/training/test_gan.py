"""The WGAN-GP schedule of mDCSRN-GAN: critic warm-up, then n critic steps per generator step."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Events

from pipeline.losses import WGANGPCriticLoss, WGANGPGeneratorLoss
from pipeline.networks import WGANCritic
from pipeline.training import FastTrainingInferer, WGANGPTrainer


def make_trainer(
    warmup: int, steps: int, iterations: int, inferer=None
) -> tuple[WGANGPTrainer, torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    generator = torch.nn.Conv3d(1, 1, 3, padding=1)
    critic = WGANCritic(spatial_dims=3, channels=(4, 8), strides=(1, 2), dense_features=8)
    batches = [{"lr": torch.rand(2, 1, 8, 8, 8), "hr": torch.rand(2, 1, 8, 8, 8)} for _ in range(iterations)]
    trainer = WGANGPTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=batches,
        network=generator,
        critic=critic,
        optimizer=torch.optim.Adam(generator.parameters(), lr=1e-3),
        critic_optimizer=torch.optim.Adam(critic.parameters(), lr=1e-3),
        loss_function=WGANGPGeneratorLoss(),
        critic_loss_function=WGANGPCriticLoss(),
        critic_steps=steps,
        critic_warmup_iterations=warmup,
        inferer=inferer,
    )
    return trainer, generator, critic


def test_schedule_updates_generator_only_on_its_steps():
    trainer, generator, critic = make_trainer(warmup=3, steps=2, iterations=8)
    log = []

    @trainer.on(Events.ITERATION_STARTED)
    def snapshot(engine):
        engine.state.before = [p.detach().clone() for p in (*generator.parameters(), *critic.parameters())]

    @trainer.on(Events.ITERATION_COMPLETED)
    def record(engine):
        n_gen = len(list(generator.parameters()))
        after = [p.detach() for p in (*generator.parameters(), *critic.parameters())]
        changed = [not torch.equal(a, b) for a, b in zip(after, engine.state.before)]
        out = engine.state.output
        g_changed, d_changed = any(changed[:n_gen]), any(changed[n_gen:])
        log.append((engine.state.iteration, g_changed, d_changed, out["generator_updated"], out["loss"]))

    trainer.run()
    generator_steps = [it for it, g_changed, _, updated, _ in log if updated]
    assert generator_steps == [5, 7]
    for it, g_changed, d_changed, updated, loss in log:
        assert g_changed == updated and d_changed
        assert math.isfinite(float(loss)) == updated
    assert all(p.requires_grad for p in critic.parameters())


@pytest.mark.parametrize("warmup,steps,expected", [(0, 1, [1, 2, 3, 4]), (0, 5, []), (2, 1, [3, 4])])
def test_generator_steps_at(warmup, steps, expected):
    trainer, _, _ = make_trainer(warmup, steps, 1)
    assert [i for i in range(1, 5) if trainer.generator_steps_at(i)] == expected


def test_extra_critic_iterations_follow_every_n_generator_steps():
    """The paper's extra critic phase: here 2 critic-only iterations after every 2 generator steps."""
    trainer, _, _ = make_trainer(1, 2, 1)
    trainer.extra_critic_iterations, trainer.extra_critic_every = 2, 2
    # warm-up 1; cycle of 2 x 2 + 2 = 6 iterations: G on its 2nd and 4th, critic only on its 5th and 6th
    assert [i for i in range(1, 15) if trainer.generator_steps_at(i)] == [3, 5, 9, 11]


def test_ill_arg():
    with pytest.raises(ValueError):
        make_trainer(warmup=0, steps=0, iterations=1)
    with pytest.raises(ValueError):
        make_trainer(warmup=-1, steps=1, iterations=1)
    trainer, generator, critic = make_trainer(0, 1, 1)
    with pytest.raises(ValueError, match="extra_critic"):
        WGANGPTrainer(
            "cpu", 1, [], generator, critic, trainer.optimizer, trainer.critic_optimizer,
            trainer.loss_function, trainer.critic_loss_function, extra_critic_every=0,
        )


def test_generator_forward_runs_through_the_inferer_in_bf16_and_the_critic_stays_float32():
    inferer = FastTrainingInferer(spatial_dims=3, precision="bf16")
    trainer, generator, critic = make_trainer(warmup=1, steps=1, iterations=3, inferer=inferer)
    critic_input_dtypes = []
    critic.register_forward_pre_hook(lambda module, args: critic_input_dtypes.append(args[0].dtype))
    before = [p.detach().clone() for p in generator.parameters()]
    trainer.run()
    assert inferer.precision == "bf16"
    assert trainer.state.output["pred"].dtype == torch.float32
    assert set(critic_input_dtypes) == {torch.float32}
    assert all(p.dtype == torch.float32 for p in (*generator.parameters(), *critic.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(before, generator.parameters()))
