"""Ragged per-sample arrays: samples whose first axis (rows: nodes, particles) differs in length.

The layout is that of PyG's collation: the rows of all samples concatenated into one ``values`` array of shape
``(total_rows, *feature_shape)`` and ``offsets`` of shape ``(n_samples + 1,)`` (int64, ``offsets[0] = 0``,
non-decreasing, ``offsets[-1] = total_rows``); sample ``i`` is ``values[offsets[i]:offsets[i + 1]]``, of shape
``(n_i, *feature_shape)`` with ``n_i = offsets[i + 1] - offsets[i]`` (``n_i = 0`` is allowed).

``values`` and ``offsets`` are both NumPy arrays or both torch tensors (on the same device);
:meth:`RaggedArray.to` gives the torch version, :meth:`RaggedArray.numpy` the NumPy one. torch is imported only
when a torch tensor is asked for, so NumPy-only users (the HDF5 storage) do not pay for it.

A selection feeds PyG directly (``offsets`` is PyG's ``Batch.ptr`` and :meth:`RaggedArray.batch_vector` its
``Batch.batch``)::

    from torch_geometric.data import Batch, Data

    pos = stored.fields["pos"].select(batch_indices).to(device)         # RaggedArray, values (R, 3)
    batch = Batch(pos=pos.values, batch=pos.batch_vector(), ptr=pos.offsets)
    batch.num_graphs == len(pos); batch.ptr.diff() == pos.counts         # nodes per graph

    # or, when per-graph access (batch.get_example(i)) is needed, through a Data list (a Python loop):
    batch = Batch.from_data_list([Data(pos=pos[i]) for i in range(len(pos))])

Several ragged fields of the same samples (positions, velocities, particle types) share their offsets; pass
each one's ``values`` as a node attribute of the same ``Batch``.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from typing import Any

import numpy as np


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def offsets_problem(offsets: Any, n_rows: int, n_samples: int | None = None) -> str | None:
    """Why ``offsets`` (NumPy, 1-D) is not a valid offsets array for ``n_rows`` rows (one line), or ``None``."""
    offsets = np.asarray(offsets)
    if offsets.ndim != 1 or offsets.shape[0] < 1:
        return f"offsets have shape {tuple(offsets.shape)}, expected (n_samples + 1,)"
    if n_samples is not None and offsets.shape[0] != n_samples + 1:
        return f"{offsets.shape[0]} offsets for {n_samples} samples (expected {n_samples + 1})"
    if not np.issubdtype(offsets.dtype, np.integer):
        return f"offsets have dtype {offsets.dtype}, expected an integer dtype"
    if offsets[0] != 0:
        return f"offsets[0] = {int(offsets[0])}, expected 0"
    drops = np.flatnonzero(np.diff(offsets) < 0)
    if drops.size:
        i = int(drops[0])
        return f"offsets not monotone (offsets[{i}] = {int(offsets[i])} > offsets[{i + 1}] = {int(offsets[i + 1])})"
    if int(offsets[-1]) != n_rows:
        return f"last offset {int(offsets[-1])} != {n_rows} stored rows"
    return None


class RaggedArray:
    """``n`` samples of shapes ``(n_i, *feature_shape)`` stored as ``values`` + ``offsets`` (see the module doc).

    Args:
        values: ``(total_rows, *feature_shape)`` NumPy array or torch tensor.
        offsets: ``(n + 1,)`` integer offsets (converted to int64, and to the library/device of ``values``).
        validate: check ``offsets`` (``offsets[0] = 0``, non-decreasing, ``offsets[-1] = total_rows``); costs a
            device synchronisation for CUDA tensors, so internal constructions skip it.

    Raises:
        ValueError: invalid offsets (a one-line message).
    """

    __slots__ = ("offsets", "values")

    def __init__(self, values: Any, offsets: Any, *, validate: bool = True) -> None:
        if _is_torch(values):
            import torch

            offsets = torch.as_tensor(offsets, dtype=torch.int64, device=values.device)
        else:
            if _is_torch(offsets):
                offsets = offsets.detach().cpu().numpy()
            values = np.asarray(values)
            offsets = np.asarray(offsets)
            if offsets.dtype != np.int64 and (np.issubdtype(offsets.dtype, np.integer) or offsets.size == 0):
                offsets = offsets.astype(np.int64)
        if values.ndim < 1:
            raise ValueError(f"ragged values must have a row axis, got shape {tuple(values.shape)}")
        if validate:
            host = offsets.detach().cpu().numpy() if _is_torch(offsets) else offsets
            problem = offsets_problem(host, int(values.shape[0]))
            if problem is not None:
                raise ValueError(f"invalid ragged array: {problem}")
        self.values = values
        self.offsets = offsets

    # -- construction
    @classmethod
    def from_list(cls, arrays: Iterable[Any], *, feature_shape: Sequence[int] | None = None,
                  dtype: Any = None) -> RaggedArray:
        """Concatenate per-sample arrays ``(n_i, *feature_shape)`` (all NumPy or all torch).

        Args:
            arrays: the samples; a 1-D sample ``(n_i,)`` has ``feature_shape == ()``.
            feature_shape: expected feature shape (required to build an empty array from no samples).
            dtype: NumPy dtype of the values (NumPy input only; default: that of the concatenation).

        Raises:
            ValueError: a sample whose feature shape differs from ``feature_shape`` (or from the first sample's).
        """
        arrays = list(arrays)
        use_torch = bool(arrays) and all(_is_torch(a) for a in arrays)
        if not use_torch:
            arrays = [a.detach().cpu().numpy() if _is_torch(a) else np.asarray(a) for a in arrays]
        expected = tuple(feature_shape) if feature_shape is not None else None
        for i, a in enumerate(arrays):
            if a.ndim < 1 or (expected is not None and tuple(a.shape[1:]) != expected):
                want = "(n_i" + "".join(f", {s}" for s in expected) + ")" if expected is not None else "(n_i, ...)"
                raise ValueError(f"ragged sample {i} has shape {tuple(a.shape)}, expected {want}")
            if expected is None:
                expected = tuple(a.shape[1:])
        if expected is None:
            raise ValueError("from_list of no samples needs feature_shape")
        counts = np.fromiter((a.shape[0] for a in arrays), dtype=np.int64, count=len(arrays))
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        if use_torch:
            import torch

            return cls(torch.cat(arrays, 0), torch.from_numpy(offsets).to(arrays[0].device), validate=False)
        values = np.concatenate(arrays, 0) if arrays else np.empty((0, *expected), dtype=dtype or np.float32)
        if dtype is not None:
            values = values.astype(dtype, copy=False)
        return cls(values, offsets, validate=False)

    @classmethod
    def from_counts(cls, values: Any, counts: Any) -> RaggedArray:
        """From ``values`` ``(sum(counts), *feature_shape)`` and per-sample row counts ``(n,)``."""
        if _is_torch(values):
            import torch

            counts = torch.as_tensor(counts, dtype=torch.int64, device=values.device)
            offsets = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        else:
            counts = np.asarray(counts, dtype=np.int64)
            offsets = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(counts)])
        return cls(values, offsets)

    # -- shape
    def __len__(self) -> int:
        return int(self.offsets.shape[0]) - 1

    @property
    def n_rows(self) -> int:
        """Total number of rows ``offsets[-1]`` (= ``values.shape[0]``)."""
        return int(self.values.shape[0])

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.values.shape[1:])

    @property
    def dtype(self) -> Any:
        return self.values.dtype

    @property
    def is_torch(self) -> bool:
        return _is_torch(self.values)

    @property
    def counts(self) -> Any:
        """Rows of every sample, ``(n,)`` int64 (same library/device as ``offsets``)."""
        return self.offsets[1:] - self.offsets[:-1]

    # -- access
    def __getitem__(self, index: Any) -> Any:
        """``int`` -> the sample ``(n_i, *feature_shape)`` (a view); ``slice`` -> a contiguous
        :class:`RaggedArray` (a view of the values, rebased offsets); an index array or boolean mask ->
        :meth:`select`."""
        if isinstance(index, (int, np.integer)):
            n = len(self)
            i = int(index)
            if not -n <= i < n:
                raise IndexError(f"sample index {i} out of range for {n} samples")
            i %= n
            return self.values[int(self.offsets[i]):int(self.offsets[i + 1])]
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return self.select(np.arange(start, stop, step))
            stop = max(start, stop)
            lo, hi = int(self.offsets[start]), int(self.offsets[stop])
            return RaggedArray(self.values[lo:hi], self.offsets[start:stop + 1] - lo, validate=False)
        return self.select(index)

    def __iter__(self) -> Iterator[Any]:
        for lo, hi in pairwise(self.offsets.tolist()):
            yield self.values[lo:hi]

    def to_list(self) -> list[Any]:
        """The samples as a list of ``(n_i, *feature_shape)`` views."""
        return list(self)

    def select(self, indices: Any) -> RaggedArray:
        """The samples ``indices`` (``(k,)`` ints, negative allowed, repeats allowed, or an ``(n,)`` boolean
        mask), in that order, as a new :class:`RaggedArray` with ``values`` ``(sum_j n_{indices[j]},
        *feature_shape)``: one vectorised gather of the rows, no Python loop.

        Raises:
            IndexError: an index out of range, or a mask of the wrong length.
        """
        n = len(self)
        if self.is_torch:
            import torch

            if not _is_torch(indices):
                indices = np.ascontiguousarray(indices)  # torch refuses negative strides (reversed views)
            idx = torch.as_tensor(indices, device=self.offsets.device)
            if idx.dtype == torch.bool:
                if idx.shape != (n,):
                    raise IndexError(f"boolean mask of shape {tuple(idx.shape)} for {n} samples")
                idx = torch.nonzero(idx).flatten()
            idx = idx.to(torch.int64).reshape(-1)
            if idx.numel() and (bool((idx < -n).any()) or bool((idx >= n).any())):
                raise IndexError(f"sample index out of range for {n} samples")
            idx = torch.remainder(idx, max(n, 1))
            starts, counts = self.offsets[idx], self.counts[idx]
            new_offsets = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
            total = int(new_offsets[-1])
            shift = torch.repeat_interleave(starts - new_offsets[:-1], counts, output_size=total)
            rows = torch.arange(total, device=idx.device) + shift
            return RaggedArray(self.values[rows], new_offsets, validate=False)
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise IndexError(f"boolean mask of shape {idx.shape} for {n} samples")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"sample index out of range for {n} samples")
        idx = np.remainder(idx, max(n, 1))
        starts, counts = self.offsets[idx], self.counts[idx]
        new_offsets = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum(counts, out=new_offsets[1:])
        rows = np.arange(new_offsets[-1], dtype=np.int64) + np.repeat(starts - new_offsets[:-1], counts)
        return RaggedArray(self.values[rows], new_offsets, validate=False)

    def batch_vector(self) -> Any:
        """The sample index of every row, ``(total_rows,)`` int64 (PyG's ``Batch.batch``): ``[0]*n_0 + [1]*n_1
        + ...``."""
        if self.is_torch:
            import torch

            arange = torch.arange(len(self), device=self.offsets.device)
            return torch.repeat_interleave(arange, self.counts, output_size=self.n_rows)
        return np.repeat(np.arange(len(self), dtype=np.int64), self.counts)

    # -- conversion
    def to(self, device: Any = None, dtype: Any = None, non_blocking: bool = False) -> RaggedArray:
        """A torch-backed copy on ``device`` (values cast to the torch ``dtype`` if given; offsets stay int64)."""
        import torch

        values = self.values if self.is_torch else torch.from_numpy(np.ascontiguousarray(self.values))
        offsets = self.offsets if self.is_torch else torch.from_numpy(np.ascontiguousarray(self.offsets))
        return RaggedArray(values.to(device=device, dtype=dtype, non_blocking=non_blocking),
                           offsets.to(device=device, non_blocking=non_blocking), validate=False)

    def numpy(self) -> RaggedArray:
        """A NumPy-backed version (copied to the host for CUDA tensors)."""
        if not self.is_torch:
            return self
        return RaggedArray(self.values.detach().cpu().numpy(), self.offsets.detach().cpu().numpy(), validate=False)

    def __repr__(self) -> str:
        kind = f"torch, {self.values.device}" if self.is_torch else "numpy"
        return (f"RaggedArray(n={len(self)}, rows={self.n_rows}, feature_shape={self.feature_shape}, "
                f"dtype={self.dtype}, {kind})")
