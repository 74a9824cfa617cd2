"""The one batch contract: the same data served as grids and as graphs give the same losses, metrics, rollouts and
evaluation; graph reductions count graphs, not nodes; rollout state updates, random windows and pushforward."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch_geometric.data import Batch, Data

from datasets.batching import is_graph, num_samples, sample_index, sample_sums
from datasets.datamodule import GridDataModule
from datasets.discretization import PointSet, RegularGrid
from operators.evaluation import evaluate_split
from operators.losses import (
    AccumulatedSquaredError,
    BatchL2NormLoss,
    MSELoss,
    RelativeL2Loss,
)
from operators.metrics import PerSampleMean
from operators.tasks.rollout import AutoregressiveRollout
from operators.tasks.state_updates import TemporalBundling, WindowShift, take_steps


class Pointwise(nn.Module):
    """The same per-point linear map on grid tensors ``(B, C, *S)`` and on graph node rows ``(N, C)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.linear = nn.Linear(in_channels, out_channels)

    def forward(self, inputs):
        if isinstance(inputs, Batch):
            return self.linear(inputs.x)
        return self.linear(inputs.movedim(1, -1)).movedim(-1, 1)


def _ns(tmp_path: Path, **kw) -> GridDataModule:
    cfg = dict(pde="navier_stokes", n_train=4, n_val=3, n_test=3, resolution=8, solver_resolution=16,
               t_final=6.0, record_every=1.0, dt=1e-2, inputs=["w"], targets=["w"], input_steps="0:2",
               target_steps="2:7", spatial_dims=2, batch_size=2, data_dir=str(tmp_path / "data"), generation_device="cpu")
    cfg.update(kw)
    return GridDataModule(**cfg)


@pytest.fixture(scope="module")
def ns_pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("graphspine")
    grid, graph = _ns(tmp), _ns(tmp, graph={"radius": 1.5, "periodic": True})
    grid.setup("fit"), graph.setup("fit")
    return grid, graph


def test_graph_batches_hold_the_grid_values_as_node_rows(ns_pair) -> None:
    grid, graph = ns_pair
    gb = next(iter(grid.val_dataloader()))
    hb = next(iter(graph.val_dataloader()))
    assert is_graph(hb) and not is_graph(gb)
    assert num_samples(hb) == num_samples(gb) == 2
    assert hb.x.shape == (2 * 64, 2) and hb.y.shape == (2 * 64, 5)
    # node n of graph b is grid point n in C order
    assert torch.equal(hb.x[:64], gb["x"][0].reshape(2, -1).T)
    assert torch.equal(hb.y[64:], gb["y"][1].reshape(5, -1).T)
    assert hb.pos.shape == (128, 2) and float(hb.pos.max()) < 1.0 and float(hb.pos.min()) == 0.0
    assert hb.time.shape == (2,) and torch.allclose(hb.time, torch.full((2,), 2 / 6))  # first target step
    assert torch.allclose(hb.time_step, torch.full((2,), 1 / 6))
    # 8 x 8 periodic grid, radius 1.5 spacings: the 8 neighbours of a 3 x 3 stencil, across the boundary too
    degree = torch.bincount(hb.edge_index[1], minlength=128)
    assert torch.all(degree == 8)
    assert graph.discretization == RegularGrid.make((8, 8), periodic=True)


def test_graph_and_grid_reductions_agree_and_count_graphs_not_nodes() -> None:
    torch.manual_seed(0)
    sizes = [3, 7, 5]
    preds = [torch.randn(n, 4) for n in sizes]
    targets = [torch.randn(n, 4) for n in sizes]
    batch = Batch.from_data_list([Data(x=p, y=t) for p, t in zip(preds, targets)])
    pred = torch.cat(preds)
    for loss in (RelativeL2Loss(reduction="none"), MSELoss(reduction="none"),
                 AccumulatedSquaredError(step_channels=2, reduction="none")):
        graph_values = loss.sample_values(pred, batch.y, sample_index(batch), 3)
        # the same samples one at a time, as grid rows (1, C, n)
        one_by_one = torch.stack([loss.per_sample(p.T[None], t.T[None])[0] for p, t in zip(preds, targets)])
        assert torch.allclose(graph_values, one_by_one, atol=1e-6), type(loss).__name__
    metric = PerSampleMean(RelativeL2Loss(reduction="none"))
    metric.update(pred, batch.y, sample_index(batch), 3)
    assert int(metric.count) == 3  # graphs, not 15 nodes
    assert torch.allclose(sample_sums(torch.ones(15, 2), batch.batch, 3), torch.tensor([6.0, 14.0, 10.0]))
    # the MP-PDE training loss: the L2 norm over the whole batch
    assert torch.allclose(BatchL2NormLoss()(pred, batch.y), (pred - batch.y).pow(2).sum().sqrt())


