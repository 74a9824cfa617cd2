"""Data-generation throughput (samples/s) of pdeforge's PDE generators: burgers, darcy, navier_stokes.

Each generator solves ``--batches`` batches of ``--batch-size`` samples (after one untimed warm-up batch that
also builds caches) through the same ``PDEProblem.generate`` call the data pipeline uses, and the script
prints one table row per generator.

Presets (``--preset``):

``small``  (default) sizes that finish in about a minute on a 2-core CPU: Burgers 1024 -> 256 points,
           Darcy 85 -> 43, Navier-Stokes 64 -> 32 to t = 2 (dt = 1e-3).
``paper``  the FNO paper's settings: Burgers 8192 -> 1024 (t = 1), Darcy 421 -> 85, Navier-Stokes 256 -> 64 to
           t = 50 (nu = 1e-3, dt = 1e-3) -- meant for a GPU (``--device cuda``); use ``--set navier_stokes.t_final=1``
           to time a short horizon and scale (cost is linear in t_final).

Usage::

    python benchmarks/generation_throughput.py [--threads 1]
    python benchmarks/generation_throughput.py --preset paper --device cuda --batch-size 32
    python benchmarks/generation_throughput.py --pde darcy --set darcy.solver=cg --set darcy.resolution=141
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.pdes import make_problem  # noqa: E402
from datasets.pdes.base import resolve_device  # noqa: E402

PRESETS: dict[str, dict[str, dict]] = {
    "small": {
        "burgers": dict(solver_resolution=1024, resolution=256),
        "darcy": dict(solver_resolution=85, resolution=43),
        "navier_stokes": dict(solver_resolution=64, resolution=32, t_final=2.0, dt=1e-3),
    },
    "paper": {
        "burgers": dict(solver_resolution=8192, resolution=1024),
        "darcy": dict(solver_resolution=421, resolution=85),
        "navier_stokes": dict(solver_resolution=256, resolution=64, t_final=50.0, dt=1e-3),
    },
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _parse_overrides(items: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        pde, dot, param = key.partition(".")
        if not sep or not dot:
            raise SystemExit(f"--set {item!r}: use PDE.PARAM=VALUE, e.g. navier_stokes.t_final=1")
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        out.setdefault(pde, {})[param] = parsed
    return out


def describe(pde: str, problem) -> str:
    p = problem.params
    if pde == "burgers":
        return f"{p['solver_resolution']}->{p['resolution']} t={p['t_final']:g} dt={p['dt']:g}"
    if pde == "darcy":
        return f"{p['solver_resolution']}->{p['resolution']} {p['solver']}"
    return f"{p['solver_resolution']}->{p['resolution']} t={p['t_final']:g} dt={p['dt']:g} {p['precision']}"


def measure(pde: str, params: dict, device: torch.device, batch_size: int, batches: int) -> dict:
    problem = make_problem(pde, device=device, **params)
    problem.generate(seed=0, split="train", indices=range(batch_size))  # warm-up (caches, CUDA init, plans)
    _sync(device)
    t0 = time.perf_counter()
    for b in range(batches):
        start = (b + 1) * batch_size
        problem.generate(seed=0, split="train", indices=range(start, start + batch_size))
    _sync(device)
    seconds = time.perf_counter() - t0
    n = batches * batch_size
    return {"setting": describe(pde, problem), "samples": n, "seconds": seconds, "rate": n / seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="small")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--pde", nargs="+", default=list(PRESETS["small"]), choices=list(PRESETS["small"]))
    parser.add_argument("--batch-size", type=int, default=4, help="samples solved together")
    parser.add_argument("--batches", type=int, default=2, help="timed batches per generator")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op CPU threads (default: torch's choice; 1 is often fastest for small "
                             "grids and on a shared machine)")
    parser.add_argument("--set", action="append", default=[], metavar="PDE.PARAM=VALUE",
                        help="override a generator parameter (repeatable)")
    args = parser.parse_args(argv)
    if args.batch_size <= 0 or args.batches <= 0:
        raise SystemExit("--batch-size and --batches must be positive")
    if args.threads is not None:
        if args.threads <= 0:
            raise SystemExit("--threads must be positive")
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    overrides = _parse_overrides(args.set)
    unknown = set(overrides) - set(PRESETS[args.preset])
    if unknown:
        raise SystemExit(f"--set names unknown generator(s) {sorted(unknown)}; use {list(PRESETS[args.preset])}")

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"preset={args.preset} device={device} [{name}] torch={torch.__version__} "
          f"batch={args.batch_size} timed batches={args.batches}")
    header = f"{'generator':<15}{'setting':<38}{'samples':>8}{'time (s)':>10}{'samples/s':>11}{'s/sample':>10}"
    print(header)
    print("-" * len(header))
    for pde in args.pde:
        params = {**PRESETS[args.preset][pde], **overrides.get(pde, {})}
        r = measure(pde, params, device, args.batch_size, args.batches)
        print(f"{pde:<15}{r['setting']:<38}{r['samples']:>8}{r['seconds']:>10.2f}{r['rate']:>11.3f}"
              f"{1 / r['rate']:>10.3f}", flush=True)


if __name__ == "__main__":
    main()
