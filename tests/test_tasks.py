"""Training tasks (regression, rollout), evaluation helpers, config resolvers and the DDP-in-sweep argv."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from operators.evaluation import per_step_relative_l2
from operators.runtime import resolvers  # noqa: F401
from operators.runtime.hydra_ddp import child_argv, uses_subprocess_ddp
from operators.tasks.regression import OperatorRegression
from operators.tasks.rollout import AutoregressiveRollout


class AddOne(nn.Module):
    """Step map w_{t+1} = w_t + 1 from a window of k steps (one channel per step)."""

    out_channels = 1

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x[:, -1:] + 1.0


def test_rollout_feeds_predictions_back() -> None:
    task = AutoregressiveRollout(AddOne())
    x = torch.zeros(2, 3, 4, 4)
    x[:, 2] = 5.0
    traj = task.rollout(x, n_steps=4)
    assert traj.shape == (2, 4, 4, 4)
    for t in range(4):
        assert torch.allclose(traj[:, t], torch.full((2, 4, 4), 6.0 + t))


def test_rollout_predict_batch_matches_target_length() -> None:
    task = AutoregressiveRollout(AddOne()).eval()
    batch = {"x": torch.zeros(1, 2, 8, 8), "y": torch.zeros(1, 5, 8, 8)}
    assert task.predict_batch(batch).shape == (1, 5, 8, 8)


def test_rollout_teacher_forcing_uses_truth() -> None:
    task = AutoregressiveRollout(AddOne(), teacher_forcing=1.0).train()
    x = torch.zeros(1, 1, 2, 2)
    truth = torch.full((1, 3, 2, 2), 10.0)
    traj = task.rollout(x, 3, truth=truth)
    # with the truth fed back, every step after the first is 10 + 1
    assert torch.allclose(traj[:, 1:], torch.full((1, 2, 2, 2), 11.0))
    with pytest.raises(ValueError, match="teacher_forcing=2"):
        AutoregressiveRollout(AddOne(), teacher_forcing=2)


def test_regression_fits_normalisers_on_train_split_only() -> None:
    net = nn.Conv2d(1, 1, 1)
    task = OperatorRegression(net, normalize_input=True, normalize_target=True)
    x = torch.randn(8, 1, 4, 4) * 3 + 2
    y = torch.randn(8, 1, 4, 4) * 5 - 1
    task.fit_normalizers(SimpleNamespace(train_tensors=lambda: (x, y)))
    enc = task.x_normalizer.encode(x)
    assert abs(float(enc.mean())) < 0.2 and abs(float(enc.std()) - 1) < 0.2
    # the prediction is decoded to physical units
    assert torch.allclose(task.y_normalizer.decode(task.y_normalizer.encode(y)), y, atol=1e-5)
    assert "x_normalizer.mean" in task.state_dict() and "y_normalizer.std" in task.state_dict()


def test_training_step_detects_a_nan_loss_at_the_next_check() -> None:
    task = OperatorRegression(nn.Conv1d(1, 1, 1), finite_check_every_n_steps=3)
    task.log = lambda *a, **k: None  # type: ignore[method-assign]
    nan = {"x": torch.full((2, 1, 8), math.nan), "y": torch.ones(2, 1, 8)}
    ok = {"x": torch.ones(2, 1, 8), "y": torch.ones(2, 1, 8)}
    task.training_step(nan, 0)  # not looked at yet: no host sync on this step
    task.training_step(ok, 1)
    with pytest.raises(FloatingPointError, match="loss became non-finite"):
        task.training_step(ok, 2)  # the check every 3 batches sees the earlier NaN
    task.training_step(nan, 0)
    with pytest.raises(FloatingPointError, match="during the epoch"):
        task.on_train_epoch_end()  # and the end of an epoch always looks
    with pytest.raises(ValueError, match="finite_check_every_n_steps=0"):
        OperatorRegression(nn.Conv1d(1, 1, 1), finite_check_every_n_steps=0)


def test_training_hot_path_never_waits_for_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """Normalised forward passes and training steps between finite checks read no device value on the host
    (``.item()`` / ``bool(tensor)``), which on a GPU would stall the pipeline every step."""
    task = OperatorRegression(nn.Conv2d(1, 1, 1), normalize_input=True, normalize_target=True)
    x, y = torch.randn(8, 1, 4, 4), torch.randn(8, 1, 4, 4)
    task.fit_normalizers(SimpleNamespace(train_tensors=lambda: (x, y)))
    task.log = lambda *a, **k: None  # type: ignore[method-assign]
    reloaded = OperatorRegression(nn.Conv2d(1, 1, 1), normalize_input=True, normalize_target=True)
    reloaded.load_state_dict(task.state_dict())
    reloaded.log = lambda *a, **k: None  # type: ignore[method-assign]

    def sync(*args, **kwargs):
        raise AssertionError("host sync on the hot path")

    monkeypatch.setattr(torch.Tensor, "item", sync)
    monkeypatch.setattr(torch.Tensor, "__bool__", sync)
    for t in (task, reloaded):
        assert t.x_normalizer.is_fitted
        t(x)
        for i in range(3):
            t.training_step({"x": x, "y": y}, i)


def test_empty_scheduler_config_means_constant_lr() -> None:
    task = OperatorRegression(nn.Conv1d(1, 1, 1), scheduler={})
    assert isinstance(task.configure_optimizers(), torch.optim.Optimizer)


def test_per_step_relative_l2() -> None:
    truth = torch.ones(2, 3, 4)
    pred = truth.clone()
    pred[:, 1] *= 1.5
    err = per_step_relative_l2(pred, truth, step_channels=1)
    assert err.shape == (2, 3)
    assert torch.allclose(err, torch.tensor([[0.0, 0.5, 0.0]] * 2))
    with pytest.raises(ValueError, match="whole number of steps"):
        per_step_relative_l2(pred, truth, step_channels=2)


def test_resolvers() -> None:
    cfg = OmegaConf.create({"d": 2, "p": False, "m": "${repeat:12,${d}}", "pad": "${if_else:${p},0,0.1}",
                            "t": "${int_div:10,2}"})
    assert cfg.m == [12, 12] and cfg.pad == 0.1 and cfg.t == 5
    with pytest.raises(Exception, match="not a whole multiple"):
        OmegaConf.create({"t": "${int_div:10,3}"}).t


def test_ddp_child_argv_runs_only_this_job() -> None:
    argv = child_argv("train.py", ["model.width=32", "data=darcy", "hparams_search=optuna", "hydra.mode=MULTIRUN"])
    assert argv == ["train.py", "model.width=32", "data=darcy", "hparams_search=optuna", "hydra.mode=RUN"]
    assert "-m" not in argv
    assert uses_subprocess_ddp("ddp") and uses_subprocess_ddp("ddp_find_unused_parameters_true")
    assert not uses_subprocess_ddp("ddp_spawn") and not uses_subprocess_ddp("auto")


def test_rollout_per_step_loss_sums_steps() -> None:
    from operators.losses import RelativeL2Loss

    task = AutoregressiveRollout(AddOne(), loss=RelativeL2Loss(), per_step_loss=True)
    target = torch.ones(2, 3, 4, 4)
    pred = target.clone()
    pred[:, 0] = 2.0  # step 0 off by 100 %, others exact
    assert float(task.compute_loss(pred, target)) == pytest.approx(1.0)
    whole = AutoregressiveRollout(AddOne(), loss=RelativeL2Loss(), per_step_loss=False)
    assert float(whole.compute_loss(pred, target)) == pytest.approx(1 / 3 ** 0.5)


def test_epoch_train_loss_is_the_sample_weighted_mean_of_the_batch_losses() -> None:
    """``train/loss`` (logged once per epoch from a device-side metric state) is the mean over samples, i.e. each
    batch's loss weighted by its size (the short last batch counts less), as Lightning's per-step epoch logging
    computed it; the step value is logged for the progress bar too."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    x, y = torch.randn(10, 1, 8), torch.randn(10, 1, 8)
    batches = [{"x": x[i:i + 4], "y": y[i:i + 4]} for i in range(0, 10, 4)]  # sizes 4, 4, 2
    task = OperatorRegression(nn.Conv1d(1, 1, 1), optimizer=lambda params: torch.optim.SGD(params, lr=0.0))
    expected = sum(float(task.compute_loss(task.predict_batch(b), b["y"])) * b["x"].shape[0] for b in batches) / 10
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)
    trainer.fit(task, train_dataloaders=DataLoader(batches, batch_size=None))
    assert float(trainer.callback_metrics["train/loss"]) == pytest.approx(expected, rel=1e-6)
    unweighted = sum(float(task.compute_loss(task.predict_batch(b), b["y"])) for b in batches) / 3
    assert abs(unweighted - expected) > 1e-4  # the weighting is what the assertion above checks
    assert "train/loss_step" in trainer.callback_metrics