@pytest.mark.parametrize("update", [WindowShift(), TemporalBundling(2)])
def test_the_same_rollout_on_grids_and_graphs(ns_pair, update) -> None:
    grid, graph = ns_pair
    m = update.steps_per_call
    torch.manual_seed(1)
    net = Pointwise(2, m)
    task_grid = AutoregressiveRollout(net, state_update=update)
    task_graph = AutoregressiveRollout(net, state_update=update)
    gb = next(iter(grid.test_dataloader()))
    hb = next(iter(graph.test_dataloader()))
    with torch.no_grad():
        pg, ph = task_grid.predict_batch(gb), task_graph.predict_batch(hb)
    assert pg.shape == gb["y"].shape and ph.shape == hb.y.shape
    assert torch.allclose(ph[:64], pg[0].reshape(5, -1).T, atol=1e-6)
    # evaluation: every metric agrees between the two layouts (H1 exists on grids only)
    eg = evaluate_split(task_grid, grid.test_dataloader(), torch.device("cpu"), 1, periodic=True)
    eh = evaluate_split(task_graph, graph.test_dataloader(), torch.device("cpu"), 1, periodic=True, graph=True)
    assert eg["n_samples"] == eh["n_samples"] == 3
    for key in ("rel_l2", "mse", "accumulated_error"):
        assert eh[key] == pytest.approx(eg[key], rel=1e-5), key
    assert np.allclose(eh["rel_l2_per_step"], eg["rel_l2_per_step"], rtol=1e-5)
    assert "rel_h1" in eg and "rel_h1" not in eh
    # accumulated error = sum over steps of the spatial mean squared error, averaged over trajectories
    y = torch.cat([b["y"] for b in grid.test_dataloader()])
    with torch.no_grad():
        p = torch.cat([task_grid.predict_batch(b) for b in grid.test_dataloader()])
    expected = (p - y).pow(2).mean(dim=(2, 3)).sum(dim=1).mean()
    assert eg["accumulated_error"] == pytest.approx(float(expected), rel=1e-5)


def test_take_steps_and_random_windows_match_a_loop() -> None:
    torch.manual_seed(0)
    traj = torch.randn(4, 10 * 2, 3)  # 10 steps of 2 channels
    start = torch.tensor([0, 3, 5, 8])
    got = take_steps(traj, start, 2, 2)
    for i, s in enumerate(start.tolist()):
        assert torch.equal(got[i], traj[i, s * 2:(s + 2) * 2])
    net = Pointwise(3, 3)
    task = AutoregressiveRollout(net, state_update=TemporalBundling(3), random_start=True, pushforward_unrolls=1)
    full = torch.arange(20.0).repeat(2, 1)  # 2 samples x 20 steps, one channel
    batch = {"trajectory": full[:, :, None]}
    for n_unrolls in (0, 1):
        window, target, _ = task._random_windows(batch, n_unrolls)
        s = window[:, -1, 0] + 1  # the window ends right before its start step
        assert torch.equal(window[:, :, 0], (s[:, None] - 3 + torch.arange(3.0)))
        assert torch.equal(target[:, :, 0], (s[:, None] + 3 * n_unrolls + torch.arange(3.0)))
        assert float(s.min()) >= 3 and float(s.max()) <= 20 - 3 * (n_unrolls + 1)


def test_pushforward_unrolls_without_gradient_then_one_step_with_it() -> None:
    torch.manual_seed(0)
    calls = []

    class Recorder(Pointwise):
        def forward(self, inputs):
            calls.append(torch.is_grad_enabled())
            return super().forward(inputs)

    task = AutoregressiveRollout(Recorder(2, 2), state_update=TemporalBundling(2), random_start=True,
                                 pushforward_unrolls=1, loss=BatchL2NormLoss())
    batch = {"trajectory": torch.randn(3, 12, 4)}
    task._n_unrolls = lambda: 1  # type: ignore[method-assign]
    loss = task.training_loss(batch)
    assert calls == [False, True] and loss.requires_grad
    calls.clear()
    task._n_unrolls = lambda: 0  # type: ignore[method-assign]
    task.training_loss(batch)
    assert calls == [True]
    # the official curriculum: no unrolling in the first epoch
    fresh = AutoregressiveRollout(Pointwise(2, 2), state_update=TemporalBundling(2), pushforward_unrolls=1)
    assert fresh._n_unrolls() == 0


def test_bad_graph_settings_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"graph.radius=-1 is not allowed"):
        _ns(tmp_path, graph={"radius": -1})
    with pytest.raises(ValueError, match=r"graph has unknown key\(s\) \['radus'\]"):
        _ns(tmp_path, graph={"radus": 3})
    with pytest.raises(ValueError, match=r"parameters contains 'nu'"):
        _ns(tmp_path, parameters=["nu"])
    with pytest.raises(ValueError, match=r"snapshot_dt=0.5 does not match the data, whose snapshots are 1.0 apart"):
        _ns(tmp_path, snapshot_dt=0.5)
    with pytest.raises(ValueError, match="state_update"):
        AutoregressiveRollout(Pointwise(2, 1), state_update="bundle")
    with pytest.raises(ValueError, match="out_channels=3 are not 2 steps"):
        AutoregressiveRollout(Pointwise(2, 3), state_update=TemporalBundling(2))


def test_point_sets_scale_positions_to_the_unit_box() -> None:
    x = -8 * np.cos(np.pi * np.arange(9) / 8)
    ps = PointSet.make(x, lengths=[16.0], origin=[-8.0])
    assert ps.points().shape == (9, 1) and not ps.periodic
    assert ps.spacing() == pytest.approx(2.0)
