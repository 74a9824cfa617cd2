"""Self-describing HDF5 storage of generated PDE data: one file per split, written chunk by chunk.

Layout of ``<split>.h5``::

    /<field>            float32 (N, *sample_shape)   e.g. Burgers ``u`` (N, T, S); Darcy ``a``, ``u`` (N, S, S);
                                                      Navier-Stokes ``w`` (N, T, S, S)
    /<field>/values     ragged field (per-sample shape ``(None, *feature_shape)``: a row count that differs
                        between samples, e.g. particles): (total_rows, *feature_shape), float32 unless
                        ``SplitSpec.dtypes`` says otherwise, chunked along rows; group attrs ``layout = "ragged"``
    /<field>/offsets    int64 (N + 1,): offsets[0] = 0, non-decreasing, offsets[N] = total_rows; sample i is
                        values[offsets[i]:offsets[i + 1]] (PyG's collation; read back as a
                        :class:`~datasets.ragged.RaggedArray`)
    /coords/<name>      float64 coordinates and fixed data (``t``, ``x``, ``y``, forcing ``f``)
    attrs               manifest: ``format_version``, ``pde``, ``split``, ``seed``, ``config_json``,
                        ``config_hash``, ``n_total``, ``n_completed``, ``complete``, ``fields``, plus every
                        PDE parameter of the generation config as its own attribute

Generation writes ``<split>.h5.partial`` and bumps ``n_completed`` (and flushes) after every chunk; the file is
renamed to ``<split>.h5`` only when all ``n_total`` samples are written. An interrupted generation therefore
resumes at ``n_completed``, and a half-written file never carries the final name. A ragged field's rows are
written first, then its offsets, then ``n_completed``; a resumed file drops the rows beyond
``offsets[n_completed]`` (written by an interrupted chunk) before appending. The ``fields`` manifest attribute
gives every field's per-sample shape, ``null`` for a ragged first axis. Files with dense fields only are laid out
exactly as before ragged fields existed (same ``format_version``). Readers validate the manifest
and raise :class:`CorruptDatasetError` (naming the file and the problem) for anything unexpected, including
files h5py cannot open at all.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import h5py
import numpy as np

from datasets.ragged import RaggedArray, offsets_problem

FORMAT_VERSION = 1
#: target bytes of one HDF5 chunk of a ragged field's ``values`` (whole rows, at least one)
RAGGED_CHUNK_BYTES = 256 * 2**10
#: HDF5 chunk length of a ragged field's ``offsets``
OFFSETS_CHUNK = 4096
#: largest block of whole samples :func:`read_split` reads at once when it subsamples (``select``)
READ_BLOCK_BYTES = 64 * 2**20
PARTIAL_SUFFIX = ".partial"
SPLITS = ("train", "val", "test")


class CorruptDatasetError(ValueError):
    """A stored dataset is unreadable, incomplete or does not match the configuration that asked for it."""


# ---------------------------------------------------------------------------------------------- config hashing
def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def canonical_json(config: Mapping[str, Any]) -> str:
    """Stable JSON text of a generation config (sorted keys, no whitespace)."""
    return json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))


def config_hash(config: Mapping[str, Any]) -> str:
    """Short content hash of a generation config; equal configs give equal hashes across processes/machines."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


def split_path(directory: str | os.PathLike, split: str) -> Path:
    return Path(directory) / f"{split}.h5"


def partial_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


def _attr_value(value: Any) -> Any:
    """Something HDF5 can hold as an attribute (scalars and flat numeric lists; anything else as JSON text)."""
    if value is None:
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, str, np.integer, np.floating)):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                         for v in value):
        return np.asarray(value)
    return json.dumps(_jsonable(value), sort_keys=True)


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def is_ragged(shape: Sequence[int | None]) -> bool:
    """Whether a per-sample shape declares a ragged field (first axis ``None``: ``(None, *feature_shape)``)."""
    return len(shape) > 0 and shape[0] is None


# ---------------------------------------------------------------------------------------------- writing
@dataclass
class SplitSpec:
    """What a split file must contain.

    Args:
        pde: problem name (``burgers``, ``darcy``, ``navier_stokes``).
        split: ``train``, ``val`` or ``test``.
        config: the generation config (problem parameters + seed); hashed into ``config_hash``.
        fields: field name -> per-sample shape, e.g. ``{"u": (T, S)}``; a first axis ``None`` declares a ragged
            field whose row count differs between samples, e.g. ``{"pos": (None, 3)}`` (sample i is ``(n_i, 3)``).
        coords: coordinates and fixed arrays stored under ``/coords``.
        n_total: number of samples the finished file holds.
        dtypes: field name -> NumPy dtype of its stored values (default ``float32``), e.g. ``{"type": "int64"}``
            for per-particle integer labels.
    """

    pde: str
    split: str
    config: dict[str, Any]
    fields: dict[str, tuple[int | None, ...]]
    coords: dict[str, np.ndarray] = field(default_factory=dict)
    n_total: int = 0
    dtypes: dict[str, Any] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return config_hash(self.config)


