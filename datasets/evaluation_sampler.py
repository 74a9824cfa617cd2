"""Each rank evaluates its own samples exactly once: validation and test sharding without padding.

Lightning's default for evaluation under DDP is a ``DistributedSampler``, which pads the last shard by wrapping
around so every rank gets the same count; averaged metrics then count the wrapped samples twice.
:class:`EvaluationShardSampler` gives rank ``r`` of ``R`` the samples ``r, r + R, r + 2R, ...`` and nothing more
(shards may differ in length by one). It subclasses ``DistributedSampler`` so that Lightning keeps it instead of
injecting its own. Metrics reduced as per-sample sums and counts (:mod:`operators.metrics`) are then exact.
"""
from __future__ import annotations

from typing import Iterator, Sized

from torch.utils.data import DistributedSampler


class EvaluationShardSampler(DistributedSampler):
    """Sequential, unpadded shard of ``dataset`` for rank ``rank`` of ``num_replicas``.

    Args:
        dataset: the evaluated split (only its length is used).
        num_replicas / rank: the process group; 1 / 0 for a single process.
        split: the split's name, for the error message.

    Raises ``ValueError`` when a rank would get no sample (DDP then waits forever on the ranks that have one).
    """

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0, split: str = "val") -> None:
        n = len(dataset)
        if n < num_replicas:
            raise ValueError(f"n_{split}={n} is smaller than the number of processes ({num_replicas}); "
                             f"use n_{split} >= {num_replicas} so every rank evaluates at least one sample")
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = len(range(self.rank, n, self.num_replicas))
        self.total_size = n

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples
