"""Plumbing shared by the training entry points: object construction, checkpoints, DDP in sweeps; the config
resolvers and one-line user errors are :mod:`datasets.runtime` (the lowest layer, shared with the data CLI),
re-exported by :mod:`operators.runtime.resolvers` and :mod:`operators.runtime.errors`."""
