"""Neighbour search on point sets: radius and k-nearest-neighbour graphs, farthest point sampling.

Pure torch (no ``torch-cluster`` / ``pyg-lib``), for node positions ``pos`` of shape ``(N, d)`` (any ``d``;
1, 2 and 3 are the tested cases), several graphs at once through a ``batch`` vector ``(N,)`` (the graph of
every node, as in PyG; need not be sorted), optionally in a periodic box ``[0, L_1) x ... x [0, L_d)`` with
minimum-image distances.

Edge convention (PyG's ``flow="source_to_target"``): ``edge_index[0]`` is the source / neighbour ``j``,
``edge_index[1]`` the centre / target ``i``, so a message passing layer aggregates ``j -> i`` at ``i``. Edges
are sorted by ``(target, source)``, which makes the output deterministic and independent of the search method.

:func:`radius_graph` bins the points into a cell list (cells of side ``>= r``; a point's neighbours lie in its
own and the ``3^d`` adjacent cells) and tests only those candidates: ``O(N)`` distance evaluations for bounded
density (plus an ``O(N log N)`` sort of the cell keys, which avoids allocating the cells). The ``*_brute_force``
functions are the ``O(N^2)`` references the tests compare against.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

__all__ = [
    "farthest_point_sampling",
    "farthest_point_sampling_brute_force",
    "knn_graph",
    "minimum_image",
    "radius_graph",
    "radius_graph_brute_force",
]

# cells are made this much larger than r, so that rounding in floor(x / side) can never put two points closer
# than r two cells apart
_CELL_MARGIN = 1e-6
_MAX_CELL_KEY = 2**62


def _check_pos(pos: torch.Tensor) -> torch.Tensor:
    if pos.dim() == 1:
        pos = pos[:, None]
    if pos.dim() != 2 or not pos.is_floating_point():
        raise ValueError(f"pos must be a floating (N, d) tensor; got shape {tuple(pos.shape)}, dtype {pos.dtype}")
    return pos


def _check_batch(batch: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
    if batch is None:
        return torch.zeros(n, dtype=torch.long, device=device)
    batch = batch.to(device=device, dtype=torch.long).reshape(-1)
    if batch.numel() != n:
        raise ValueError(f"batch must have one entry per point ({n}); got {batch.numel()}")
    if n and int(batch.min()) < 0:
        raise ValueError("batch entries must be >= 0")
    return batch


def _box(periodic_length: float | Sequence[float] | torch.Tensor | None, d: int, pos: torch.Tensor
         ) -> torch.Tensor | None:
    """The periodic box side lengths as a ``(d,)`` tensor (``None``: not periodic)."""
    if periodic_length is None:
        return None
    box = torch.as_tensor(periodic_length, dtype=pos.dtype, device=pos.device).reshape(-1)
    if box.numel() == 1:
        box = box.expand(d)
    if box.numel() != d:
        raise ValueError(f"periodic_length needs 1 or d={d} entries; got {box.numel()}")
    if not bool((box > 0).all()):
        raise ValueError(f"periodic_length must be positive; got {box.tolist()}")
    return box.clone()


def minimum_image(delta: torch.Tensor, periodic_length: torch.Tensor | float | None) -> torch.Tensor:
    """Displacements ``delta`` ``(..., d)`` wrapped to the minimum image ``[-L/2, L/2]`` of a periodic box
    (returned unchanged for ``periodic_length=None``)."""
    if periodic_length is None:
        return delta
    box = torch.as_tensor(periodic_length, dtype=delta.dtype, device=delta.device)
    return delta - box * torch.round(delta / box)


def _sq_dist(a: torch.Tensor, b: torch.Tensor, box: torch.Tensor | None) -> torch.Tensor:
    """Squared (minimum-image) distances of broadcast pairs ``a - b`` (one formula for every search method, so
    that their results agree bit for bit)."""
    return minimum_image(a - b, box).square().sum(-1)


def _empty_edges(device: torch.device) -> torch.Tensor:
    return torch.empty(2, 0, dtype=torch.long, device=device)


def _finish(src: torch.Tensor, tgt: torch.Tensor, dist2: torch.Tensor, n: int,
            max_num_neighbors: int | None) -> torch.Tensor:
    """Keep at most ``max_num_neighbors`` nearest sources per target (ties: smaller source index) and sort the
    edges by ``(target, source)``; returns ``edge_index`` ``(2, E)`` = ``[source; target]``."""
    if max_num_neighbors is not None and src.numel():
        k = int(max_num_neighbors)
        if k < 0:
            raise ValueError(f"max_num_neighbors must be >= 0; got {k}")
        # lexicographic (target, dist2, source) by stable sorts from the last key to the first
        order = torch.argsort(src, stable=True)
        order = order[torch.argsort(dist2[order], stable=True)]
        order = order[torch.argsort(tgt[order], stable=True)]
        t_sorted = tgt[order]
        first = torch.ones_like(t_sorted, dtype=torch.bool)
        first[1:] = t_sorted[1:] != t_sorted[:-1]
        seg_start = torch.cummax(torch.where(first, torch.arange(t_sorted.numel(), device=src.device), 0), 0).values
        rank = torch.arange(t_sorted.numel(), device=src.device) - seg_start
        keep = order[rank < k]
        src, tgt = src[keep], tgt[keep]
    order = torch.argsort(tgt * n + src)
    return torch.stack([src[order], tgt[order]])


def radius_graph(
    pos: torch.Tensor,
    r: float,
    batch: torch.Tensor | None = None,
    loop: bool = False,
    periodic_length: float | Sequence[float] | None = None,
    max_num_neighbors: int | None = None,
) -> torch.Tensor:
    """Edges between all pairs of points of the same graph at (minimum-image) distance ``<= r``, by a cell list.

    Args:
        pos: ``(N, d)`` positions (``(N,)`` is read as ``d = 1``).
        r: radius (inclusive: ``|x_i - x_j| <= r``; for points on a grid of spacing ``h`` use e.g.
            ``r = (n + 0.5) h`` rather than ``n h``, which rounding may put on either side).
        batch: ``(N,)`` graph index of every point (default: one graph); no edges between graphs.
        loop: include self-loops ``i -> i``.
        periodic_length: side(s) ``L`` of a periodic box (scalar or ``d`` values; positions anywhere, taken
            modulo ``L``), distances by the minimum image; needs ``r < L / 2`` so that at most one image of a
            point is within ``r``. ``None``: open space.
        max_num_neighbors: keep only the nearest this many sources per target (ties: smaller index);
            ``None``: all (unlike torch-cluster, whose default is 32 arbitrary ones).

    Returns:
        ``edge_index`` ``(2, E)`` long, row 0 source ``j``, row 1 target ``i``, sorted by ``(i, j)``; symmetric
        (before ``max_num_neighbors``).
    """
    pos = _check_pos(pos)
    n, d = pos.shape
    device = pos.device
    r = float(r)
    if not r > 0:
        raise ValueError(f"radius_graph needs r > 0; got {r}")
    batch = _check_batch(batch, n, device)
    box = _box(periodic_length, d, pos)
    if n == 0:
        return _empty_edges(device)
    n_graphs = int(batch.max()) + 1

    side_min = r * (1.0 + _CELL_MARGIN)
    if box is not None:
        if bool((r >= box / 2).any()):
            raise ValueError(f"periodic radius_graph needs r < L/2 (one image within r); got r={r}, "
                             f"L={box.tolist()}")
        p = torch.remainder(pos, box)
        n_cells = [max(1, math.floor(float(length) / side_min)) for length in box.tolist()]
        lo = torch.zeros(d, dtype=pos.dtype, device=device)
        side = [float(length) / nc for length, nc in zip(box.tolist(), n_cells)]
    else:
        p = pos
        lo = pos.min(0).values
        extent = (pos.max(0).values - lo).tolist()
        side = [side_min] * d
        n_cells = [math.floor(e / s) + 1 for e, s in zip(extent, side)]
        # bigger cells (still correct, only more candidates) if the keys batch * n_total + cell would overflow
        while math.prod(n_cells) * n_graphs > _MAX_CELL_KEY:
            side = [2.0 * s for s in side]
            n_cells = [math.floor(e / s) + 1 for e, s in zip(extent, side)]

    n_cells_t = torch.tensor(n_cells, dtype=torch.long, device=device)
    side_t = torch.tensor(side, dtype=pos.dtype, device=device)
    cell = torch.floor((p - lo) / side_t).long()
    cell = torch.minimum(cell.clamp_min(0), n_cells_t - 1)  # (N, d)
    strides = [1] * d
    for k in range(1, d):
        strides[k] = strides[k - 1] * n_cells[k - 1]
    strides_t = torch.tensor(strides, dtype=torch.long, device=device)
    n_total = math.prod(n_cells)

    key = batch * n_total + (cell * strides_t).sum(-1)
    order = torch.argsort(key, stable=True)
    sorted_key = key[order]

    # neighbouring-cell offsets; in a periodic box with fewer than 3 cells along a dim, -1 and +1 are the same
    # cell (or the cell itself), so each distinct cell is visited once and every pair is found exactly once
    per_dim = []
    for nc in n_cells:
        per_dim.append([0] if (box is not None and nc == 1) else [0, 1] if (box is not None and nc == 2)
                       else [-1, 0, 1])
    offsets = torch.tensor(list(itertools.product(*per_dim)), dtype=torch.long, device=device)  # (M, d)
    n_off = offsets.shape[0]

    nb = cell[:, None, :] + offsets[None]  # (N, M, d)
    if box is not None:
        nb = torch.remainder(nb, n_cells_t)
        valid = torch.ones(nb.shape[:2], dtype=torch.bool, device=device)
    else:
        valid = ((nb >= 0) & (nb < n_cells_t)).all(-1)
        nb = nb.clamp_min(0)
    nb_key = (batch[:, None] * n_total + (nb * strides_t).sum(-1)).reshape(-1)
    start = torch.searchsorted(sorted_key, nb_key, side="left")
    end = torch.searchsorted(sorted_key, nb_key, side="right")
    counts = torch.where(valid.reshape(-1), end - start, 0)

    n_cand = int(counts.sum())
    if n_cand == 0:
        return _empty_edges(device)
    tgt = torch.arange(n, device=device).repeat_interleave(n_off).repeat_interleave(counts)
    seg_start = torch.cumsum(counts, 0) - counts
    within = torch.arange(n_cand, device=device) - seg_start.repeat_interleave(counts)
    src = order[start.repeat_interleave(counts) + within]

    dist2 = _sq_dist(pos[tgt], pos[src], box)
    keep = dist2 <= r * r
    if not loop:
        keep &= src != tgt
    return _finish(src[keep], tgt[keep], dist2[keep], n, max_num_neighbors)


def radius_graph_brute_force(
    pos: torch.Tensor,
    r: float,
    batch: torch.Tensor | None = None,
    loop: bool = False,
    periodic_length: float | Sequence[float] | None = None,
    max_num_neighbors: int | None = None,
    chunk: int = 1024,
) -> torch.Tensor:
    """:func:`radius_graph` by testing all ``N^2`` pairs (``chunk`` targets at a time): the reference.

    Same arguments and output (bit-identical edges) as :func:`radius_graph`.
    """
    pos = _check_pos(pos)
    n, d = pos.shape
    batch = _check_batch(batch, n, pos.device)
    box = _box(periodic_length, d, pos)
    if box is not None and bool((float(r) >= box / 2).any()):
        raise ValueError(f"periodic radius_graph needs r < L/2; got r={r}, L={box.tolist()}")
    srcs, tgts, d2s = [], [], []
    for i0 in range(0, n, chunk):
        t = torch.arange(i0, min(n, i0 + chunk), device=pos.device)
        dist2 = _sq_dist(pos[t][:, None, :], pos[None, :, :], box)  # (c, N)
        ok = (dist2 <= float(r) ** 2) & (batch[t][:, None] == batch[None, :])
        if not loop:
            ok &= t[:, None] != torch.arange(n, device=pos.device)[None, :]
        ti, sj = ok.nonzero(as_tuple=True)
        srcs.append(sj)
        tgts.append(t[ti])
        d2s.append(dist2[ti, sj])
    if not srcs:
        return _empty_edges(pos.device)
    return _finish(torch.cat(srcs), torch.cat(tgts), torch.cat(d2s), n, max_num_neighbors)


def knn_graph(
    pos: torch.Tensor,
    k: int,
    batch: torch.Tensor | None = None,
    loop: bool = False,
    periodic_length: float | Sequence[float] | None = None,
    chunk: int = 1024,
) -> torch.Tensor:
    """Edges from the ``k`` nearest points of the same graph (minimum-image distances in a periodic box) to
    every point; ties broken by the smaller index. Exhaustive per graph (``O(sum_g n_g^2)`` distances,
    ``chunk`` targets at a time): meant for graphs of up to some ``10^4`` nodes.

    Args:
        pos: ``(N, d)`` positions.
        k: neighbours per target (fewer where a graph has fewer points).
        batch: ``(N,)`` graph of every point.
        loop: count the point itself as a neighbour (at distance 0).
        periodic_length: periodic box side(s), see :func:`radius_graph`.

    Returns:
        ``edge_index`` ``(2, E)``: row 0 the neighbours ``j``, row 1 the target ``i``, sorted by ``(i, j)``;
        every target has ``min(k, n_g - (not loop))`` incoming edges.
    """
    pos = _check_pos(pos)
    n, d = pos.shape
    device = pos.device
    batch = _check_batch(batch, n, device)
    box = _box(periodic_length, d, pos)
    k = int(k)
    if k < 0:
        raise ValueError(f"knn_graph needs k >= 0; got {k}")
    if n == 0 or k == 0:
        return _empty_edges(device)
    srcs, tgts = [], []
    for g in torch.unique(batch).tolist():
        nodes = (batch == g).nonzero(as_tuple=True)[0]
        m = nodes.numel()
        kk = min(k, m if loop else m - 1)
        if kk <= 0:
            continue
        pg = pos[nodes]
        for i0 in range(0, m, chunk):
            rows = torch.arange(i0, min(m, i0 + chunk), device=device)
            dist2 = _sq_dist(pg[rows][:, None, :], pg[None, :, :], box)
            if not loop:
                dist2[torch.arange(rows.numel(), device=device), rows] = float("inf")
            nearest = torch.sort(dist2, dim=1, stable=True).indices[:, :kk]  # (c, kk)
            srcs.append(nodes[nearest.reshape(-1)])
            tgts.append(nodes[rows].repeat_interleave(kk))
    if not srcs:
        return _empty_edges(device)
    src, tgt = torch.cat(srcs), torch.cat(tgts)
    order = torch.argsort(tgt * n + src)
    return torch.stack([src[order], tgt[order]])


def _segment_argmax_first(values: torch.Tensor, batch: torch.Tensor, n_graphs: int) -> torch.Tensor:
    """Per graph, the smallest index of a maximal entry of ``values`` (``N`` for an empty graph)."""
    n = values.numel()
    vmax = torch.full((n_graphs,), float("-inf"), dtype=values.dtype, device=values.device)
    vmax = vmax.scatter_reduce(0, batch, values, reduce="amax", include_self=True)
    cand = torch.where(values == vmax[batch], torch.arange(n, device=values.device), n)
    first = torch.full((n_graphs,), n, dtype=torch.long, device=values.device)
    return first.scatter_reduce(0, batch, cand, reduce="amin", include_self=True)


def farthest_point_sampling(
    pos: torch.Tensor,
    n: int,
    batch: torch.Tensor | None = None,
    start: str | torch.Tensor = "first",
    periodic_length: float | Sequence[float] | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Greedy farthest point sampling, all graphs of a batch at once: after the start point, every pick is the
    point of its graph farthest (max over points of the min distance to the points picked so far; ties: smaller
    index) from the picks before it. ``O(n N)``.

    Args:
        pos: ``(N, d)`` positions.
        n: points to pick per graph (all of a graph's points if it has fewer).
        batch: ``(N,)`` graph of every point.
        start: ``"first"`` (each graph's lowest node index), ``"random"`` (uniform per graph, from
            ``generator``) or a ``(B,)`` long tensor of (global) start indices, one per graph.
        periodic_length: periodic box side(s): minimum-image distances.

    Returns:
        ``(sum_g min(n, n_g),)`` long global node indices, graph by graph in graph order, each graph's in
        pick order.
    """
    pos = _check_pos(pos)
    n_pts, d = pos.shape
    device = pos.device
    batch = _check_batch(batch, n_pts, device)
    box = _box(periodic_length, d, pos)
    n = int(n)
    if n_pts == 0 or n <= 0:
        return torch.empty(0, dtype=torch.long, device=device)
    n_graphs = int(batch.max()) + 1
    sizes = torch.bincount(batch, minlength=n_graphs)
    n_take = sizes.clamp(max=n)
    if isinstance(start, torch.Tensor):
        cur = start.to(device=device, dtype=torch.long).reshape(-1)
        if cur.numel() != n_graphs or not bool((batch[cur.clamp(0, n_pts - 1)] == torch.arange(
                n_graphs, device=device))[sizes > 0].all()):
            raise ValueError("start must hold one node index of each graph, in graph order")
    elif start == "first":
        cur = _segment_argmax_first(torch.zeros(n_pts, dtype=pos.dtype, device=device), batch, n_graphs)
    elif start == "random":
        u = torch.rand(n_pts, generator=generator, device=device if generator is None else generator.device)
        cur = _segment_argmax_first(u.to(device), batch, n_graphs)
    else:
        raise ValueError(f"start must be 'first', 'random' or a tensor of indices; got {start!r}")
    cur = cur.clamp(max=n_pts - 1)  # empty graphs: a dummy index, dropped below

    n_steps = int(n_take.max())
    picks = torch.empty(n_steps, n_graphs, dtype=torch.long, device=device)
    min_d2 = torch.full((n_pts,), float("inf"), dtype=pos.dtype, device=device)
    for step in range(n_steps):
        picks[step] = cur
        if step + 1 == n_steps:
            break
        min_d2 = torch.minimum(min_d2, _sq_dist(pos, pos[cur][batch], box))
        cur = _segment_argmax_first(min_d2, batch, n_graphs).clamp(max=n_pts - 1)
    keep = torch.arange(n_steps, device=device)[None, :] < n_take[:, None]  # (B, n_steps)
    return picks.T[keep]


def farthest_point_sampling_brute_force(
    pos: torch.Tensor, n: int, batch: torch.Tensor | None = None,
    periodic_length: float | Sequence[float] | None = None,
) -> torch.Tensor:
    """Reference for :func:`farthest_point_sampling` (``start="first"``): one graph at a time, recomputing every
    candidate's distance to all picks at every step (``O(n^2 N)``)."""
    pos = _check_pos(pos)
    batch = _check_batch(batch, pos.shape[0], pos.device)
    box = _box(periodic_length, pos.shape[1], pos)
    out = []
    for g in range(int(batch.max()) + 1 if batch.numel() else 0):
        nodes = (batch == g).nonzero(as_tuple=True)[0]
        if nodes.numel() == 0:
            continue
        chosen = [int(nodes[0])]
        while len(chosen) < min(n, nodes.numel()):
            d2 = _sq_dist(pos[nodes][:, None, :], pos[chosen][None, :, :], box).min(1).values
            chosen.append(int(nodes[int(torch.argmax(d2))]))  # argmax: first maximal entry
        out.extend(chosen[: min(n, nodes.numel())])
    return torch.tensor(out, dtype=torch.long, device=pos.device)
