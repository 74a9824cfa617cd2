"""Samples of in-memory tensors, on the host or already on the accelerator, fetched a whole batch at a time.

:class:`TensorDictDataset` is what every :class:`datasets.datamodule.GridDataModule` loader iterates, whether its
splits live in host memory or on the GPU (``data.data_on_device``): a plain ``torch.utils.data.DataLoader`` drives
it, so Lightning sees an ordinary loader (it injects its ``DistributedSampler`` for training under DDP, seeded by
the run seed, and calls ``set_epoch``), and the GPU-resident path is the same code with the tensors on the device.
``__getitems__`` indexes all the batch's samples in one ``index_select`` per tensor, so a batch costs one gather on
the device instead of ``batch_size`` small copies and a collate.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch.utils.data import Dataset


class TensorDictDataset(Dataset):
    """Samples ``{name: tensor[i]}`` of equally long tensors (all on one device).

    Args:
        tensors: e.g. ``{"x": (N, C_in, *S), "y": (N, C_out, *S)}``, all with the same ``N``.
        repeats: the dataset is ``repeats`` passes over the ``N`` samples (index ``i`` is sample ``i mod N``), so
            one loader epoch is several passes (MP-PDE's official "epoch" is 250 passes, each with fresh random
            start times); shuffling and DDP sharding act on all ``repeats * N`` indices.

    ``dataset[i]`` is one sample; ``dataset.__getitems__([i, j, ...])`` (what ``DataLoader`` calls when it exists)
    is the whole batch ``{name: (B, ...)}``, so the loader's ``collate_fn`` must be :func:`collate_batch`.
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor], repeats: int = 1) -> None:
        if not tensors:
            raise ValueError("TensorDictDataset needs at least one tensor")
        lengths = {k: int(v.shape[0]) for k, v in tensors.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"tensors have different lengths: {lengths}")
        devices = {v.device for v in tensors.values()}
        if len(devices) != 1:
            raise ValueError(f"tensors are on different devices: {sorted(map(str, devices))}")
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise ValueError(f"repeats={repeats!r} is not allowed; use an integer >= 1")
        self.tensors = dict(tensors)
        self.device: torch.device = devices.pop()
        self._n = next(iter(lengths.values()))
        self.repeats = repeats

    def __len__(self) -> int:
        return self._n * self.repeats

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i % self._n] for k, v in self.tensors.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.device)
        if self.repeats > 1:
            idx = idx % self._n
        return {k: v.index_select(0, idx) for k, v in self.tensors.items()}


def collate_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``collate_fn`` of a :class:`TensorDictDataset` loader: ``__getitems__`` already built the batch."""
    return batch


def tensors_nbytes(tensors: Mapping[str, torch.Tensor]) -> int:
    """Bytes held by ``tensors``."""
    return sum(t.numel() * t.element_size() for t in tensors.values())
