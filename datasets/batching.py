"""The one batch contract of pdeforge, met by grid batches and by PyG graph batches.

Every batch maps names to tensors whose **first axis is rows** and **second axis is time-major channels**
(channel ``k * C + c`` = field ``c`` at the ``k``-th step):

================  ===========================================  ===============================================
                  grid batch (``dict``)                        graph batch (``torch_geometric.data.Batch``)
================  ===========================================  ===============================================
rows              samples: ``x`` is ``(B, C_in, *S)``           nodes of all graphs: ``x`` is ``(N_nodes, C_in)``
``y``             ``(B, C_out * T, *S)``                        ``(N_nodes, C_out * T)``
``trajectory``    ``(B, T_all * C, *S)`` (training splits of    ``(N_nodes, T_all * C)``
                  tasks that draw their own windows)
``params``        ``(B, P)`` per-sample PDE parameters           ``(B, P)`` (graph-level)
``time``          (not served: grid networks do not read it)    ``(B,)`` time of the first predicted step / T
``time_step``                                                   ``(B,)`` snapshot spacing / T
geometry          (the grid is implicit)                        ``pos`` ``(N_nodes, d)`` in ``[0, 1]``,
                                                                ``edge_index`` ``(2, E)``, ``batch`` ``(N_nodes,)``
================  ===========================================  ===============================================

A per-sample reduction reduces every row over its trailing axes and then sums the rows of each sample
(:func:`sample_sums`): the identity for grids, a scatter over ``batch`` for graphs, so a graph's nodes count as one
sample (graphs are counted, not nodes). Losses, metrics, normalisers (channel statistics over axis 0 and the
trailing axes), rollouts (windows slide along axis 1) and evaluation use only the functions below.
"""
from __future__ import annotations

import copy
import sys
from typing import Any, Mapping

import torch


def scatter(*args: Any, **kwargs: Any) -> torch.Tensor:
    """``torch_geometric.utils.scatter``, imported on first use (a grid-only run never imports PyG: ~0.7 s)."""
    from torch_geometric.utils import scatter as pyg_scatter

    return pyg_scatter(*args, **kwargs)

AnyBatch = Any  # a grid batch dict or a torch_geometric Batch


def is_graph(batch: AnyBatch) -> bool:
    """Whether ``batch`` is a PyG graph batch (rows are nodes). A batch can only be one if PyG is imported."""
    data = sys.modules.get("torch_geometric.data")
    return data is not None and isinstance(batch, data.Batch)


def num_samples(batch: AnyBatch) -> int:
    """Samples in the batch: graphs for a graph batch, rows for a grid batch."""
    if is_graph(batch):
        return int(batch.num_graphs)
    first = "x" if "x" in batch else next(iter(batch))
    return int(batch[first].shape[0])


def sample_index(batch: AnyBatch) -> torch.Tensor | None:
    """The sample of every row (``batch.batch`` for graphs), ``None`` for grids (row ``i`` is sample ``i``)."""
    return batch.batch if is_graph(batch) else None


def rows_per_sample(batch: AnyBatch) -> torch.Tensor | None:
    """Rows (nodes) of each sample ``(B,)`` for graphs, ``None`` for grids."""
    if not is_graph(batch):
        return None
    return batch.ptr[1:] - batch.ptr[:-1]


def sample_sums(values: torch.Tensor, index: torch.Tensor | None, n: int | None = None) -> torch.Tensor:
    """Per-sample sums of ``values``: every row summed over its trailing axes, then the rows of each sample summed.

    Args:
        values: ``(rows, ...)``.
        index: the sample of each row (graphs) or ``None`` (grids: each row is one sample).
        n: number of samples (default ``index.max() + 1``).
    Returns:
        ``(n_samples,)``.
    """
    per_row = values.reshape(values.shape[0], -1).sum(dim=1)
    if index is None:
        return per_row
    size = int(n) if n is not None else (int(index.max()) + 1 if index.numel() else 0)
    return scatter(per_row, index, dim=0, dim_size=size, reduce="sum")


def sample_counts(values: torch.Tensor, index: torch.Tensor | None, n: int | None = None) -> torch.Tensor:
    """Number of entries each sample contributes to :func:`sample_sums` of ``values``: ``(n_samples,)``."""
    per_row = values[0].numel() if values.shape[0] else 0
    ones = torch.full((values.shape[0],), float(per_row), device=values.device, dtype=torch.float32)
    if index is None:
        return ones
    size = int(n) if n is not None else (int(index.max()) + 1 if index.numel() else 0)
    return scatter(ones, index, dim=0, dim_size=size, reduce="sum")


def per_sample_rows(values: torch.Tensor, batch: AnyBatch) -> torch.Tensor:
    """A per-sample tensor ``(B, ...)`` broadcast to rows: ``values[batch.batch]`` for graphs, as is for grids."""
    index = sample_index(batch)
    return values if index is None else values.index_select(0, index)


def network_input(batch: AnyBatch, x: torch.Tensor, **graph_attrs: torch.Tensor) -> Any:
    """What the network is called with for input channels ``x`` (same rows as ``batch["x"]``): the tensor itself
    for a grid batch; for a graph batch a copy of the batch that shares its tensors, with ``x`` (and e.g.
    ``time``) replaced, so graph networks see the geometry (``pos``, ``edge_index``, ``batch``, ``params``)."""
    if not is_graph(batch):
        return x
    out = copy.copy(batch)  # PyG copies the attribute store, not the tensors
    out.x = x
    for key, value in graph_attrs.items():
        out[key] = value
    return out


def optional(batch: AnyBatch, key: str) -> torch.Tensor | None:
    """``batch[key]``, or ``None`` when the batch has no ``key``."""
    return batch[key] if key in batch else None


def to_device(batch: AnyBatch, device: torch.device | str) -> AnyBatch:
    """``batch`` with every tensor on ``device``."""
    if is_graph(batch):
        return batch.to(device)
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def first_sample(batch: AnyBatch, key: str) -> torch.Tensor:
    """Sample 0's rows of ``batch[key]``: ``(C, *S)`` for grids, ``(n_nodes_0, C)`` for graphs."""
    value = batch[key]
    if is_graph(batch):
        return value[int(batch.ptr[0]):int(batch.ptr[1])]
    return value[0]


def first_rows(values: torch.Tensor, batch: AnyBatch) -> torch.Tensor:
    """Sample 0's rows of a tensor with the batch's rows (e.g. a prediction): ``values[0]`` for grids,
    the first graph's node rows for graphs."""
    if is_graph(batch):
        return values[int(batch.ptr[0]):int(batch.ptr[1])]
    return values[0]


def select_rows(batch: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    """``batch[key]`` with a one-line error naming the keys a batch has when it is missing."""
    if key not in batch:
        keys = list(batch.keys()) if callable(getattr(batch, "keys", None)) else []
        raise KeyError(f"the batch has no {key!r}; it has {sorted(keys)}")
    return batch[key]
