"""Training-step throughput of every network family, eager vs ``torch.compile`` (what ``task.compile=true`` does).

One step = forward + relative-L2 loss + backward + Adam update on a fixed random batch, at a small but realistic
size per family (the papers' architectures at laptop resolutions). Both copies start from the same weights; the
compiled copy is compiled in place (``nn.Module.compile``, :func:`operators.runtime.compile.compile_network`) and its
first step (the compilation) is timed separately. Steps are then timed in interleaved blocks (eager, compiled,
eager, ...); the medians give steps/s and the speedup. ``graphs`` / ``breaks`` are Dynamo's counts for the compiled
copy (a graph break splits the step into several compiled graphs with eager code between them).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/compile_speedup.py                       # every family, 1 thread
    OMP_NUM_THREADS=1 python benchmarks/compile_speedup.py --models fno1d fno2d --blocks 5 --steps 5
    python benchmarks/compile_speedup.py --device cuda --threads 8 --mode max-autotune
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operators.losses import RelativeL2Loss
from operators.runtime.compile import compile_network, compile_options


def _graph_batch(n_graphs: int, n_nodes: int, k: int) -> Any:
    """A batch of 1-D periodic graphs as the MP-PDE E1 data (``n_nodes`` points, edges within 3 spacings)."""
    from torch_geometric.data import Batch, Data

    from datasets.neighbors import radius_graph

    pos = (torch.arange(n_nodes, dtype=torch.float32) / n_nodes)[:, None]
    edges = radius_graph(pos.double(), 3.0 / n_nodes * (1 + 1e-6), periodic_length=1.0)
    g = torch.Generator().manual_seed(0)
    return Batch.from_data_list([Data(x=torch.randn(n_nodes, k, generator=g), y=torch.randn(n_nodes, k, generator=g),
                                      pos=pos, edge_index=edges, time=torch.rand(1, generator=g),
                                      time_step=torch.full((1,), 1 / 250)) for _ in range(n_graphs)])


def _fno1d() -> tuple[nn.Module, Any, torch.Tensor]:
    # FNO paper, Burgers: modes 16, width 64, 4 layers, 1024 points
    from operators.fno import FNO

    return FNO(1, 1, modes=(16,), width=64, n_layers=4), torch.randn(20, 1, 1024), torch.randn(20, 1, 1024)


def _fno2d() -> tuple[nn.Module, Any, torch.Tensor]:
    # FNO paper, Darcy: modes 12, width 32, 4 layers, padding; darcy_small's 33 x 33
    from operators.fno import FNO

    net = FNO(1, 1, modes=(12, 12), width=32, n_layers=4, padding=0.1)
    return net, torch.randn(20, 1, 33, 33), torch.randn(20, 1, 33, 33)


def _fno3d() -> tuple[nn.Module, Any, torch.Tensor]:
    # FNO-3D Navier-Stokes (modes 8, width 20) at 32 x 32
    from operators.space_time_fno import SpaceTimeFNO

    net = SpaceTimeFNO(1, t_in=10, n_steps_out=10, modes=(8, 8, 8), width=20, n_layers=4, time_padding=6)
    return net, torch.randn(4, 10, 32, 32), torch.randn(4, 10, 32, 32)


def _sfno() -> tuple[nn.Module, Any, torch.Tensor]:
    # the reference configuration (modes 12, 12, 5; width 20) at 32 x 32
    from operators.sfno import SFNO

    net = SFNO(1, t_in=10, n_steps_out=10, modes=(12, 12, 5), width=20, n_layers=4, latent_steps=10)
    return net, torch.randn(4, 10, 32, 32), torch.randn(4, 10, 32, 32)


def _mgno() -> tuple[nn.Module, Any, torch.Tensor]:
    # the paper's Darcy model (24 channels, 6 levels) at 64 x 64
    from operators.mgno import MgNO

    return MgNO(1, 1), torch.randn(8, 1, 64, 64), torch.randn(8, 1, 64, 64)


def _lsm() -> tuple[nn.Module, Any, torch.Tensor]:
    # the paper's model (width 64, 5 scales) at 64 x 64
    from operators.lsm import LSM

    return LSM(1, 1, patch_size=(4, 4)), torch.randn(4, 1, 64, 64), torch.randn(4, 1, 64, 64)


def _mppde() -> tuple[nn.Module, Any, torch.Tensor]:
    # the paper's E1 model (K = 25, 128 hidden, 6 layers), 100 points, 16 graphs
    from operators.mppde import MPPDE

    batch = _graph_batch(16, 100, 25)
    return MPPDE(time_window=25, dt=4.0 / 249, periodic=True), batch, batch.y


MODELS: dict[str, Callable[[], tuple[nn.Module, Any, torch.Tensor]]] = {
    "fno1d": _fno1d, "fno2d": _fno2d, "fno3d": _fno3d, "sfno": _sfno, "mgno": _mgno, "lsm": _lsm, "mppde": _mppde,
}


def _to(value: Any, device: torch.device) -> Any:
    return value.to(device)


def measure(name: str, options: dict[str, Any], device: torch.device, steps: int, blocks: int) -> dict[str, Any]:
    """Eager vs compiled steps/s of one family (medians over interleaved blocks of ``steps`` steps)."""
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    eager, x, y = MODELS[name]()
    eager, x, y = eager.to(device), _to(x, device), y.to(device)
    compiled = copy.deepcopy(eager)
    loss_fn = RelativeL2Loss()
    runs = {}
    for label, net in (("eager", eager), ("compiled", compiled)):
        runs[label] = (net, torch.optim.Adam(net.parameters(), lr=1e-4))

    def step(label: str) -> None:
        net, opt = runs[label]
        loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    torch._dynamo.reset()
    counters.clear()
    compile_network(compiled, options)
    start = time.perf_counter()
    step("compiled")  # compiles forward and backward
    sync()
    compile_s = time.perf_counter() - start
    step("compiled")
    step("eager")
    step("eager")
    sync()
    graphs = int(counters["stats"]["unique_graphs"])
    breaks = int(sum(counters["graph_break"].values()))
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(blocks):
        for label in ("eager", "compiled"):
            sync()
            start = time.perf_counter()
            for _ in range(steps):
                step(label)
            sync()
            times[label].append((time.perf_counter() - start) / steps)
    eager_s, compiled_s = statistics.median(times["eager"]), statistics.median(times["compiled"])
    return {"model": name, "eager": 1 / eager_s, "compiled": 1 / compiled_s, "speedup": eager_s / compiled_s,
            "compile_s": compile_s, "graphs": graphs, "breaks": breaks}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--steps", type=int, default=3, help="steps per timed block")
    parser.add_argument("--blocks", type=int, default=5, help="interleaved eager/compiled blocks (medians)")
    parser.add_argument("--mode", default=None, help="torch.compile mode (default, max-autotune, ...)")
    parser.add_argument("--dynamic", default=None, choices=["true", "false"], help="torch.compile dynamic")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    raw: dict[str, Any] = {}
    if args.mode:
        raw["mode"] = args.mode
    if args.dynamic:
        raw["dynamic"] = args.dynamic == "true"
    options = compile_options(raw or True)
    device = torch.device(args.device)
    rows = []
    for name in args.models:
        try:
            rows.append(measure(name, options, device, args.steps, args.blocks))
        except Exception as exc:  # noqa: BLE001  (report the family and go on with the others)
            rows.append({"model": name, "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:150]}"})
        print(_format(rows[-1]), flush=True)
    print(f"\ndevice={device} threads={args.threads} torch.compile({options}) steps/s, medians of {args.blocks} "
          f"interleaved blocks of {args.steps} steps")
    print(f"{'model':<8} {'eager':>9} {'compiled':>9} {'speedup':>8} {'compile s':>10} {'graphs':>7} {'breaks':>7}")
    for row in rows:
        print(_format(row))
    return rows


def _format(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{row['model']:<8} compile failed: {row['error']}"
    return (f"{row['model']:<8} {row['eager']:>9.2f} {row['compiled']:>9.2f} {row['speedup']:>7.2f}x "
            f"{row['compile_s']:>10.1f} {row['graphs']:>7d} {row['breaks']:>7d}")


if __name__ == "__main__":
    main()