class SplitWriter:
    """Chunked, resumable writer of one split file (use as a context manager or call :meth:`close`).

    Opening finds the state on disk: a complete file with enough samples (nothing to do, ``remaining == 0``),
    a complete file with fewer samples (renamed back to ``.partial`` and extended), a matching ``.partial``
    (resumed at its ``n_completed``), or nothing / a stale or unreadable ``.partial`` (started afresh).
    """

    def __init__(self, path: str | os.PathLike, spec: SplitSpec) -> None:
        if spec.n_total <= 0:
            raise ValueError(f"n_total={spec.n_total} is not allowed for split '{spec.split}'; use a positive integer")
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.spec = spec
        self._file: h5py.File | None = None
        self.n_completed = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open()

    def _dtype(self, name: str) -> np.dtype:
        return np.dtype(self.spec.dtypes.get(name, np.float32))

    # -- opening / resuming
    def _matches(self, f: h5py.File) -> bool:
        if _decode(f.attrs.get("config_hash")) != self.spec.hash:
            return False
        if int(f.attrs.get("format_version", -1)) != FORMAT_VERSION:
            return False
        for name, shape in self.spec.fields.items():
            if name not in f:
                return False
            obj = f[name]
            if is_ragged(shape):
                if not isinstance(obj, h5py.Group) or "values" not in obj or "offsets" not in obj:
                    return False
                obj = obj["values"]
            elif not isinstance(obj, h5py.Dataset):
                return False
            if tuple(obj.shape[1:]) != tuple(shape[1:] if is_ragged(shape) else shape):
                return False
            if obj.dtype != self._dtype(name):
                return False
        return True

    def _capacity(self, f: h5py.File, name: str, n: int) -> int:
        """How many of the first ``n`` samples of field ``name`` the file can hold: a dense field's length; for
        a ragged field the longest valid prefix of its offsets (``offsets[0] = 0``, non-decreasing, within the
        stored rows), so a damaged tail is rewritten rather than trusted."""
        if not is_ragged(self.spec.fields[name]):
            return min(n, f[name].shape[0])
        offsets = f[name]["offsets"][: n + 1]
        if offsets.shape[0] == 0 or offsets[0] != 0:
            return 0
        ok = (np.diff(offsets) >= 0) & (offsets[1:] <= f[name]["values"].shape[0])
        bad = np.flatnonzero(~ok)
        return int(bad[0]) if bad.size else int(offsets.shape[0]) - 1

    def _open(self) -> None:
        if self.path.exists():
            try:
                with h5py.File(self.path, "r") as f:
                    ok = self._matches(f) and bool(f.attrs.get("complete"))
                    n_have = int(f.attrs.get("n_completed", 0))
            except OSError:
                ok, n_have = False, 0
            if ok and n_have >= self.spec.n_total:
                self.n_completed = self.spec.n_total
                return  # already complete: nothing to write
            if ok:
                # extend: the first n_have samples stay valid (samples depend on their index only)
                os.replace(self.path, self.partial)
            else:
                raise CorruptDatasetError(
                    f"{self.path}: stored '{self.spec.pde}' data does not match this configuration "
                    f"(hash {self.spec.hash}); delete it to regenerate"
                )
        if self.partial.exists():
            try:
                f = h5py.File(self.partial, "r+")
            except OSError:
                self.partial.unlink()
            else:
                if self._matches(f):
                    self._file = f
                    n = int(f.attrs.get("n_completed", 0))
                    self.n_completed = min([n] + [self._capacity(f, name, n) for name in self.spec.fields])
                    self._resize(self.spec.n_total)
                    return
                f.close()
                self.partial.unlink()
        self._create()

    def _create(self) -> None:
        f = h5py.File(self.partial, "w")
        spec = self.spec
        for name, shape in spec.fields.items():
            if is_ragged(shape):
                features = tuple(shape[1:])
                dtype = self._dtype(name)
                row_bytes = max(1, int(np.prod(features, dtype=np.int64)) * dtype.itemsize)
                group = f.create_group(name)
                group.attrs["layout"] = "ragged"
                group.create_dataset("values", shape=(0, *features), maxshape=(None, *features), dtype=dtype,
                                     chunks=(max(1, RAGGED_CHUNK_BYTES // row_bytes), *features))
                group.create_dataset("offsets", shape=(spec.n_total + 1,), maxshape=(None,), dtype="int64",
                                     chunks=(OFFSETS_CHUNK,), fillvalue=0)
                continue
            chunk = (1, *shape)
            f.create_dataset(name, shape=(spec.n_total, *shape), maxshape=(None, *shape), dtype=self._dtype(name),
                             chunks=chunk)
        coords = f.create_group("coords")
        for name, value in spec.coords.items():
            coords.create_dataset(name, data=np.asarray(value))
        for key, value in spec.config.items():
            f.attrs[key] = _attr_value(value)
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["pde"] = spec.pde
        f.attrs["split"] = spec.split
        f.attrs["config_json"] = canonical_json(spec.config)
        f.attrs["config_hash"] = spec.hash
        f.attrs["fields"] = json.dumps({k: list(v) for k, v in spec.fields.items()})
        f.attrs["n_total"] = spec.n_total
        f.attrs["n_completed"] = 0
        f.attrs["complete"] = False
        f.flush()
        self._file = f
        self.n_completed = 0

    def _resize(self, n_total: int) -> None:
        assert self._file is not None
        for name, shape in self.spec.fields.items():
            if is_ragged(shape):
                group = self._file[name]
                offsets = group["offsets"]
                if offsets.shape[0] != n_total + 1:
                    offsets.resize(max(n_total, self.n_completed) + 1, axis=0)
                if self.n_completed == 0:
                    offsets[0] = 0
                rows = int(offsets[self.n_completed])  # rows beyond it belong to an interrupted chunk: dropped
                if group["values"].shape[0] != rows:
                    group["values"].resize(rows, axis=0)
                continue
            ds = self._file[name]
            if ds.shape[0] != n_total:
                ds.resize(max(n_total, self.n_completed), axis=0)
        self._file.attrs["n_total"] = n_total
        self._file.attrs["complete"] = False
        self._file.flush()

    # -- writing
    @property
    def remaining(self) -> int:
        return self.spec.n_total - self.n_completed

    @property
    def done(self) -> bool:
        return self.remaining <= 0

    @property
    def attrs(self) -> h5py.AttributeManager | None:
        """The open file's attributes, for run metadata beside the manifest (the generation's ``chunk_size``);
        ``None`` when the split was already complete and nothing is open."""
        return None if self._file is None else self._file.attrs

    def write_chunk(self, arrays: Mapping[str, Any]) -> None:
        """Append the next samples (every field with the same number of samples) and record them as completed.

        Args:
            arrays: field name -> a dense field's ``(n, *sample_shape)`` array; a ragged field's ``n`` samples as a
                list of ``(n_i, *feature_shape)`` arrays (NumPy or torch, ``n_i = 0`` allowed) or a
                :class:`~datasets.ragged.RaggedArray`. Every field is checked before anything is written.
        """
        if self._file is None:
            raise RuntimeError(f"{self.path} is complete or closed; nothing to write")
        lengths = {name: len(arrays[name]) for name in self.spec.fields}
        n = next(iter(lengths.values()))
        if any(v != n for v in lengths.values()):
            raise ValueError(f"chunk fields have different lengths: {lengths}")
        if self.n_completed + n > self.spec.n_total:
            raise ValueError(f"chunk of {n} overflows {self.path} ({self.n_completed}/{self.spec.n_total} written)")
        start = self.n_completed
        prepared: dict[str, Any] = {}
        for name, shape in self.spec.fields.items():
            if is_ragged(shape):
                prepared[name] = self._ragged_chunk(name, arrays[name], tuple(shape[1:]))
                continue
            data = np.asarray(arrays[name], dtype=self._dtype(name))
            if tuple(data.shape[1:]) != tuple(shape):
                raise ValueError(f"field '{name}' has sample shape {tuple(data.shape[1:])}, expected {tuple(shape)}")
            prepared[name] = data
        for name, data in prepared.items():
            if isinstance(data, RaggedArray):
                # rows first, then offsets; n_completed (below) last, so an interrupted chunk is redone on resume
                group = self._file[name]
                first = int(group["offsets"][start])
                stop = first + data.n_rows
                group["values"].resize(stop, axis=0)  # also drops rows of an earlier interrupted chunk
                if data.n_rows:
                    group["values"][first:stop] = data.values
                if n:
                    group["offsets"][start + 1:start + n + 1] = first + data.offsets[1:]
            else:
                self._file[name][start:start + n] = data
        self.n_completed = start + n
        self._file.attrs["n_completed"] = self.n_completed
        self._file.flush()

    def _ragged_chunk(self, name: str, data: Any, features: tuple[int, ...]) -> RaggedArray:
        """A ragged field's chunk as a NumPy :class:`RaggedArray` of the stored dtype (feature shape checked)."""
        dtype = self._dtype(name)
        try:
            ragged = data if isinstance(data, RaggedArray) else RaggedArray.from_list(data, feature_shape=features)
        except ValueError as exc:
            raise ValueError(f"ragged field '{name}': {exc}") from None
        ragged = ragged.numpy()
        if ragged.feature_shape != features:
            raise ValueError(f"ragged field '{name}' has feature shape {ragged.feature_shape}, expected {features}")
        return RaggedArray(np.asarray(ragged.values, dtype=dtype), ragged.offsets, validate=False)

    def finalize(self) -> Path:
        """Mark complete and give the file its final name (only once every sample is written)."""
        if self._file is None:
            return self.path
        if not self.done:
            raise RuntimeError(f"{self.partial}: only {self.n_completed}/{self.spec.n_total} samples written")
        self._file.attrs["complete"] = True
        self._file.flush()
        self._file.close()
        self._file = None
        os.replace(self.partial, self.path)
        return self.path

    def close(self) -> None:
        """Close without finalising (an unfinished file stays ``.partial`` and is resumed later)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------- reading
@dataclass
class StoredSplit:
    """A split read into memory: ``fields`` maps a dense field to its ``(N, *sample_shape)`` array and a ragged
    field to a :class:`~datasets.ragged.RaggedArray` of ``N`` samples (NumPy values ``(rows, *feature_shape)``)."""

    path: Path
    fields: dict[str, np.ndarray | RaggedArray]
    coords: dict[str, np.ndarray]
    attrs: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.attrs["config_json"])

    @property
    def n(self) -> int:
        return len(next(iter(self.fields.values()))) if self.fields else 0


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The attributes of a split file (raises :class:`CorruptDatasetError` when it cannot be opened)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            return {k: _decode(v) for k, v in f.attrs.items()}
    except OSError as exc:
        raise CorruptDatasetError(f"{path}: not a readable pdeforge HDF5 file ({exc})") from None


def read_split(
    path: str | os.PathLike,
    *,
    pde: str | None = None,
    expected_hash: str | None = None,
    n: int | None = None,
    fields: Mapping[str, Sequence[int]] | None = None,
    load: Iterable[str] | None = None,
    select: Mapping[str, tuple[slice, ...]] | None = None,
) -> StoredSplit:
    """Read and validate a split file.

    Args:
        pde: the problem asked for (named in errors; checked against the file).
        expected_hash: the generation-config hash the file must carry.
        n: read the first ``n`` samples (the file must hold at least ``n``); ``None`` reads all. A ragged field
            reads only its rows up to ``offsets[n]``.
        fields: expected per-sample shapes (as stored), e.g. ``{"u": (T, S)}``; ``(None, *feature_shape)`` for a
            ragged field, e.g. ``{"pos": (None, 3)}``.
        load: the fields to read (default: all of ``fields`` or all stored fields).
        select: field name -> per-sample index (slices) applied while reading, e.g. ``(slice(None),
            slice(None, None, 4))`` to keep every 4th point of ``(T, S)`` samples. Samples are read in blocks of
            whole samples (at most ``READ_BLOCK_BYTES``, at least one sample) and subsampled block by block into
            the result, so memory is that of the subsampled arrays plus one block. (HDF5's own strided selection
            gives the same values but is 10-70x slower: 0.17-1.4 s per 51 x 256^2 sample.) Fields not named are
            read whole. For a ragged field the index applies to the feature axes only: its first entry (the row
            axis) must be ``slice(None)``.

    Returns:
        The split; ragged fields as :class:`~datasets.ragged.RaggedArray` (NumPy values and ``(n + 1,)`` int64
        offsets; ``.to(device)`` gives torch tensors).

    Raises:
        CorruptDatasetError: unreadable file, incomplete file, wrong problem, hash, shapes or too few samples.
    """
    path = Path(path)
    what = f"'{pde}' dataset" if pde else "dataset"

    def bad(reason: str) -> CorruptDatasetError:
        return CorruptDatasetError(f"{path}: corrupt or mismatched {what}: {reason}")

    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} file does not exist")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _decode(v) for k, v in f.attrs.items()}
            for key in ("format_version", "config_hash", "config_json", "n_total", "n_completed", "complete"):
                if key not in attrs:
                    raise bad(f"manifest attribute '{key}' is missing")
            if int(attrs["format_version"]) != FORMAT_VERSION:
                raise bad(f"format version {attrs['format_version']} (this pdeforge reads {FORMAT_VERSION})")
            if not attrs["complete"]:
                raise bad(f"generation did not finish ({attrs['n_completed']}/{attrs['n_total']} samples)")
            if pde is not None and attrs.get("pde") != pde:
                raise bad(f"file holds problem '{attrs.get('pde')}'")
            if expected_hash is not None and attrs["config_hash"] != expected_hash:
                raise bad(f"config hash {attrs['config_hash']} != expected {expected_hash}")
            if config_hash(json.loads(attrs["config_json"])) != attrs["config_hash"]:
                raise bad("stored config does not match its hash")
            n_stored = int(attrs["n_completed"])
            if n_stored != int(attrs["n_total"]):
                raise bad(f"complete flag set with {n_stored}/{attrs['n_total']} samples")
            if n is not None and n > n_stored:
                raise bad(f"holds {n_stored} samples, {n} requested")
            stored_fields = json.loads(attrs.get("fields", "{}"))
            expected = {k: tuple(v) for k, v in (fields or {}).items()}
            names = list(load) if load is not None else (list(expected) or list(stored_fields))
            out: dict[str, np.ndarray | RaggedArray] = {}
            offsets: dict[str, np.ndarray] = {}
            for name in sorted(set(names) | set(expected)):
                if name not in f:
                    raise bad(f"field '{name}' is missing")
                ds = f[name]
                if isinstance(ds, h5py.Group):  # ragged: values + offsets
                    for part in ("values", "offsets"):
                        if part not in ds:
                            raise bad(f"ragged field '{name}' has no {part}")
                    offsets[name] = ds["offsets"][()]
                    problem = offsets_problem(offsets[name], ds["values"].shape[0], n_stored)
                    if problem is not None:
                        raise bad(f"ragged field '{name}': {problem}")
                    shape = (None, *ds["values"].shape[1:])
                else:
                    if ds.shape[0] != n_stored:
                        raise bad(f"field '{name}' has {ds.shape[0]} samples, manifest says {n_stored}")
                    shape = tuple(ds.shape[1:])
                if name in expected and shape != expected[name]:
                    raise bad(f"field '{name}' has sample shape {shape}, expected {expected[name]}")
            count = n_stored if n is None else n
            select = dict(select or {})
            for name in names:
                index = tuple(select.get(name, ()))
                if name in offsets:
                    values = f[name]["values"]
                    if len(index) > len(values.shape):
                        raise bad(f"field '{name}' has {len(values.shape)} sample axes, selection {index} has more")
                    if index and index[0] != slice(None):
                        raise bad(f"field '{name}' is ragged: its row axis cannot be subsampled (use slice(None))")
                    first = offsets[name][:count + 1].copy()
                    out[name] = RaggedArray(_read_subsampled(values, int(first[-1]), index[1:]), first, validate=False)
                    continue
                if len(index) > len(f[name].shape) - 1:
                    raise bad(f"field '{name}' has {len(f[name].shape) - 1} sample axes, selection {index} has more")
                out[name] = _read_subsampled(f[name], count, index)
            coords = {k: v[()] for k, v in f["coords"].items()} if "coords" in f else {}
    except CorruptDatasetError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise bad(f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    return StoredSplit(path=path, fields=out, coords=coords, attrs=attrs)


def _read_subsampled(ds: h5py.Dataset, count: int, index: tuple[slice, ...]) -> np.ndarray:
    """``ds[:count][(slice(None), *index)]`` without holding more than one block of whole samples in memory."""
    if not index or all(sl == slice(None) for sl in index):
        return ds[:count]
    shape = [len(range(*sl.indices(dim))) for sl, dim in zip(index, ds.shape[1:])] + list(ds.shape[1 + len(index):])
    out = np.empty((count, *shape), dtype=ds.dtype)
    per_sample = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
    block = max(1, READ_BLOCK_BYTES // per_sample)
    for start in range(0, count, block):
        stop = min(count, start + block)
        out[start:stop] = ds[start:stop][(slice(None), *index)]
    return out


def validate_split(path: str | os.PathLike, **kwargs: Any) -> dict[str, Any]:
    """Validate a split file without loading its fields; return its manifest."""
    return read_split(path, load=(), **kwargs).attrs
