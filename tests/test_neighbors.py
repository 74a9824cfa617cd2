"""Tests for datasets.neighbors: the cell-list radius graph against the O(N^2) reference, kNN, farthest point
sampling against the greedy max-min definition."""

import numpy as np
import pytest
import torch

from datasets.neighbors import (
    farthest_point_sampling,
    farthest_point_sampling_brute_force,
    knn_graph,
    minimum_image,
    radius_graph,
    radius_graph_brute_force,
)


def _points(d: int, sizes: list[int], seed: int, box: float | list[float] = 1.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(sum(sizes), d, generator=g, dtype=dtype) * torch.as_tensor(box, dtype=dtype)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return pos, batch


def _radius_for(d: int, n_per_graph: int) -> float:
    """A radius giving ~8 neighbours per point in the unit box."""
    vol = {1: 2.0, 2: np.pi, 3: 4 / 3 * np.pi}[d]
    return float((8.0 / (n_per_graph * vol)) ** (1 / d))


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("sizes", [[300], [120, 1, 250, 37]])
def test_radius_graph_matches_brute_force(d, periodic, sizes):
    pos, batch = _points(d, sizes, seed=10 * d + len(sizes))
    r = _radius_for(d, 150)
    box = 1.0 if periodic else None
    if periodic:  # positions anywhere: taken modulo the box
        pos = pos + torch.randint(-2, 3, pos.shape, generator=torch.Generator().manual_seed(1)).double()
    b = batch if len(sizes) > 1 else None
    fast = radius_graph(pos, r, batch=b, periodic_length=box)
    ref = radius_graph_brute_force(pos, r, batch=b, periodic_length=box)
    assert fast.dtype == torch.long and fast.shape[0] == 2
    assert fast.shape[1] > 2 * len(sizes)  # the problem is not trivial
    assert torch.equal(fast, ref)
    # no edges between graphs, no self-loops, symmetric
    assert torch.equal(batch[fast[0]], batch[fast[1]])
    assert bool((fast[0] != fast[1]).all())
    key = fast[1] * len(pos) + fast[0]
    rev = fast[0] * len(pos) + fast[1]
    assert torch.equal(torch.sort(key).values, torch.sort(rev).values)


def test_radius_graph_periodic_edges_wrap_and_open_do_not():
    pos = torch.tensor([[0.02], [0.5], [0.97]])
    open_edges = radius_graph(pos, 0.1)
    assert open_edges.shape[1] == 0
    wrapped = radius_graph(pos, 0.1, periodic_length=1.0)
    assert wrapped.tolist() == [[2, 0], [0, 2]]


@pytest.mark.parametrize("periodic", [False, True])
def test_radius_graph_anisotropic_box_loop_and_max_neighbors(periodic):
    box = [2.0, 0.7, 1.3]
    pos, batch = _points(3, [200, 150], seed=3, box=box)
    kw = {"batch": batch, "periodic_length": box if periodic else None}
    for extra in ({"loop": True}, {"max_num_neighbors": 3}, {"loop": True, "max_num_neighbors": 1}):
        fast = radius_graph(pos, 0.3, **kw, **extra)
        assert torch.equal(fast, radius_graph_brute_force(pos, 0.3, **kw, **extra))
    capped = radius_graph(pos, 0.3, **kw, max_num_neighbors=3)
    assert int(torch.bincount(capped[1]).max()) <= 3
    looped = radius_graph(pos, 0.3, **kw, loop=True)
    assert int((looped[0] == looped[1]).sum()) == len(pos)


def test_radius_graph_edge_order_and_grid_spacing():
    # 1-D periodic grid of 16 points, spacing 1/16, 2 neighbours each side (the MP-PDE stencil)
    pos = (torch.arange(16, dtype=torch.float64) / 16)[:, None]
    ei = radius_graph(pos, 2.5 / 16, periodic_length=1.0)
    assert ei.shape[1] == 16 * 4
    key = ei[1] * 16 + ei[0]
    assert bool((key[1:] > key[:-1]).all())  # sorted by (target, source)
    assert sorted(ei[0, ei[1] == 0].tolist()) == [1, 2, 14, 15]


def test_radius_graph_errors_and_empty():
    with pytest.raises(ValueError, match="r < L/2"):
        radius_graph(torch.rand(10, 2), 0.5, periodic_length=1.0)
    assert radius_graph(torch.empty(0, 2), 0.1).shape == (2, 0)
    assert radius_graph(torch.rand(1, 3), 0.1).shape == (2, 0)


def test_minimum_image():
    delta = torch.tensor([[0.9, -0.6], [0.2, 0.49]])
    assert torch.allclose(minimum_image(delta, 1.0), torch.tensor([[-0.1, 0.4], [0.2, 0.49]]))


def _knn_reference(pos: np.ndarray, k: int, batch: np.ndarray, loop: bool, box):
    edges = []
    for i in range(len(pos)):
        same = np.nonzero(batch == batch[i])[0]
        delta = pos[same] - pos[i]
        if box is not None:
            delta = delta - box * np.round(delta / box)
        d2 = (delta**2).sum(-1)
        if not loop:
            d2[same == i] = np.inf
        order = np.argsort(d2, kind="stable")[: min(k, len(same) - (not loop))]
        edges += [(int(same[j]), i) for j in order]
    edges.sort(key=lambda e: (e[1], e[0]))
    return np.array(edges).T


@pytest.mark.parametrize("d,periodic,loop", [(1, False, False), (2, True, False), (3, False, True)])
def test_knn_graph_matches_reference(d, periodic, loop):
    pos, batch = _points(d, [60, 3, 45], seed=d)
    box = 1.0 if periodic else None
    ei = knn_graph(pos, 5, batch=batch, loop=loop, periodic_length=box)
    ref = _knn_reference(pos.numpy(), 5, batch.numpy(), loop, box)
    assert np.array_equal(ei.numpy(), ref)


def _assert_greedy_max_min(pos: torch.Tensor, picks: torch.Tensor, box=None):
    """Every pick (after the first) is a farthest point of ``pos`` (one graph) from the picks before it."""
    for s in range(1, len(picks)):
        delta = minimum_image(pos[:, None, :] - pos[picks[:s]][None], box)
        min_d = delta.square().sum(-1).min(1).values
        assert float(min_d[picks[s]]) == pytest.approx(float(min_d.max()), rel=1e-12, abs=0)
        assert float(min_d[picks[s]]) > 0


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("periodic", [False, True])
def test_farthest_point_sampling_matches_brute_force(d, periodic):
    sizes = [200, 7, 150]
    pos, batch = _points(d, sizes, seed=5 + d)
    box = 1.0 if periodic else None
    picks = farthest_point_sampling(pos, 20, batch=batch, periodic_length=box)
    ref = farthest_point_sampling_brute_force(pos, 20, batch=batch, periodic_length=box)
    assert torch.equal(picks, ref)
    assert picks.numel() == 20 + 7 + 20
    offsets = [0, 20, 27, 47]
    for g in range(3):
        sel = picks[offsets[g]:offsets[g + 1]]
        assert bool((batch[sel] == g).all()) and sel.unique().numel() == sel.numel()
        first = sum(sizes[:g])
        _assert_greedy_max_min(pos[first:first + sizes[g]], sel - first, box)


def test_farthest_point_sampling_random_start_and_explicit_start():
    pos, batch = _points(2, [50, 40], seed=0)
    gen = torch.Generator().manual_seed(0)
    a = farthest_point_sampling(pos, 10, batch=batch, start="random", generator=gen)
    b = farthest_point_sampling(pos, 10, batch=batch, start=a[[0, 10]])
    assert torch.equal(a, b)
    _assert_greedy_max_min(pos[:50], a[:10])
    _assert_greedy_max_min(pos[50:], a[10:] - 50)
    with pytest.raises(ValueError):
        farthest_point_sampling(pos, 5, batch=batch, start=torch.tensor([0, 1]))  # 1 is in graph 0
