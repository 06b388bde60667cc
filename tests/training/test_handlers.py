"""Best-model saving across a resume, the resumable checkpoint, random states, time budget and the metrics log."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from ignite.engine import Engine, Events

from monai.data import Dataset
from monai.transforms import Compose, RandGaussianNoised, ScaleIntensityd

from pipeline.training import (
    BestModelSaver,
    MetricsCSVLogger,
    ResumableCheckpoint,
    RNGStates,
    TimeBudget,
    loss_from_output,
)


def evaluator_with_scores(scores: list[float]) -> Engine:
    """An engine whose key metric ``psnr`` takes the next score at every epoch."""
    engine = Engine(lambda e, b: None)
    engine.state.key_metric_name = "psnr"

    @engine.on(Events.EPOCH_COMPLETED)
    def score(e):
        e.state.metrics["psnr"] = scores[e.state.epoch - 1]

    return engine


def test_best_model_saver_keeps_best_across_resume(tmp_path: Path):
    net = torch.nn.Linear(2, 1)
    path = tmp_path / "model.pt"
    saver = BestModelSaver(path, net)
    evaluator = evaluator_with_scores([30.0, 32.0, 31.0])
    saver.attach(evaluator)
    evaluator.run([0], max_epochs=2)
    assert saver.state_dict() == {"best_metric": 32.0, "best_epoch": 2}
    saved = torch.load(path, weights_only=True)

    resumed = BestModelSaver(path, torch.nn.Linear(2, 1))  # new weights, worse score: must not be saved
    resumed.load_state_dict(saver.state_dict())
    evaluator = evaluator_with_scores([31.0])
    resumed.attach(evaluator)
    evaluator.run([0], max_epochs=1)
    torch.testing.assert_close(torch.load(path, weights_only=True), saved)


def test_resumable_checkpoint_round_trip(tmp_path: Path):
    net = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    path = tmp_path / "checkpoint.pt"

    def step(engine, batch):
        optimizer.zero_grad()
        net(torch.ones(1, 2)).sum().backward()
        optimizer.step()

    trainer = Engine(step)
    ResumableCheckpoint(path, {"network": net, "optimizer": optimizer}).attach(trainer)
    trainer.run([0, 1, 2], max_epochs=2)
    saved = torch.load(path, weights_only=True)
    assert saved["trainer"]["iteration"] == 6

    net2 = torch.nn.Linear(2, 1)
    trainer2 = Engine(lambda e, b: None)
    ResumableCheckpoint(path, {"network": net2}, resume=True).attach(trainer2)
    trainer2.run([0, 1, 2], max_epochs=3)
    assert trainer2.state.iteration == 9
    torch.testing.assert_close(net2.weight, net.weight)


def test_resumable_checkpoint_ill_arg(tmp_path: Path):
    net = torch.nn.Linear(2, 1)
    with pytest.raises(TypeError):
        ResumableCheckpoint(tmp_path / "c.pt", {"network": net}, resume="false")
    with pytest.raises(ValueError):
        ResumableCheckpoint(tmp_path / "c.pt", {"trainer": net})
    with pytest.raises(ValueError):
        ResumableCheckpoint(tmp_path / "c.pt", {"network": net}, save_interval=0)
    with pytest.raises(FileNotFoundError):
        ResumableCheckpoint(tmp_path / "missing.pt", {"network": net}, resume=True).attach(Engine(lambda e, b: None))


def test_metrics_log_rows_and_nan_losses(tmp_path: Path):
    losses = iter([1.0, float("nan"), 3.0, 2.0])
    trainer = Engine(lambda e, b: {"loss": torch.tensor(next(losses))})
    MetricsCSVLogger(tmp_path / "metrics.csv").attach(trainer)
    trainer.run([0, 1], max_epochs=2)
    log = pd.read_csv(tmp_path / "metrics.csv")
    assert list(log["epoch"]) == [1, 2] and list(log["iteration"]) == [2, 4]
    assert list(log["train_loss"]) == [1.0, 2.5]


def test_loss_from_output():
    assert loss_from_output({"loss": torch.tensor(2.0, requires_grad=True)}) == 2.0
    assert loss_from_output([{"loss": 1.5}, {"loss": 9.0}]) == 1.5


def test_gradient_clipping_in_supervised_trainer():
    from monai.engines import SupervisedTrainer

    from pipeline.training import GradientClipping, prepare_sr_batch

    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    norms = []
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=[{"lr": torch.rand(2, 1, 8, 8) * 100, "hr": torch.zeros(2, 1, 8, 8)}],
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.0),
        loss_function=torch.nn.MSELoss(),
        prepare_batch=prepare_sr_batch,
        train_handlers=[GradientClipping(max_norm=0.5)],
        decollate=False,
    )
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda e: norms.append(torch.cat([p.grad.flatten() for p in net.parameters()]).norm().item()),
    )
    trainer.run()
    assert norms[0] == pytest.approx(0.5, rel=1e-5)
    with pytest.raises(ValueError):
        GradientClipping(0)


def draws(transform) -> list[float]:
    import random

    import numpy as np

    return [float(torch.rand(1)), float(np.random.rand()), random.random(), float(transform.R.rand())]


def test_rng_states_round_trip_through_a_checkpoint_file(tmp_path: Path):
    noise = RandGaussianNoised(keys="x")
    dataset = Dataset([{"x": torch.zeros(2)}], Compose([ScaleIntensityd(keys="x"), Compose([noise])]))
    states = RNGStates(dataset)
    assert states.transforms == [noise]
    torch.save(states.state_dict(), tmp_path / "rng.pt")
    expected = draws(noise)
    draws(noise)  # move every generator on
    states.load_state_dict(torch.load(tmp_path / "rng.pt", weights_only=True))  # as MONAI's CheckpointLoader reads
    assert draws(noise) == expected
    with pytest.raises(ValueError, match="random transform"):
        RNGStates().load_state_dict(torch.load(tmp_path / "rng.pt", weights_only=True))


def test_time_budget():
    trainer = Engine(lambda e, b: None)
    TimeBudget(minutes=1e-9).attach(trainer)
    trainer.run([0, 1], max_epochs=4)
    assert trainer.state.epoch == 1
    unlimited = Engine(lambda e, b: None)
    TimeBudget(None).attach(unlimited)
    unlimited.run([0, 1], max_epochs=3)
    assert unlimited.state.epoch == 3
    with pytest.raises(ValueError, match="minutes"):
        TimeBudget(0)
