"""The on-disk dataset cache: one directory per generation config, shared by every run that asks for it.

``<data_dir>/<pde>/<hash>/`` where ``<hash>`` is :func:`datasets.storage.config_hash` of the generation config
(the problem's ``storage_config()`` plus the data seed; not the sample counts, and not the loaded ``resolution``
of a gridded problem, whose data are stored at ``store_resolution`` -- by default the solver grid -- and
subsampled to ``resolution`` while reading). It holds ``config.json`` (the config, for people), ``<split>.h5``
per finished split and ``<split>.lock``. Loading the same data at another resolution therefore reads the same
files and solves nothing. A sweep of many jobs over the same data generates it once:
:meth:`DatasetCache.ensure_split` takes a file lock, so concurrent jobs wait for the first one and then read its
file. Asking for more samples than stored extends the file (samples
are determined by their index, so the first ``n`` never change). A cached file that fails validation is
reported with a warning, deleted and regenerated, never used.
"""
from __future__ import annotations

import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

from filelock import FileLock

from datasets.generation import (
    DEFAULT_CHUNK_SIZE,
    ProgressFn,
    SplitResult,
    check_chunk_size,
    generate_split,
    generation_config,
    storage_problem,
)
from datasets.storage import (
    CorruptDatasetError,
    StoredSplit,
    canonical_json,
    config_hash,
    partial_path,
    read_manifest,
    read_split,
    split_path,
)

log = logging.getLogger(__name__)


class CorruptDatasetWarning(UserWarning):
    """A cached dataset failed validation and is being regenerated."""


def dataset_dir(data_dir: str | os.PathLike, problem: Any, seed: int) -> Path:
    """The cache directory of ``problem`` generated with ``seed``."""
    return Path(data_dir) / problem.name / config_hash(generation_config(problem, seed))


class DatasetCache:
    """Generate-once access to stored splits under ``data_dir``.

    Args:
        data_dir: root of the cache.
        chunk_size: samples per written chunk (the resume granularity): a positive integer or ``"auto"``
            (:func:`datasets.generation.generate_split`).
        lock_timeout: seconds to wait for another process generating the same split (-1: forever).
    """

    def __init__(self, data_dir: str | os.PathLike, chunk_size: int | str = DEFAULT_CHUNK_SIZE,
                 lock_timeout: float = -1) -> None:
        self.data_dir = Path(data_dir).expanduser()
        self.chunk_size = check_chunk_size(chunk_size)
        self.lock_timeout = lock_timeout

    def directory(self, problem: Any, seed: int) -> Path:
        return dataset_dir(self.data_dir, problem, seed)

    def path(self, problem: Any, seed: int, split: str) -> Path:
        return split_path(self.directory(problem, seed), split)

    def _lock(self, directory: Path, split: str) -> FileLock:
        directory.mkdir(parents=True, exist_ok=True)
        return FileLock(str(directory / f"{split}.lock"), timeout=self.lock_timeout)

    def _discard(self, path: Path, problem: Any, reason: BaseException | str) -> None:
        msg = f"{reason}; deleting the cached '{problem.name}' file {path} and regenerating it"
        warnings.warn(msg, CorruptDatasetWarning, stacklevel=3)
        log.warning(msg)
        for p in (path, partial_path(path)):
            if p.exists():
                p.unlink()

    def _usable(self, path: Path, problem: Any, expected: str, n: int) -> bool | None:
        """``True``: complete with >= n samples; ``None``: valid but too short (extend); ``False``: absent.

        A corrupt file is discarded (warned about) and reported absent."""
        if not path.exists():
            return False
        try:
            manifest = read_manifest(path)
            if manifest.get("config_hash") != expected or manifest.get("pde") != problem.name:
                raise CorruptDatasetError(f"{path}: stored config hash {manifest.get('config_hash')} "
                                          f"does not match the '{problem.name}' config ({expected})")
            if not manifest.get("complete"):
                raise CorruptDatasetError(f"{path}: complete flag missing on a final-named file")
            n_have = int(manifest.get("n_completed", -1))
            if n_have != int(manifest.get("n_total", -2)):
                raise CorruptDatasetError(f"{path}: manifest lists {n_have}/{manifest.get('n_total')} samples")
            # open every field once: catches truncated datasets h5py only notices on read
            read_split(path, pde=problem.name, expected_hash=expected, load=())
        except CorruptDatasetError as exc:
            self._discard(path, problem, exc)
            return False
        return True if n_have >= n else None

    def ensure_split(self, problem: Any, seed: int, split: str, n: int,
                     progress: ProgressFn | None = None) -> SplitResult:
        """Make sure ``split`` holds at least ``n`` valid samples (generating, resuming or extending it), at the
        problem's stored grid."""
        problem = storage_problem(problem)
        directory = self.directory(problem, seed)
        path = split_path(directory, split)
        expected = config_hash(generation_config(problem, seed))
        start = time.perf_counter()
        with self._lock(directory, split):
            config_file = directory / "config.json"
            if not config_file.exists():
                tmp = config_file.with_suffix(".json.tmp")
                tmp.write_text(json.dumps(json.loads(canonical_json(generation_config(problem, seed))), indent=2))
                os.replace(tmp, config_file)
            state = self._usable(path, problem, expected, n)
            if state is True:
                n_have = int(read_manifest(path)["n_completed"])
                if progress is not None:
                    progress(n_have, n_have)
                return SplitResult(split, path, n_have, 0, time.perf_counter() - start)
            if state is None:
                log.info("extending cached '%s' %s to %d samples", problem.name, split, n)
            try:
                return generate_split(problem, seed, split, n, path, chunk_size=self.chunk_size,
                                      progress=progress)
            except CorruptDatasetError as exc:  # stale file the writer refused: discard and start again
                self._discard(path, problem, exc)
                return generate_split(problem, seed, split, n, path, chunk_size=self.chunk_size,
                                      progress=progress)

    def load_split(self, problem: Any, seed: int, split: str, n: int,
                   progress: ProgressFn | None = None) -> StoredSplit:
        """Ensure, then read the first ``n`` samples of ``split`` at ``problem``'s resolution (a file corrupt on
        read is regenerated once).

        The stored (``store_resolution``) arrays are subsampled while reading (block of samples by block, see
        :func:`~datasets.storage.read_split`, so memory is that of the loaded grid); the returned fields have
        ``problem.field_shapes()`` and the coordinates are the stored ones subsampled the same way."""
        store = storage_problem(problem)
        shapes = {k: tuple(v) for k, v in store.field_shapes().items()}
        select = problem.read_selection() if store is not problem else None
        expected = config_hash(generation_config(store, seed))
        for attempt in range(2):
            result = self.ensure_split(store, seed, split, n, progress=progress)
            try:
                stored = read_split(result.path, pde=problem.name, expected_hash=expected, n=n, fields=shapes,
                                    select=select)
                if store is not problem:
                    stored.fields = problem.restrict(stored.fields)
                    stored.coords = problem.subsample_coordinates(stored.coords)
                return stored
            except CorruptDatasetError as exc:
                if attempt:
                    raise
                with self._lock(result.path.parent, split):
                    self._discard(result.path, problem, exc)
        raise AssertionError("unreachable")
