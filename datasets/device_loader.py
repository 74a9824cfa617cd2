"""Serve batches from tensors that already live on the accelerator (no DataLoader workers, no host copies).

When a whole split fits in GPU memory, copying it there once and indexing batches out of it removes the
per-step host-to-device transfer and the collate overhead, which dominate for small operator models.
:class:`DeviceBatchLoader` is distributed-aware in the way ``DistributedSampler`` is: each rank iterates its
own shard (rank ``r`` takes positions ``r, r + R, r + 2R, ...`` of the epoch's permutation, padded by
wrapping around so every rank runs the same number of steps), and ``set_epoch`` reshuffles deterministically
(seed + epoch). Lightning calls ``loader.sampler.set_epoch(epoch)`` at the start of every training epoch.
"""
from __future__ import annotations

import math
from typing import Iterator, Mapping

import torch


def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


class ShardSampler:
    """Indices of one rank's shard of ``n`` samples for the current epoch (``DistributedSampler`` semantics).

    Args:
        n: number of samples.
        shuffle: permute the samples each epoch (with ``seed + epoch``).
        seed: base seed, identical on every rank.
        num_replicas / rank: the process group (default: read from ``torch.distributed``, else 1 / 0).
        drop_last: drop the tail instead of padding so the shards divide evenly.
    """

    def __init__(self, n: int, shuffle: bool = False, seed: int = 0, num_replicas: int | None = None,
                 rank: int | None = None, drop_last: bool = False) -> None:
        world, this_rank = _dist_info()
        self.num_replicas = world if num_replicas is None else int(num_replicas)
        self.rank = this_rank if rank is None else int(rank)
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank={self.rank} is not allowed with num_replicas={self.num_replicas}")
        if n <= 0:
            raise ValueError(f"n={n} is not allowed; a shard sampler needs at least one sample")
        self.n = int(n)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.epoch = 0
        if drop_last and self.n % self.num_replicas:
            self.num_samples = self.n // self.num_replicas
        else:
            self.num_samples = math.ceil(self.n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def indices(self) -> torch.Tensor:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        if self.total_size > self.n:  # pad by wrapping around (as DistributedSampler does)
            reps = math.ceil(self.total_size / self.n)
            order = order.repeat(reps)[: self.total_size]
        else:
            order = order[: self.total_size]
        return order[self.rank: self.total_size: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples


class DeviceBatchLoader:
    """Iterate dict batches ``{name: tensor[idx]}`` out of equally long tensors already on their device.

    Args:
        tensors: e.g. ``{"x": (N, C_in, *S), "y": (N, C_out, *S)}``, all with the same ``N``.
        batch_size: samples per batch (per rank).
        shuffle / seed / drop_last / num_replicas / rank: see :class:`ShardSampler`; ``drop_last`` also drops
            a last incomplete batch.
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor], batch_size: int, shuffle: bool = False,
                 seed: int = 0, drop_last: bool = False, num_replicas: int | None = None,
                 rank: int | None = None) -> None:
        if not tensors:
            raise ValueError("DeviceBatchLoader needs at least one tensor")
        lengths = {k: int(v.shape[0]) for k, v in tensors.items()}
        n = next(iter(lengths.values()))
        if any(v != n for v in lengths.values()):
            raise ValueError(f"tensors have different lengths: {lengths}")
        if batch_size <= 0:
            raise ValueError(f"batch_size={batch_size} is not allowed; use a positive integer")
        self.tensors = dict(tensors)
        self.batch_size = int(batch_size)
        self.drop_last = drop_last
        self.sampler = ShardSampler(n, shuffle=shuffle, seed=seed, num_replicas=num_replicas, rank=rank,
                                    drop_last=drop_last)
        self.device = next(iter(self.tensors.values())).device

    @property
    def dataset_size(self) -> int:
        return self.sampler.n

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        idx = self.sampler.indices().to(self.device)
        for b in range(len(self)):
            sel = idx[b * self.batch_size:(b + 1) * self.batch_size]
            yield {k: v.index_select(0, sel) for k, v in self.tensors.items()}


def tensors_nbytes(tensors: Mapping[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())
