"""Config and command-line support shared by every entry point (``python -m datasets.generate``, ``train.py``,
``evaluate.py``, the benchmarks): the OmegaConf resolvers of ``conf/`` (:mod:`datasets.runtime.resolvers`) and
the one-line user errors (:mod:`datasets.runtime.errors`).

It sits in the lowest layer (it imports nothing from ``datasets`` or ``operators``), so the data CLI needs nothing
from ``operators``; :mod:`operators.runtime` re-exports it for the training side."""
