"""Training throughput through Lightning (``trainer.fit`` as ``train.py`` runs it) against a bare PyTorch loop.

Both paths train the same network (same config, same seed), with the same loss, optimizer, normalisers and data:

* **bare**: the training split as in-memory tensors, batches drawn by a random permutation (``x[perm[i:i+B]]``),
  ``encode -> network -> decode -> loss -> zero_grad -> backward -> step``, the scheduler stepped per epoch.
* **lightning**: the model, task, datamodule, callbacks and trainer built by ``train.py``'s builders from the
  composed config (progress bar, checkpointing, LR monitor, plots as configured; the logger given by ``--logger``,
  ``csv`` by default: wandb offline adds a background process), run by ``trainer.fit``.

Only training batches are timed: a callback takes the time from ``on_train_epoch_start`` to the last
``on_train_batch_end`` of every epoch after ``--warmup`` epochs (so validation, checkpoint writing, start-up and
the first epoch are excluded: validation is run as configured, once per epoch, and not counted). The bare loop's
epochs are timed the same way. Rows: samples/s of both and their ratio (the target is >= 0.90).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/lightning_overhead.py                 # FNO-2D Darcy and FNO-1D Burgers
    OMP_NUM_THREADS=1 python benchmarks/lightning_overhead.py --config darcy --epochs 4 --repeats 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name -> train.py overrides: small but realistic configs that generate their data in well under a minute
CONFIGS: dict[str, list[str]] = {
    # FNO-2D (paper Darcy model: modes 12, width 32, 4 layers) on the default laptop-sized Darcy set (33 x 33)
    "darcy": ["data=darcy_small", "data.n_train=400", "data.n_val=20", "data.n_test=20", "model=fno2d"],
    # FNO-1D (paper Burgers model: modes 16, width 64, 4 layers) on Burgers at 1024 points
    "burgers": ["data=burgers", "data.n_train=400", "data.n_val=20", "data.n_test=20", "data.solver_resolution=2048",
                "data.resolution=1024", "model=fno1d"],
}


def compose(overrides: list[str], output_dir: Path) -> Any:
    """``conf/train.yaml`` composed with ``overrides`` (Hydra's compose API, as train.py sees it)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from operators.runtime import resolvers  # noqa: F401  (registers the config resolvers)

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose(config_name="train", return_hydra_config=True, overrides=[
            *overrides, f"paths.output_dir={output_dir}", f"hydra.run.dir={output_dir}"])
    HydraConfig().set_config(cfg)
    return cfg


def build(cfg: Any) -> tuple[Any, Any]:
    """The datamodule and task of ``cfg``, built like train.py builds them (seeded first)."""
    import pytorch_lightning as pl

    from operators.runtime.builders import build_datamodule, build_task

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    task = build_task(cfg)
    return datamodule, task


class TrainBatchTimer:
    """Times the training batches of each epoch: from the epoch's start to its last ``on_train_batch_end``
    (data fetching, hooks and logging included; validation and checkpointing after the last batch excluded)."""

    def __init__(self) -> None:
        self.epoch_seconds: list[float] = []
        self.epoch_samples: list[int] = []
        self._start = 0.0
        self._last = 0.0
        self._samples = 0

    def epoch_start(self) -> None:
        self._start = self._last = time.perf_counter()
        self._samples = 0

    def batch_end(self, n: int) -> None:
        self._last = time.perf_counter()
        self._samples += n

    def epoch_end(self) -> None:
        self.epoch_seconds.append(self._last - self._start)
        self.epoch_samples.append(self._samples)

    def samples_per_second(self, warmup: int) -> float:
        seconds = sum(self.epoch_seconds[warmup:])
        return sum(self.epoch_samples[warmup:]) / seconds if seconds > 0 else float("nan")

    def counted_samples(self, warmup: int) -> int:
        return sum(self.epoch_samples[warmup:])


def _timer_callback(timer: TrainBatchTimer) -> Any:
    import pytorch_lightning as pl

    from datasets.batching import num_samples

    class _Callback(pl.Callback):
        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            timer.epoch_start()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            timer.batch_end(num_samples(batch))

        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            timer.epoch_end()

    return _Callback()


def time_lightning(cfg: Any, epochs: int) -> TrainBatchTimer:
    """``trainer.fit`` of ``cfg`` for ``epochs`` epochs with train.py's callbacks, loggers and trainer settings."""
    from omegaconf import open_dict

    from operators.runtime.builders import build_callbacks, build_loggers, instantiate

    with open_dict(cfg):
        cfg.trainer.max_epochs = epochs
        cfg.trainer.min_epochs = 1
    datamodule, task = build(cfg)
    timer = TrainBatchTimer()
    loggers = build_loggers(cfg)
    trainer = instantiate(cfg.trainer, callbacks=[*build_callbacks(cfg), _timer_callback(timer)],
                          logger=loggers or False)
    trainer.fit(task, datamodule=datamodule)
    return timer


def time_bare(cfg: Any, epochs: int, built: tuple[Any, Any] | None = None) -> TrainBatchTimer:
    """The bare PyTorch loop over the same network, loss, optimizer, scheduler, normalisers and training split
    (``built``: the ``(datamodule, task)`` to train, default :func:`build` of ``cfg``)."""
    datamodule, task = built if built is not None else build(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    task.fit_normalizers(datamodule)
    x, y = (t.float() for t in datamodule.train_tensors())
    net, loss_fn, x_norm, y_norm = task.network, task.loss_fn, task.x_normalizer, task.y_normalizer
    net.train()
    params = [p for p in task.trainable_parameters() if p.requires_grad]
    optimizer = task.optimizer_factory(params=params) if task.optimizer_factory else torch.optim.Adam(params, lr=1e-3)
    scheduler = None
    if task.scheduler_factory is not None:
        kwargs = {"total_steps": epochs * -(-x.shape[0] // datamodule.batch_size)} \
            if "OneCycle" in str(task.scheduler_factory) else {}
        scheduler = task.scheduler_factory(optimizer=optimizer, **kwargs)
    batch = datamodule.batch_size
    timer = TrainBatchTimer()
    for _ in range(epochs):
        timer.epoch_start()
        perm = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], batch):
            idx = perm[i:i + batch]
            xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            loss = loss_fn(y_norm.decode(net(x_norm.encode(xb)).float()), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            timer.batch_end(xb.shape[0])
        timer.epoch_end()
        if scheduler is not None:
            scheduler.step()
    return timer


def measure(name: str, overrides: list[str], epochs: int, warmup: int, repeats: int,
            output_root: Path) -> dict[str, Any]:
    """Interleaved repeats (bare, lightning, bare, lightning, ...); medians of samples/s and their ratio."""
    bare, light, counted = [], [], set()
    for r in range(repeats):
        for kind in ("bare", "lightning"):
            cfg = compose(overrides, output_root / f"{name}_{kind}_{r}")
            timer = (time_bare if kind == "bare" else time_lightning)(cfg, epochs)
            (bare if kind == "bare" else light).append(timer.samples_per_second(warmup))
            counted.add((kind, timer.counted_samples(warmup)))
    samples = {k: n for k, n in counted}
    b, lt = statistics.median(bare), statistics.median(light)
    return {"config": name, "bare": b, "lightning": lt, "ratio": lt / b, "samples": samples,
            "bare_all": bare, "lightning_all": light}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (the first --warmup are not timed)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved bare/lightning repeats (medians)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--logger", default="csv", help="logger config group (csv, wandb, many_loggers)")
    parser.add_argument("--data-dir", default=str(ROOT / "data"), help="dataset cache (generated on first use)")
    parser.add_argument("--override", action="append", default=[], help="extra train.py override (repeatable)")
    args = parser.parse_args(argv)
    if args.epochs <= args.warmup:
        raise ValueError(f"--epochs={args.epochs} is not allowed; use more epochs than --warmup={args.warmup}")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    names = list(CONFIGS) if args.config == "all" else [args.config]
    rows = []
    with tempfile.TemporaryDirectory(prefix="pdeforge_overhead_") as tmp:
        for name in names:
            overrides = [*CONFIGS[name], f"logger={args.logger}", f"paths.data_dir={args.data_dir}", *args.override]
            rows.append(measure(name, overrides, args.epochs, args.warmup, args.repeats, Path(tmp)))
    print(f"\nthreads={args.threads} epochs={args.epochs} (first {args.warmup} not timed) repeats={args.repeats} "
          f"logger={args.logger}; samples/s of the training batches (medians), validation excluded")
    print(f"{'config':<10} {'bare':>10} {'lightning':>10} {'ratio':>7}   samples timed")
    for row in rows:
        print(f"{row['config']:<10} {row['bare']:>10.1f} {row['lightning']:>10.1f} {row['ratio']:>7.3f}   "
              f"{row['samples']}")
    return rows


if __name__ == "__main__":
    main()
