"""Per-sample random number generators: sample ``i`` of a split depends only on ``(seed, split, i)``.

Every sample draws its noise from its own CPU :class:`torch.Generator`, seeded with a 63-bit integer derived by
hashing ``(seed, split, index)`` (BLAKE2b, so the streams of different splits and indices are unrelated and the
mapping is stable across Python/NumPy/torch versions and platforms). Consequences: a split can be generated in
any chunking, resumed after an interruption, or sharded across workers, and every sample comes out identical;
train/val/test never share noise; and the device the solver runs on does not change the random input (noise is
always drawn on CPU, then moved).
"""
from __future__ import annotations

import hashlib
from typing import Iterable

import torch

SPLITS = ("train", "val", "test")


def _check(seed: int, split: str, index: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} is not allowed; use a non-negative integer")
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not allowed; use one of {', '.join(SPLITS)}")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"index={index!r} is not allowed; use a non-negative integer")


def sample_seed(seed: int, split: str, index: int) -> int:
    """The 63-bit seed of sample ``index`` of ``split`` under the base ``seed``."""
    seed, index = _as_int(seed), _as_int(index)
    _check(seed, split, index)
    digest = hashlib.blake2b(f"pdeforge:{seed}:{split}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def sample_generator(seed: int, split: str, index: int) -> torch.Generator:
    """A fresh CPU generator for one sample."""
    g = torch.Generator(device="cpu")
    g.manual_seed(sample_seed(seed, split, index))
    return g


def sample_generators(seed: int, split: str, indices: Iterable[int]) -> list[torch.Generator]:
    """One fresh CPU generator per index (a batch of samples)."""
    return [sample_generator(seed, split, int(i)) for i in indices]


def _as_int(value: object) -> object:
    # numpy integers and 0-d tensors are accepted as indices/seeds
    if hasattr(value, "item") and not isinstance(value, (int, bool)):
        try:
            item = value.item()  # type: ignore[union-attr]
        except (TypeError, ValueError):
            return value
        if isinstance(item, int):
            return item
    return value
